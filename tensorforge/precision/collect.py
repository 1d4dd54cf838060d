"""Run calibration data through a model and histogram every float activation.

The model is copied with each float32 tensor that a node produces (and each float
graph input) added as a graph output, run once per calibration batch on ONNX Runtime
(basic graph optimizations, so requested tensors keep their meaning), and each
tensor's values feed its :class:`AbsHistogram`. The method then turns histograms into
ranges (:func:`ranges_from_histograms`).

Example::

    hists = collect_histograms(model, data.batches)      # or any iterable: iter_calibration_batches(...)
    ranges = ranges_from_histograms(hists, "entropy")     # {tensor: (low, high)}
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sized

import numpy as np
import onnx
from onnx import TensorProto, helper

from ..backends.base import SessionConfig
from ..backends.registry import get_backend
from ..core.progress import report as report_progress
from ..errors import CalibrationError
from .histogram import AbsHistogram
from .methods import METHODS, tensor_range

__all__ = ["activation_tensors", "collect_histograms", "ranges_from_histograms"]


def _float_types(model: onnx.ModelProto) -> dict[str, int]:
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:   # shape inference is best effort; fall back to what the model declares
        inferred = model
    g = inferred.graph
    return {v.name: v.type.tensor_type.elem_type for v in list(g.value_info) + list(g.input) + list(g.output)
            if v.type.HasField("tensor_type")}


def activation_tensors(model: onnx.ModelProto) -> list[str]:
    """Float32 tensors computed at run time: node outputs (Constant nodes excluded) and graph inputs."""
    types = _float_types(model)
    inits = {t.name for t in model.graph.initializer}
    names: list[str] = [v.name for v in model.graph.input if v.name not in inits
                        and types.get(v.name) == TensorProto.FLOAT]
    for node in model.graph.node:
        if node.op_type == "Constant":
            continue
        names += [o for o in node.output if o and types.get(o) == TensorProto.FLOAT]
    return list(dict.fromkeys(names))


def collect_histograms(model: onnx.ModelProto, batches: Iterable[Mapping[str, np.ndarray]], *, num_bins: int = 2048,
                       threads: int | None = None) -> dict[str, AbsHistogram]:
    """One histogram per float activation (in :func:`activation_tensors` order) over ``batches``, any
    iterable of feed dicts (a list, or a :class:`~.calibration.CalibrationStream`): each batch is run,
    histogrammed and dropped, so memory does not grow with the number of batches."""
    tensors = activation_tensors(model)
    if not tensors:
        raise CalibrationError("the model has no float32 activations to calibrate")
    augmented = onnx.ModelProto()
    augmented.CopyFrom(model)
    present = {o.name for o in augmented.graph.output}
    for name in tensors:
        if name not in present:
            augmented.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    session = get_backend("onnxruntime").create_session(
        augmented.SerializeToString(), SessionConfig("cpu", threads, {"graph_optimization_level": "basic"}))
    names = list(session.output_names)
    hists = {name: AbsHistogram(num_bins) for name in tensors}
    # the step count for progress: a list's length, a stream's most batches (it may hold fewer samples)
    most, size = getattr(batches, "max_samples", None), getattr(batches, "batch_size", None)
    total = len(batches) if isinstance(batches, Sized) else (-(-most // size) if most and size else None)
    for i, feeds in enumerate(batches):
        try:
            outputs = session.run(feeds)
        except Exception as exc:   # ORT's own error types stay behind this line
            raise CalibrationError(f"running calibration batch {i} failed: {exc}") from exc
        for name, value in zip(names, outputs):
            if name in hists:
                try:
                    hists[name].update(value)
                except ValueError as exc:
                    raise CalibrationError(f"tensor {name!r} in calibration batch {i}: {exc}") from exc
        del outputs, feeds         # before the next batch is read and run: one batch's tensors at a time
        report_progress("calibration batch", i + 1, total)
    return hists


def ranges_from_histograms(hists: dict[str, AbsHistogram], method: str, *, percentile: float = 99.99,
                           unsigned: bool = True) -> dict[str, tuple[float, float]]:
    if method not in METHODS:
        raise CalibrationError(f"unknown calibration method {method!r}; use one of {', '.join(METHODS)}")
    return {name: tensor_range(h, method, percentile=percentile, unsigned=unsigned)
            for name, h in hists.items() if h.total}
