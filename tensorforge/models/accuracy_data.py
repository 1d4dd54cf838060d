"""Datasets for accuracy work: the held-out and calibration data types, and built-in datasets
or an ``.npz`` split three ways.

:class:`EvalData` (held-out batches and optional labels: what the accuracy guard and the
accuracy table judge on) and :class:`CalibrationData` (feeds INT8 ranges are collected from,
with a fingerprint) are plain data, defined here at the bottom so that ``precision``,
``tune``, ``engine`` and ``bench`` share them.

``accuracy_data(source, model)`` returns :class:`AccuracyData` with disjoint
``calibration`` (INT8 ranges), ``validation`` (the accuracy guard) and ``test`` (the
table) parts, shaped for the model's inputs:

* ``mnist5k``, ``digits`` — real labeled digits (:mod:`tensorforge.models.datasets`);
* ``sentences`` — real English sentences tokenized for a BERT-style text encoder
  (:mod:`tensorforge.models.sentences`; no labels: fidelity to FP32 is scored);
* ``FILE.npz`` — one array per model input by name (or one array for a one-input model)
  and optional ``labels``; rows are split in order: first 25 % calibration, next 25 %
  validation, last 50 % test. Read with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from ..core.specs import TensorSpec, io_specs
from ..errors import InputError

__all__ = ["AccuracyData", "CalibrationData", "EvalData", "accuracy_data", "BUILTIN"]

BUILTIN = ("mnist5k", "digits", "sentences")


@dataclass(frozen=True)
class EvalData:
    """Held-out batches (never the calibration samples) and optional integer labels."""

    batches: list[dict[str, np.ndarray]]
    labels: np.ndarray | None = None
    output: str | None = None          # the output to score; None = the model's first
    name: str = "held-out"

    def __post_init__(self) -> None:
        if not self.batches:
            raise InputError("evaluation data holds no batches")
        if self.labels is not None:
            rows = sum(next(iter(b.values())).shape[0] for b in self.batches)
            if rows != len(self.labels):
                raise InputError(f"evaluation data has {rows} samples but {len(self.labels)} labels")

    @property
    def samples(self) -> int:
        return sum(next(iter(b.values())).shape[0] for b in self.batches)

    def head(self, samples: int) -> "EvalData":
        """The first ``samples`` rows (whole batches), for cheap sensitivity probes."""
        out, n = [], 0
        for b in self.batches:
            if n >= samples:
                break
            out.append(b)
            n += next(iter(b.values())).shape[0]
        labels = None if self.labels is None else self.labels[:n]
        return EvalData(out, labels, self.output, self.name)


@dataclass(frozen=True)
class CalibrationData:
    """Feed dicts ready to run, and what they were made from."""

    batches: list[dict[str, np.ndarray]]
    samples: int
    source: str
    fingerprint: str                     # sha256 over the feeds' bytes, shapes and names
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AccuracyData:
    name: str
    calibration: list[dict[str, np.ndarray]]
    validation: EvalData
    test: EvalData
    calibration_split: str = "calibration"

    @property
    def calibration_samples(self) -> int:
        return sum(next(iter(b.values())).shape[0] for b in self.calibration)

    def calibration_data(self) -> CalibrationData:
        digest = hashlib.sha256()
        for b in self.calibration:
            for k in sorted(b):
                digest.update(k.encode() + b[k].tobytes())
        return CalibrationData(self.calibration, self.calibration_samples, f"{self.name}:{self.calibration_split}",
                               digest.hexdigest())


def _batches(arrays: dict[str, np.ndarray], batch: int) -> list[dict[str, np.ndarray]]:
    n = next(iter(arrays.values())).shape[0]
    return [{k: v[i:i + batch] for k, v in arrays.items()} for i in range(0, n, batch)]


def _image_input(specs: list[TensorSpec], dataset: str, shape: tuple[int, int, int]) -> tuple[str, bool]:
    """(input name, channels_last) when the model takes this dataset's images; else InputError."""
    want = f"(N, {shape[0]}, {shape[1]}, {shape[2]})"
    if len(specs) != 1 or len(specs[0].shape) != 4:
        raise InputError(f"dataset {dataset!r} holds {want} images; the model's inputs are "
                         f"{[s.name + s.shape_str() for s in specs]}")
    dims = tuple(specs[0].shape[1:])
    if dims == shape:
        return specs[0].name, False
    if dims == (shape[1], shape[2], shape[0]):
        return specs[0].name, True
    raise InputError(f"dataset {dataset!r} holds {want} images; the model expects {specs[0].shape_str()} — "
                     "pick a model trained on it (e.g. tensorforge/models/trained/mnist_cnn.onnx) or give an .npz")


def _from_images(name: str, specs: list[TensorSpec], batch: int) -> AccuracyData:
    from . import datasets

    meta = datasets.info(name)
    input_name, nhwc = _image_input(specs, name, meta.image_shape)

    def part(split: str) -> tuple[list[dict[str, np.ndarray]], np.ndarray]:
        d = datasets.load(name, split)
        x = np.ascontiguousarray(d.images.transpose(0, 2, 3, 1)) if nhwc else d.images
        return _batches({input_name: x}, batch), d.labels

    cal, _ = part("calibration")
    val_b, val_y = part("validation")
    test_b, test_y = part("test")
    return AccuracyData(name, cal, EvalData(val_b, val_y, name="validation"), EvalData(test_b, test_y, name="test"))


def _from_npz(path: str, specs: list[TensorSpec], batch: int) -> AccuracyData:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {path!r} as .npz (without pickle): {exc}") from exc
    labels = arrays.pop("labels", None)
    names = [s.name for s in specs]
    if not all(n in arrays for n in names):
        if len(names) == 1 and len(arrays) == 1:
            arrays = {names[0]: next(iter(arrays.values()))}
        else:
            raise InputError(f"{path!r} holds {sorted(arrays)}; name the arrays after the model's inputs {names} "
                             "(and put labels under 'labels')")
    feeds = {n: arrays[n] for n in names}
    n = next(iter(feeds.values())).shape[0]
    if any(v.shape[0] != n for v in feeds.values()) or (labels is not None and len(labels) != n):
        raise InputError(f"{path!r}: arrays (and labels) must share their first dimension")
    if n < 4:
        raise InputError(f"{path!r} holds {n} samples; at least 4 are needed to split calibration/validation/test")
    a, b = n // 4, n // 2

    def sl(lo: int, hi: int) -> dict[str, np.ndarray]:
        return {k: v[lo:hi] for k, v in feeds.items()}

    lab = None if labels is None else labels.astype(np.int64)
    return AccuracyData(os.path.basename(path), _batches(sl(0, a), batch),
                        EvalData(_batches(sl(a, b), batch), None if lab is None else lab[a:b], name="validation"),
                        EvalData(_batches(sl(b, n), batch), None if lab is None else lab[b:], name="test"))


def _from_sentences(specs: list[TensorSpec], batch: int) -> AccuracyData:
    from . import sentences

    parts = {split: sentences.feeds(specs, split) for split in ("calibration", "validation", "test")}
    return AccuracyData("sentences", _batches(parts["calibration"], batch),
                        EvalData(_batches(parts["validation"], batch), name="validation"),
                        EvalData(_batches(parts["test"], batch), name="test"))


def accuracy_data(source: str, model: onnx.ModelProto | list[TensorSpec], *, batch: int = 64) -> AccuracyData:
    specs = io_specs(model)[0] if isinstance(model, onnx.ModelProto) else list(model)
    if source in ("mnist5k", "digits"):
        return _from_images(source, specs, batch)
    if source == "sentences":
        return _from_sentences(specs, batch)
    if source.endswith(".npz"):
        if not os.path.isfile(source):
            raise InputError(f"dataset file {source!r} does not exist")
        return _from_npz(source, specs, batch)
    raise InputError(f"unknown dataset {source!r}; use one of {', '.join(BUILTIN)} or an .npz file")


def describe(data: AccuracyData) -> dict[str, Any]:
    return {"name": data.name, "calibration": data.calibration_samples, "validation": data.validation.samples,
            "test": data.test.samples, "labeled": data.test.labels is not None}
