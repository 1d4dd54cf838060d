"""Held-out evaluation data, the accuracy budget, and scoring a model against FP32.

:class:`~tensorforge.models.accuracy_data.EvalData` is what the accuracy guard judges on: batches of feeds and, for a
classifier, the labels (top-1 is then scored); without labels, fidelity (cosine
similarity to the FP32 outputs) is. :class:`AccuracyBudget` says how much may be lost:
``max_top1_drop_pts`` (points of top-1 below FP32) or ``min_cosine`` (a fidelity floor).

Example::

    budget = AccuracyBudget.parse("1.0")              # top-1 may drop at most 1 point
    budget = AccuracyBudget.parse("cosine:0.99")      # mean cosine to FP32 must stay >= 0.99
    ref = reference_outputs(fp32_bytes, data); got = run_model(int8_bytes, data)
    ok, why = budget.check(score(got, ref, data.labels), score(ref, ref, data.labels))
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..backends.base import BackendSession, SessionConfig
from ..backends.reference import reference_session
from ..backends.registry import get_backend
from ..errors import CalibrationError, InputError
from ..models.accuracy_data import EvalData
from .metrics import fidelity, topk_accuracy

__all__ = ["Score", "AccuracyBudget", "reference_outputs", "run_model", "score", "check_disjoint"]


@dataclass(frozen=True)
class Score:
    top1_pct: float | None
    top5_pct: float | None
    cosine_mean: float
    cosine_min: float
    rel_err_mean: float
    samples: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AccuracyBudget:
    max_top1_drop_pts: float | None = None
    min_cosine: float | None = None

    def __post_init__(self) -> None:
        if (self.max_top1_drop_pts is None) == (self.min_cosine is None):
            raise InputError("an accuracy budget is either a top-1 drop in points or a cosine floor (one of them)")
        if self.max_top1_drop_pts is not None and self.max_top1_drop_pts < 0:
            raise InputError(f"a top-1 drop budget must be >= 0 points, got {self.max_top1_drop_pts}")
        if self.min_cosine is not None and not -1.0 <= self.min_cosine <= 1.0:
            raise InputError(f"a cosine floor must lie in [-1, 1], got {self.min_cosine}")

    @classmethod
    def parse(cls, text: str | float) -> "AccuracyBudget":
        """``1.0`` or ``top1:1.0`` → max top-1 drop in points; ``cosine:0.99`` → fidelity floor."""
        if isinstance(text, (int, float)):
            return cls(max_top1_drop_pts=float(text))
        kind, _, value = str(text).strip().rpartition(":")
        try:
            number = float(value)
        except ValueError:
            raise InputError(f"accuracy budget {text!r}: give points of top-1 (e.g. 1.0) or a cosine floor "
                             "(e.g. cosine:0.99)") from None
        if kind in ("", "top1"):
            return cls(max_top1_drop_pts=number)
        if kind in ("cosine", "cos"):
            return cls(min_cosine=number)
        raise InputError(f"accuracy budget {text!r}: unknown kind {kind!r}; use top1:POINTS or cosine:FLOOR")

    @classmethod
    def default_for(cls, data: EvalData) -> "AccuracyBudget":
        return cls(max_top1_drop_pts=1.0) if data.labels is not None else cls(min_cosine=0.99)

    def describe(self) -> str:
        if self.max_top1_drop_pts is not None:
            return f"top-1 drop <= {self.max_top1_drop_pts:g} points"
        return f"mean cosine to FP32 >= {self.min_cosine:g}"

    def check(self, got: Score, fp32: Score) -> tuple[bool, str]:
        if self.max_top1_drop_pts is not None:
            if got.top1_pct is None or fp32.top1_pct is None:
                raise InputError("a top-1 budget needs labeled evaluation data; give labels or a cosine floor")
            drop = fp32.top1_pct - got.top1_pct
            return drop <= self.max_top1_drop_pts + 1e-9, f"top-1 {got.top1_pct:.2f}% (FP32 {fp32.top1_pct:.2f}%, " \
                                                           f"drop {drop:+.2f} pts; budget {self.max_top1_drop_pts:g})"
        assert self.min_cosine is not None
        return got.cosine_mean >= self.min_cosine, f"mean cosine {got.cosine_mean:.5f} (floor {self.min_cosine:g})"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_model(model_bytes: bytes, data: EvalData, *, threads: int | None = None, backend: str = "onnxruntime",
              config: SessionConfig | None = None) -> np.ndarray:
    """The scored output of ``model_bytes`` over all batches, concatenated (ONNX Runtime on the CPU,
    or ``backend`` with ``config``: accuracy is a property of the kernels that compute it)."""
    return _scored(get_backend(backend).create_session(model_bytes, config or SessionConfig("cpu", threads)), data)


def reference_outputs(model_bytes: bytes, data: EvalData, *, threads: int | None = None) -> np.ndarray:
    """The scored output of the FP32 ``model_bytes`` over all batches on the reference session
    (:func:`tensorforge.backends.reference.reference_session`): what every score is judged against."""
    return _scored(reference_session(model_bytes, threads), data)


def _scored(session: BackendSession, data: EvalData) -> np.ndarray:
    names = list(session.output_names)
    index = 0 if data.output is None else names.index(data.output) if data.output in names else -1
    if index < 0:
        raise InputError(f"the model has no output {data.output!r}; its outputs are {names}")
    parts = [np.asarray(session.run(feeds)[index]) for feeds in data.batches]
    return np.concatenate(parts, axis=0).astype(np.float32, copy=False)


def score(outputs: np.ndarray, reference: np.ndarray, labels: np.ndarray | None) -> Score:
    fid = fidelity(outputs, reference)
    top1 = top5 = None
    if labels is not None:
        top1, top5 = topk_accuracy(outputs, labels, 1), topk_accuracy(outputs, labels, 5)
    return Score(top1_pct=top1, top5_pct=top5, cosine_mean=fid.cosine_mean, cosine_min=fid.cosine_min,
                 rel_err_mean=fid.rel_err_mean, samples=fid.samples)


def _row_hashes(batches: list[dict[str, np.ndarray]]) -> set[bytes]:
    out = set()
    for b in batches:
        names = sorted(b)
        for i in range(next(iter(b.values())).shape[0]):
            h = hashlib.sha1()
            for name in names:            # a sample is all of its inputs (masks alone repeat)
                h.update(np.ascontiguousarray(b[name][i]).tobytes())
            out.add(h.digest())
    return out


def check_disjoint(calibration: list[dict[str, np.ndarray]], held_out: EvalData) -> None:
    """Refuse evaluation data that shares samples with the calibration data (judged on seen data)."""
    shared = _row_hashes(calibration) & _row_hashes(held_out.batches)
    if shared:
        raise CalibrationError(f"the held-out evaluation data shares {len(shared)} sample(s) with the calibration "
                               "data; the accuracy guard must judge on samples calibration never saw — use "
                               "another split")
