"""FP16 / BF16 conversion of weights and activations, with Casts where precisions meet.

Which inputs and outputs of a node change type is read off the ONNX op schema: the type
variables bound to the node's float outputs (``T`` of Conv, Gemm, Add …) are converted;
inputs typed otherwise stay as they are (Resize's ``scales`` is ``tensor(float)``,
BatchNormalization's ``mean``/``var`` are ``T2``). Nodes stay FP32 when

* their op is in :data:`KEEP_FP32_OPS` — long accumulations and exponentials that lose
  precision or overflow in 16 bits (Softmax, reductions, LRN, Exp, Pow, normalizations);
* the caller asks (``keep_nodes``: the accuracy guard's fallbacks, ``keep_ops``);
* they carry subgraphs (If/Loop/Scan), set a dtype by attribute (Cast, ConstantOfShape,
  Random*), are not in the default ONNX domain, or their schema has no 16-bit type.

Graph inputs and outputs keep FP32 unless ``keep_io_types=False``; a Cast sits at every
boundary between an FP32 and a 16-bit region. Initializers used in 16 bits get a 16-bit
copy (FP16 values beyond ±65,504 are clamped and counted; the FP32 original is dropped
when nothing else uses it). Backends without 16-bit kernels (ONNX Runtime on CPU has
none for Conv/MatMul/Gemm) run the converted nodes in FP32 between Casts they insert:
:func:`missing_kernels` asks the backend's capabilities for those ops so a report can say so.

Example::

    half, info = convert_float(model, "fp16")
    info.kept_fp32          # {'softmax_0': 'Softmax: exp/sum accumulation …'}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..errors import BuildError

__all__ = ["KEEP_FP32_OPS", "ConversionInfo", "convert_float", "ensure_node_names", "missing_kernels",
           "compute_in_fp32"]

_TARGETS = {"fp16": (TensorProto.FLOAT16, "tensor(float16)"), "bf16": (TensorProto.BFLOAT16, "tensor(bfloat16)")}
_REDUCE = "long accumulation: the sum loses precision (or overflows) in 16 bits"
KEEP_FP32_OPS: dict[str, str] = {
    **{op: _REDUCE for op in ("ReduceSum", "ReduceMean", "ReduceSumSquare", "ReduceL1", "ReduceL2",
                              "ReduceLogSum", "ReduceLogSumExp", "ReduceProd", "CumSum")},
    "Softmax": "exp/sum accumulation: overflow and precision loss in 16 bits",
    "LogSoftmax": "exp/sum accumulation: overflow and precision loss in 16 bits",
    "LRN": "sum of squares across channels overflows FP16",
    "Exp": "overflows FP16 above e^11",
    "Pow": "overflows FP16 easily",
    "LayerNormalization": "variance accumulation (kept FP32 like mixed-precision training does)",
    "InstanceNormalization": "variance accumulation",
    "GroupNormalization": "variance accumulation",
    "Range": "index arithmetic",
}
_NEVER = {"Cast": "sets its output type by attribute", "CastLike": "output type follows its second input",
          "Constant": "constants are cast where used", "ConstantOfShape": "sets its output type by attribute",
          "RandomNormal": "dtype attribute", "RandomUniform": "dtype attribute", "EyeLike": "dtype attribute",
          "RandomNormalLike": "dtype attribute", "RandomUniformLike": "dtype attribute",
          "If": "has subgraphs", "Loop": "has subgraphs", "Scan": "has subgraphs"}
_FP16_MAX = 65504.0
_BF16_OPSET = 22      # Conv, pooling … accept bfloat16 from opset 22 on


def _upgrade(model: onnx.ModelProto, opset: int) -> tuple[onnx.ModelProto, str]:
    """Opset upgrade for BF16 (best effort: on failure the old opset stays and the report says why)."""
    old = _opset(model)
    try:
        up = onnx.version_converter.convert_version(model, opset)
        up.ir_version = max(up.ir_version, helper.find_min_ir_version_for(list(up.opset_import)))
        return up, f"opset upgraded {old} -> {opset} (Conv and pooling accept bfloat16 from opset 22)"
    except Exception as exc:
        return model, f"opset upgrade {old} -> {opset} failed ({type(exc).__name__}); ops without bf16 at " \
                      f"opset {old} stay FP32"


@dataclass(frozen=True)
class ConversionInfo:
    target: str
    converted_nodes: int
    kept_fp32: dict[str, str]             # node name -> why it stays FP32 (only nodes that compute floats)
    casts_inserted: int
    clamped_values: int                   # initializer values beyond the FP16 range
    notes: list[str] = field(default_factory=list)


def ensure_node_names(model: onnx.ModelProto) -> onnx.ModelProto:
    """Give every node a unique name (``{op}_{i}``) in place; the guard refers to nodes by name."""
    seen: set[str] = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            base = node.name or f"{node.op_type.lower()}_{i}"
            name, k = base, 1
            while name in seen:
                name, k = f"{base}_{k}", k + 1
            node.name = name
        seen.add(node.name)
    return model


def _types(model: onnx.ModelProto) -> dict[str, int]:
    try:
        g = onnx.shape_inference.infer_shapes(model).graph
    except Exception:
        g = model.graph
    out = {v.name: v.type.tensor_type.elem_type for v in list(g.value_info) + list(g.input) + list(g.output)}
    out.update({t.name: t.data_type for t in model.graph.initializer})
    return out


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)


def _slots(schema: Any, count: int, formals: Any) -> list[str]:
    """type_str of each actual position (a trailing variadic formal repeats)."""
    strs = [f.type_str for f in formals]
    if not strs:
        return [""] * count
    return [strs[min(i, len(strs) - 1)] for i in range(count)]


def _plan(node: onnx.NodeProto, types: dict[str, int], opset: int, target_str: str,
          keep_ops: dict[str, str]) -> tuple[set[int], set[int]] | str:
    """(converted input positions, converted output positions), or the reason to stay FP32."""
    if node.domain not in ("", "ai.onnx"):
        return f"custom domain {node.domain!r}"
    if node.op_type in _NEVER:
        return _NEVER[node.op_type]
    if node.op_type in keep_ops:
        return f"{node.op_type}: {keep_ops[node.op_type]}"
    try:
        schema = onnx.defs.get_schema(node.op_type, opset)
    except Exception:
        return "no ONNX schema for this op"
    allowed = {c.type_param_str: set(c.allowed_type_strs) for c in schema.type_constraints}
    out_slots = _slots(schema, len(node.output), schema.outputs)
    in_slots = _slots(schema, len(node.input), schema.inputs)
    convert_vars = {s for o, s in zip(node.output, out_slots) if o and types.get(o) == TensorProto.FLOAT
                    and s in allowed}
    if not convert_vars:
        return ""
    if any(target_str not in allowed[v] for v in convert_vars):
        return f"{node.op_type}'s schema has no {target_str}"
    ins = {i for i, (name, s) in enumerate(zip(node.input, in_slots)) if name and s in convert_vars}
    outs = {i for i, (name, s) in enumerate(zip(node.output, out_slots)) if name and s in convert_vars}
    return ins, outs


def _to_low(t: TensorProto, target: str, name: str) -> tuple[TensorProto, int]:
    arr = numpy_helper.to_array(t).astype(np.float32)
    if target == "fp16":
        clamped = int(np.count_nonzero(np.abs(arr) > _FP16_MAX))
        return numpy_helper.from_array(np.clip(arr, -_FP16_MAX, _FP16_MAX).astype(np.float16), name), clamped
    import ml_dtypes  # a dependency of onnx; numpy has no bfloat16

    return numpy_helper.from_array(arr.astype(ml_dtypes.bfloat16), name), 0


def convert_float(model: onnx.ModelProto, target: str = "fp16", *, keep_nodes: set[str] | frozenset[str] = frozenset(),
                  keep_ops: dict[str, str] | None = None, keep_io_types: bool = True) -> tuple[onnx.ModelProto,
                                                                                           ConversionInfo]:
    """Convert ``model`` (float32) to ``target`` ("fp16" or "bf16"); see the module doc."""
    if target not in _TARGETS:
        raise BuildError(f"target must be one of {list(_TARGETS)}, got {target!r}")
    low_type, low_str = _TARGETS[target]
    keep_ops = KEEP_FP32_OPS if keep_ops is None else keep_ops
    m = onnx.ModelProto()
    m.CopyFrom(model)
    notes: list[str] = []
    if target == "bf16" and _opset(m) < _BF16_OPSET:
        m, note = _upgrade(m, _BF16_OPSET)
        notes.append(note)
    ensure_node_names(m)
    g = m.graph
    types, opset = _types(m), _opset(m)
    inits = {t.name: t for t in g.initializer}
    graph_inputs = {v.name for v in g.input if v.name not in inits}
    low: set[str] = set()                      # tensors that now hold 16-bit values
    if not keep_io_types:
        low |= {n for n in graph_inputs if types.get(n) == TensorProto.FLOAT}
    kept: dict[str, str] = {}
    plans: dict[str, tuple[set[int], set[int]]] = {}
    for node in g.node:
        if not any(types.get(o) == TensorProto.FLOAT for o in node.output):
            continue
        plan = "kept by request" if node.name in keep_nodes else _plan(node, types, opset, low_str, keep_ops)
        if isinstance(plan, str):
            if plan:
                kept[node.name] = plan
            continue
        plans[node.name] = plan
        low |= {node.output[i] for i in plan[1]}

    casts: dict[tuple[str, int], str] = {}
    new_nodes: list[onnx.NodeProto] = []
    low_inits: dict[str, TensorProto] = {}
    clamped = 0

    def cast(name: str, to: int) -> str:
        key = (name, to)
        if key not in casts:
            casts[key] = f"{name}__to_{'fp32' if to == TensorProto.FLOAT else target}"
            new_nodes.append(helper.make_node("Cast", [name], [casts[key]], to=to, name=f"cast_{casts[key]}"))
        return casts[key]

    for node in g.node:
        node_plan = plans.get(node.name)
        for i, name in enumerate(node.input):
            if not name:
                continue
            want_low = node_plan is not None and i in node_plan[0]
            if name in inits and types.get(name) == TensorProto.FLOAT:
                if want_low:
                    if name not in low_inits:
                        low_inits[name], c = _to_low(inits[name], target, f"{name}__{target}")
                        clamped += c
                    node.input[i] = low_inits[name].name
                continue
            if want_low and name not in low and types.get(name) == TensorProto.FLOAT:
                node.input[i] = cast(name, low_type)
            elif not want_low and name in low:
                node.input[i] = cast(name, TensorProto.FLOAT)
        new_nodes.append(node)

    outputs = {o.name for o in g.output}
    for vi in g.output:
        if vi.name in low:
            if keep_io_types:
                inner = f"{vi.name}__{target}"
                for node in new_nodes:
                    node.output[:] = [inner if o == vi.name else o for o in node.output]
                    node.input[:] = [inner if x == vi.name else x for x in node.input]
                new_nodes.append(helper.make_node("Cast", [inner], [vi.name], to=TensorProto.FLOAT,
                                                  name=f"cast_{vi.name}__to_fp32"))
            else:
                vi.type.tensor_type.elem_type = low_type
    if not keep_io_types:
        for vi in g.input:
            if vi.name in graph_inputs and vi.name in low:
                vi.type.tensor_type.elem_type = low_type

    used = {x for n in new_nodes for x in n.input} | outputs
    g.ClearField("node")
    g.node.extend(_toposort(new_nodes, {v.name for v in g.input} | set(inits) | {t.name for t in low_inits.values()}))
    keep_inits = [t for t in g.initializer if t.name in used] + [t for t in low_inits.values()]
    g.ClearField("initializer")
    g.initializer.extend(keep_inits)
    g.ClearField("value_info")
    try:
        onnx.checker.check_model(m)
    except onnx.checker.ValidationError as exc:
        raise BuildError(f"the {target} conversion produced an invalid model: {exc}") from exc
    if clamped:
        notes.append(f"{clamped} weight value(s) beyond ±65504 clamped to the FP16 range")
    return m, ConversionInfo(target=target, converted_nodes=len(plans), kept_fp32=kept,
                             casts_inserted=len(casts) + sum(1 for v in g.output if v.name in low and keep_io_types),
                             clamped_values=clamped, notes=notes)


def _toposort(nodes: list[onnx.NodeProto], available: set[str]) -> list[onnx.NodeProto]:
    ready = set(available) | {""}
    pending, out = list(nodes), []
    while pending:
        rest = []
        for n in pending:
            if all(x in ready for x in n.input):
                out.append(n)
                ready.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):     # a cycle or a dangling input: keep the order, let the checker speak
            return out + rest
        pending = rest
    return out


def missing_kernels(model: onnx.ModelProto, backend: str = "onnxruntime", device: str = "cpu") -> list[str]:
    """Op types of ``model`` whose 16-bit tensors ``backend`` has no kernel for on ``device``.

    Asked through the backend's :meth:`~tensorforge.backends.base.Backend.capabilities` (ONNX
    Runtime reads its kernel registry); such nodes still run — ONNX Runtime casts around them
    and computes in FP32 — which is why FP16 on a CPU is often slower than FP32.
    """
    from ..backends.registry import get_backend

    capabilities = get_backend(backend).capabilities(device)
    types = _types(model)
    lacking = set()
    for node in model.graph.node:
        for name in list(node.input) + list(node.output):
            t = types.get(name)
            if t in (TensorProto.FLOAT16, TensorProto.BFLOAT16):
                precision = "fp16" if t == TensorProto.FLOAT16 else "bf16"
                if not capabilities.has_kernel(node.op_type, precision, node.domain or ""):
                    lacking.add(node.op_type)
                break
    return sorted(lacking)


def compute_in_fp32(model: onnx.ModelProto, op_types: set[str] | list[str]) -> tuple[onnx.ModelProto, int]:
    """Make each 16-bit node of ``op_types`` compute in FP32 between Casts; returns (model, nodes changed).

    What ONNX Runtime does by itself for FP16 on a CPU, done explicitly — needed for BF16,
    where it does not: inputs are cast up, the op runs in FP32, its outputs are cast back
    down, so every tensor between nodes still holds (and is rounded to) the 16-bit type.
    """
    m = onnx.ModelProto()
    m.CopyFrom(model)
    types = _types(m)
    wanted = set(op_types)
    out_nodes: list[onnx.NodeProto] = []
    changed = 0
    for node in m.graph.node:
        low = [t for t in list(node.input) + list(node.output)
               if t and types.get(t) in (TensorProto.FLOAT16, TensorProto.BFLOAT16)]
        if node.op_type not in wanted or not low or node.domain not in ("", "ai.onnx"):
            out_nodes.append(node)
            continue
        changed += 1
        for i, name in enumerate(node.input):
            if name and types.get(name) in (TensorProto.FLOAT16, TensorProto.BFLOAT16):
                up = f"{name}__up_{node.name}"
                out_nodes.append(helper.make_node("Cast", [name], [up], to=TensorProto.FLOAT, name=f"cast_{up}"))
                node.input[i] = up
        downs = []
        for i, name in enumerate(node.output):
            t = types.get(name)
            if name and t in (TensorProto.FLOAT16, TensorProto.BFLOAT16):
                wide = f"{name}__fp32"
                downs.append(helper.make_node("Cast", [wide], [name], to=t, name=f"cast_{name}__down"))
                node.output[i] = wide
        out_nodes.append(node)
        out_nodes.extend(downs)
    m.graph.ClearField("node")
    m.graph.node.extend(out_nodes)
    m.graph.ClearField("value_info")
    return m, changed
