"""How much memory one call at batch B needs, estimated before running it.

Weights plus the peak of live activations over a topological walk of the graph
(a tensor is live from the node that makes it to its last consumer), times the batch.
It is an estimate of what a memory-planning runtime needs, not a bound: the
guard that uses it keeps a safety factor.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, shape_inference

from ..core.specs import io_specs


def _nbytes(value: onnx.ValueInfoProto) -> int | None:
    """Bytes of one sample of a tensor: symbolic/unknown dims (the batch) count as 1."""
    tt = value.type.tensor_type
    try:
        itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type)).itemsize
    except (KeyError, TypeError):
        return None
    n = 1
    for d in tt.shape.dim:
        if d.HasField("dim_value"):
            n *= d.dim_value
    return n * itemsize


def per_sample_activation_bytes(model: onnx.ModelProto) -> int:
    """Peak bytes of live intermediate tensors for one sample (batch dims taken as 1)."""
    try:
        inferred = shape_inference.infer_shapes(model, data_prop=True)
    except Exception:
        inferred = model
    sizes: dict[str, int] = {}
    for v in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        nb = _nbytes(v)
        if nb is not None:
            sizes[v.name] = nb
    init = {t.name for t in inferred.graph.initializer}
    nodes = list(inferred.graph.node)
    last_use: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for name in node.input:
            last_use[name] = i
    outputs = {o.name for o in inferred.graph.output}
    live: dict[str, int] = {v.name: sizes.get(v.name, 0) for v in inferred.graph.input if v.name not in init}
    peak = sum(live.values())
    for i, node in enumerate(nodes):
        for name in node.output:
            if name:
                live[name] = sizes.get(name, 0)
        peak = max(peak, sum(live.values()))
        for name in list(live):
            if last_use.get(name, -1) <= i and name not in outputs:
                del live[name]
    return peak


def weight_bytes(model: onnx.ModelProto) -> int:
    return sum(len(t.raw_data) or 4 * len(t.float_data) for t in model.graph.initializer)


def estimate_bytes(model: onnx.ModelProto, batch: int, *, per_sample: int | None = None) -> int:
    """Weights + batch × (peak activations + inputs and outputs held by the caller)."""
    if per_sample is None:
        per_sample = per_sample_activation_bytes(model)
    inputs, outputs = io_specs(model)
    io = 0
    for spec in inputs + outputs:
        n = int(np.prod([d if isinstance(d, int) else 1 for d in spec.shape], dtype=np.int64))
        io += n * np.dtype(spec.dtype).itemsize
    return weight_bytes(model) + batch * (per_sample + io)
