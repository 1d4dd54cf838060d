"""One calibration pass → a :class:`~.histfile.HistogramSet`, or a histogram file reused with no model run.

:func:`calibration_histograms` is the call for anyone who needs ranges for several methods
(the precision search, ``tensorforge calibrate``): it returns the histograms of one pass, from
which :meth:`HistogramSet.ranges` derives any method's ranges. With ``spec.histograms`` set,
a file that exists and was made for this model is loaded instead of running the model, and a
missing one is written after the pass. The pass streams the data (bounded memory, however
many samples) unless the data is already in memory.

Reuse rule: a histogram file made for this model *is* the calibration — the data is not read
(reading a folder of images costs most of a pass). Only when ``spec.data`` is a
:class:`CalibrationData` (its fingerprint is known for free) is it compared with the file's,
and a mismatch recomputes and rewrites the file. The file's ``num_bins`` win over the spec's.

Example::

    hs, info = calibration_histograms(fp32_model, CalibrationSpec(data="calib/", histograms="m.hist.npz"))
    info["histograms"]           # "written" the first time, "reused" after
    {m: hs.ranges(m) for m in ("minmax", "entropy", "percentile", "mse")}
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
import onnx

from ..core.specs import io_specs
from ..errors import CalibrationError
from ..graph.io import model_hash
from ..models.accuracy_data import CalibrationData
from .calibration import Preprocess, iter_calibration_batches, load_calibration_data
from .collect import collect_histograms
from .fp16 import ensure_node_names
from .histfile import HistogramSet, load_histograms, save_histograms

if TYPE_CHECKING:       # api imports this module; the spec is only read here
    from .api import CalibrationSpec

__all__ = ["calibration_histograms", "histogram_pass", "model_key", "calibration_data"]


def model_key(model: onnx.ModelProto) -> str:
    """sha256 of the FP32 graph as calibration sees it: :func:`~.api.apply_precision` names every node
    before it calibrates, so the graph is hashed with its nodes named (unchanged when they already are)."""
    names = [n.name for n in model.graph.node]
    if all(names) and len(set(names)) == len(names):
        return model_hash(model)
    named = onnx.ModelProto()
    named.CopyFrom(model)
    return model_hash(ensure_node_names(named))


def calibration_data(model: onnx.ModelProto, spec: CalibrationSpec) -> CalibrationData:
    """``spec.data`` read into memory (as given when it already is a :class:`CalibrationData`)."""
    if isinstance(spec.data, CalibrationData):
        return spec.data
    return load_calibration_data(spec.data, io_specs(model)[0], spec.preprocess, batch_size=spec.batch_size,
                                 max_samples=spec.max_samples)


def histogram_pass(model: onnx.ModelProto, data: Any, *, preprocess: Preprocess = Preprocess(),
                   num_bins: int = 2048, batch_size: int = 32, max_samples: int = 512, threads: int | None = None,
                   model_sha256: str | None = None) -> HistogramSet:
    """Run ``data`` through ``model`` once and histogram every float activation.

    ``data``: a :class:`CalibrationData` (its batches, as they are), or any source
    :func:`~.calibration.iter_calibration_batches` reads — streamed, never held."""
    if isinstance(data, CalibrationData):
        hists = collect_histograms(model, data.batches, num_bins=num_bins, threads=threads)
        rows = max((int(next(iter(b.values())).shape[0]) for b in data.batches), default=0)
        samples, source, fingerprint, batch = data.samples, data.source, data.fingerprint, rows
    else:
        stream = iter_calibration_batches(data, io_specs(model)[0], preprocess, batch_size=batch_size,
                                          max_samples=max_samples)
        hists = collect_histograms(model, stream, num_bins=num_bins, threads=threads)
        samples, source, fingerprint, batch = stream.samples, stream.source, stream.fingerprint, batch_size
    return HistogramSet(model_sha256 or model_key(model), num_bins, samples, source, fingerprint, hists,
                        batch_size=batch)


def _in_memory(data: Any) -> bool:
    return isinstance(data, (CalibrationData, np.ndarray, Mapping, list, tuple))


def obtain_histograms(model: onnx.ModelProto, spec: CalibrationSpec, *, digest: str, threads: int | None,
                      data: CalibrationData | None = None,
                      keep: bool = False) -> tuple[HistogramSet, dict[str, Any], CalibrationData | None]:
    """(histograms, info, data in memory or None): the file reused when it fits, else one pass (written
    to ``spec.histograms`` when set). ``keep``: read the data into memory and return it (the accuracy
    guard checks the held-out data against it) — otherwise it is streamed; ``data``: already read."""
    path = spec.histograms
    info: dict[str, Any] = {"histograms": None}
    if path is not None:
        info["histograms_path"] = os.fspath(path)
        if os.path.exists(path):
            hs = load_histograms(path, model_sha256=digest)        # refuses another model, a damaged file
            known = spec.data if isinstance(spec.data, CalibrationData) else None
            if known is None or known.fingerprint == hs.data_fingerprint:
                info["histograms"] = "reused"
                if spec.data is not None:
                    info["data"] = "not read: the histogram file is the calibration (delete it to recalibrate)"
                if keep and data is None and _in_memory(spec.data):
                    data = calibration_data(model, spec)
                return hs, info, data
            info["histograms"] = "stale (other calibration data): recomputed"
    if spec.data is None and data is None:
        where = f" and no histogram file at {os.fspath(path)!r}" if path is not None else ""
        raise CalibrationError(f"no calibration data was given{where}; give data to calibrate on (a folder, "
                               ".npy/.npz, arrays) or an existing histogram file")
    if keep and data is None:
        data = calibration_data(model, spec)
    source = data if data is not None else spec.data
    hs = histogram_pass(model, source, preprocess=spec.preprocess, num_bins=spec.num_bins,
                        batch_size=spec.batch_size, max_samples=spec.max_samples, threads=threads,
                        model_sha256=digest)
    if path is not None:
        save_histograms(path, hs)
        info["histograms"] = info["histograms"] or "written"
    return hs, info, data


def calibration_histograms(model: onnx.ModelProto, spec: CalibrationSpec, *,
                           threads: int | None = None) -> tuple[HistogramSet, dict[str, Any]]:
    """The histograms of one calibration pass of ``model`` (the FP32 graph that will be quantized) over
    ``spec.data`` — or of ``spec.histograms`` when that file exists and was made for this model (then
    nothing runs). ``info``: ``histograms`` ("reused", "written", "stale …: recomputed" or None when no
    file was asked), ``samples``, ``source``, ``fingerprint``, ``tensors``, ``num_bins``, ``seconds``.

    >>> hs, info = calibration_histograms(model, CalibrationSpec(data=batches))   # doctest: +SKIP
    >>> hs.ranges("mse", unsigned=False)                                           # doctest: +SKIP
    """
    t0 = time.perf_counter()
    hs, info, _ = obtain_histograms(model, spec, digest=model_key(model), threads=threads)
    info.update(samples=hs.samples, source=hs.data_source, fingerprint=hs.data_fingerprint,
                tensors=len(hs.histograms), num_bins=hs.num_bins, seconds=round(time.perf_counter() - t0, 3))
    return hs, info
