"""Batch dimension: read it, and rewrite a model to a new (fixed or symbolic) batch.

Example::

    batch_dim_of(model)            # 1 (exported with a fixed batch)
    model = set_batch(model, "N")  # runs at any batch; Reshape([1, -1]) became [0, -1]
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from tensorforge.errors import BuildError, ModelError

__all__ = ["batch_dim_of", "batch_inputs", "set_batch"]


def batch_dim_of(model: onnx.ModelProto) -> int | str | None:
    """Dim 0 of the first graph input: int if fixed, str if symbolic, None if unknown/rank 0."""
    if not model.graph.input:
        return None
    t = model.graph.input[0].type
    if not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
        return None
    dims = t.tensor_type.shape.dim
    if not dims:
        return None
    d = dims[0]
    if d.HasField("dim_value"):
        return int(d.dim_value)
    if d.HasField("dim_param") and d.dim_param:
        return str(d.dim_param)
    return None


def _dim0(vi: onnx.ValueInfoProto) -> int | str | None:
    t = vi.type
    if not t.HasField("tensor_type") or not t.tensor_type.HasField("shape") or not t.tensor_type.shape.dim:
        return None
    d = t.tensor_type.shape.dim[0]
    if d.HasField("dim_value"):
        return int(d.dim_value)
    return str(d.dim_param) if d.HasField("dim_param") and d.dim_param else None


def batch_inputs(model: onnx.ModelProto) -> list[str]:
    """The graph inputs that share the batch axis: dim 0 equal to the first input's dim 0.

    A fixed batch of 2 on the first input does not make a ``[3, 4]`` weight fed as the second
    input a batch of 3 (``MatMul([2, 3], [3, 4])``, ``Add([2, 3], [3])``): only inputs whose dim 0
    is the same value (or the same symbol) share it. Initializers listed as inputs never do.
    """
    batch = batch_dim_of(model)
    if batch is None:
        return []
    inits = {t.name for t in model.graph.initializer}
    return [vi.name for vi in model.graph.input if vi.name not in inits and _dim0(vi) == batch]


def _set_dim0(vi: onnx.ValueInfoProto, batch: int | str) -> None:
    t = vi.type
    if not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
        return
    dims = t.tensor_type.shape.dim
    if not dims:
        return
    if isinstance(batch, str):
        dims[0].dim_param = batch  # oneof: clears dim_value
    else:
        dims[0].dim_value = batch


def _constants(graph: onnx.GraphProto) -> dict[str, tuple[str, object]]:
    """name -> ("init", TensorProto) | ("node", NodeProto) for constant shape tensors."""
    out: dict[str, tuple[str, object]] = {t.name: ("init", t) for t in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx") and n.attribute:
            if n.attribute[0].name == "value":
                out[n.output[0]] = ("node", n)
    for vi in graph.input:
        out.pop(vi.name, None)  # a fed value is not a constant
    return out


def _shape_array(kind: str, holder: object) -> np.ndarray:
    tensor = holder if kind == "init" else holder.attribute[0].t  # type: ignore[attr-defined]
    return numpy_helper.to_array(tensor)  # type: ignore[arg-type]


def _inferred_dim0(model: onnx.ModelProto) -> dict[str, int | None]:
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:
        return {}
    out: dict[str, int | None] = {}
    for vi in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        dims = vi.type.tensor_type.shape.dim if vi.type.HasField("tensor_type") else []
        if dims and dims[0].HasField("dim_value"):
            out[vi.name] = int(dims[0].dim_value)
        elif dims:
            out[vi.name] = None
    return out


def _fix_reshapes(model: onnx.ModelProto, old: int) -> None:
    graph = model.graph
    consts = _constants(graph)
    dim0 = _inferred_dim0(model)
    uses: dict[str, int] = {}
    for n in graph.node:
        for i in n.input:
            uses[i] = uses.get(i, 0) + 1
    for node in graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2 or node.input[1] not in consts:
            continue
        kind, holder = consts[node.input[1]]
        target = _shape_array(kind, holder).astype(np.int64)
        if target.ndim != 1 or target.size == 0 or int(target[0]) != old:
            continue
        data = node.input[0]
        if data in consts:
            continue  # reshaping a constant: no batch involved
        known = dim0.get(data)
        if known is not None and known != old:
            continue  # the data's dim 0 is known and is not the batch
        allowzero = any(a.name == "allowzero" and a.i == 1 for a in node.attribute)
        new = target.copy()
        if known == old and not allowzero:
            new[0] = 0  # copy dim 0 from the data: exact whatever the other dims are
        elif -1 not in target[1:] and 0 not in target[1:]:
            new[0] = -1  # the other dims are fixed: the batch is what is left
        else:
            raise BuildError(
                f"Reshape node {node.name or node.output[0]!r} hard-codes batch {old} in its "
                f"target shape {target.tolist()} and cannot be rewritten safely; re-export the "
                "model with a dynamic batch axis (torch.onnx.export(dynamic_axes=...))"
            )
        new_tensor = numpy_helper.from_array(new, name=f"{node.input[1]}_batch_free")
        if uses.get(node.input[1], 0) > 1 or kind == "node":
            # the shape is shared (or a Constant node): give this Reshape its own copy
            existing = {t.name for t in graph.initializer}
            name, i = new_tensor.name, 1
            while name in existing:
                name, i = f"{new_tensor.name}_{i}", i + 1
            new_tensor.name = name
            graph.initializer.append(new_tensor)
            node.input[1] = name
        else:
            new_tensor.name = holder.name  # type: ignore[attr-defined]
            holder.CopyFrom(new_tensor)  # type: ignore[attr-defined]


def set_batch(model: onnx.ModelProto, batch: int | str) -> onnx.ModelProto:
    """A copy of ``model`` whose batch inputs (:func:`batch_inputs`) and the outputs with the
    same dim 0 have dim 0 = ``batch``; other inputs and outputs keep their shapes.

    ``batch`` int fixes it, str makes it symbolic (e.g. ``"N"``). Stale ``value_info`` is
    dropped, and Reshape nodes whose constant target shape hard-codes the old fixed batch
    in position 0 are rewritten (``[1, -1]`` → ``[0, -1]``, ``[1, 512]`` → ``[-1, 512]``)
    so the model really runs at the new batch. Raises :class:`BuildError` naming the node
    when such a Reshape cannot be rewritten safely.
    """
    if isinstance(batch, bool) or not isinstance(batch, (int, str)):
        raise BuildError(f"batch must be a positive int or a symbol name like 'N', got {batch!r}")
    if isinstance(batch, int) and batch < 1:
        raise BuildError(f"batch must be >= 1, got {batch}")
    if isinstance(batch, str) and not batch.strip():
        raise BuildError("a symbolic batch needs a name, e.g. 'N'")
    if not model.graph.input:
        raise ModelError("the model has no graph inputs; there is no batch dimension to set")
    old = batch_dim_of(model)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    if isinstance(old, int) and old != batch:
        _fix_reshapes(out, old)
    shared = set(batch_inputs(model))
    for vi in out.graph.input:
        if vi.name in shared:  # an initializer-as-input or a weight fed as input keeps its shape
            _set_dim0(vi, batch)
    for vi in out.graph.output:
        if _dim0(vi) in (old, None):
            _set_dim0(vi, batch)
    del out.graph.value_info[:]
    return out
