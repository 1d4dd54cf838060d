"""Model statistics: parameter count, multiply-accumulate count and op histogram.

These work on any ONNX model -- zoo or not, any opset, with external data loaded or
not (only tensor *dims* are read, never the weight bytes), with initializers that are
also listed as graph inputs (IR < 4 style) -- and never raise on a model they cannot
fully understand: what cannot be counted is left out, as each docstring says.
Subgraphs (If/Loop/Scan bodies) are walked too.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence

import onnx
from onnx import TensorProto

__all__ = ["count_params", "count_macs", "op_histogram"]

# Operand positions that hold constants which are not learned parameters: inference
# statistics, clamp bounds, resize factors, quantization scales and zero points.
_NON_PARAM_INPUTS: dict[str, frozenset[int]] = {
    "BatchNormalization": frozenset({3, 4}),
    "Clip": frozenset({1, 2}),
    "Resize": frozenset({1, 2, 3}),
    "Upsample": frozenset({1}),
    "Pad": frozenset({1, 2, 3}),
    "QuantizeLinear": frozenset({1, 2}),
    "DequantizeLinear": frozenset({1, 2}),
    "DynamicQuantizeLinear": frozenset(),
}

_FLOAT_TYPES = frozenset({
    TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16,
    *(getattr(TensorProto, n) for n in (
        "FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "FLOAT4E2M1",
    ) if hasattr(TensorProto, n)),
})

# Quantized weights are integers but still parameters: counted where they feed the
# data input of a dequantizing op.
_DEQUANT_DATA_INPUTS: dict[str, int] = {"DequantizeLinear": 0}


def _graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """``graph`` and every subgraph nested in its nodes' attributes, depth first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _graphs(g)


def _numel(dims: Iterable[int]) -> int:
    n = 1
    for d in dims:
        n *= int(d)
    return n


def _constant_node_tensor(node: onnx.NodeProto) -> tuple[int, int] | None:
    """(element type, element count) of a Constant node's value, or None."""
    for attr in node.attribute:
        if attr.name == "value":
            return attr.t.data_type, _numel(attr.t.dims)
        if attr.name == "value_float":
            return TensorProto.FLOAT, 1
        if attr.name == "value_floats":
            return TensorProto.FLOAT, len(attr.floats)
        if attr.name == "sparse_value":
            return attr.sparse_tensor.values.data_type, _numel(attr.sparse_tensor.values.dims)
        if attr.name in ("value_int", "value_ints", "value_string", "value_strings"):
            return TensorProto.INT64, 0
    return None


def count_params(model: onnx.ModelProto) -> int:
    """Number of learned parameters, in the torchvision / Caffe convention.

    Counted: every floating-point constant tensor -- initializers and Constant nodes
    (in subgraphs too) -- i.e. conv/linear weights and biases and BatchNormalization
    gamma and beta. Not counted: BatchNormalization running mean and variance (inputs
    3 and 4), Clip bounds, Resize/Upsample/Pad operands, Q/DQ scales and zero points,
    and integer or bool tensors (shapes, axes, indices) -- except integer weights that
    feed a DequantizeLinear, which are quantized parameters. A tensor consumed both
    at a counted and at an excluded position is counted. Each name counts once, even
    when an initializer is also listed as a graph input. Only dims are read, so models
    whose external data is not loaded are fine.

    With this convention ResNet-50 gives torchvision's 25,557,032. After BN folding the
    count changes (BN's gamma/beta disappear, conv biases appear): it counts what is
    stored.

    Example::

        count_params(zoo.build("resnet50"))   # 25557032
    """
    counted = 0
    for graph in _graphs(model.graph):
        excluded: set[str] = set()
        used_as_param: set[str] = set()
        dequant_data: set[str] = set()
        for node in graph.node:
            skip = _NON_PARAM_INPUTS.get(node.op_type, frozenset())
            for i, name in enumerate(node.input):
                (excluded if i in skip else used_as_param).add(name)
            if node.op_type in _DEQUANT_DATA_INPUTS and len(node.input) > 0:
                dequant_data.add(node.input[_DEQUANT_DATA_INPUTS[node.op_type]])

        def keep(name: str, dtype: int) -> bool:
            if name in excluded and name not in used_as_param:
                return False
            return dtype in _FLOAT_TYPES or name in dequant_data

        seen: set[str] = set()
        for init in graph.initializer:
            if init.name not in seen and keep(init.name, init.data_type):
                counted += _numel(init.dims)
            seen.add(init.name)
        for sparse in graph.sparse_initializer:
            name = sparse.values.name
            if name not in seen and keep(name, sparse.values.data_type):
                counted += _numel(sparse.values.dims)
            seen.add(name)
        for node in graph.node:
            if node.op_type != "Constant" or node.domain not in ("", "ai.onnx"):
                continue
            info = _constant_node_tensor(node)
            if info is None or not node.output:
                continue
            dtype, n = info
            if node.output[0] not in seen and keep(node.output[0], dtype):
                counted += n
            seen.add(node.output[0])
    return counted


def _skeleton(model: onnx.ModelProto, batch: int,
              shapes: Mapping[str, Sequence[int]] | None = None) -> onnx.ModelProto:
    """A weightless copy for shape inference, with the symbolic batch set to ``batch``, and
    the inputs named in ``shapes`` set to those whole shapes (their other symbolic dims, a
    sequence length say, take the given values wherever the graph names them).

    Large float initializers become typed graph inputs, so no weight bytes are copied
    (models of several GB, or with external data not loaded, infer fine); small ones
    stay, since shape inference may need their values (e.g. Resize scales).
    """
    g = model.graph
    shapes = shapes or {}
    inputs = [vi for vi in g.input]
    input_names = {vi.name for vi in inputs}
    init_names = {t.name for t in g.initializer} | {t.values.name for t in g.sparse_initializer}
    small: list[onnx.TensorProto] = []
    new_inputs: list[onnx.ValueInfoProto] = []
    params: dict[str, int] = {}          # symbolic dim name -> the value it takes
    for vi in inputs:
        vi = onnx.ValueInfoProto.FromString(vi.SerializeToString())
        dims = vi.type.tensor_type.shape.dim if vi.type.HasField("tensor_type") else []
        if vi.name in shapes and len(shapes[vi.name]) == len(dims):
            for d, size in zip(dims, shapes[vi.name]):
                if d.dim_param:
                    params[d.dim_param] = int(size)
                d.Clear()
                d.dim_value = int(size)
        # The batch is the leading symbolic dim of real (non-initializer) inputs.
        elif vi.name not in init_names and len(dims) > 0 and not dims[0].HasField("dim_value"):
            if dims[0].dim_param:
                params.setdefault(dims[0].dim_param, batch)
            dims[0].Clear()
            dims[0].dim_value = batch
        new_inputs.append(vi)

    def with_batch(vis: Iterable[onnx.ValueInfoProto]) -> list[onnx.ValueInfoProto]:
        # Declared shapes help where inference cannot (contrib ops): same substitution.
        out = []
        for vi in vis:
            vi = onnx.ValueInfoProto.FromString(vi.SerializeToString())
            if vi.type.HasField("tensor_type"):
                for d in vi.type.tensor_type.shape.dim:
                    if d.HasField("dim_param") and d.dim_param in params:
                        value = params[d.dim_param]
                        d.Clear()
                        d.dim_value = value
            out.append(vi)
        return out

    for t in g.initializer:
        # External data not loaded: values unknown, keep only the declared type/shape.
        external = t.data_location == TensorProto.EXTERNAL and not t.raw_data
        if external or (t.data_type in _FLOAT_TYPES and _numel(t.dims) > 64):
            if t.name not in input_names:
                new_inputs.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
        else:
            small.append(t)
    skel = onnx.ModelProto()
    skel.ir_version = max(model.ir_version, 4)  # IR >= 4 lets initializers be non-inputs
    skel.opset_import.extend(model.opset_import)
    skel.functions.extend(model.functions)
    skel.graph.name = g.name
    skel.graph.node.extend(g.node)
    skel.graph.input.extend(new_inputs)
    skel.graph.output.extend(with_batch(g.output))
    skel.graph.value_info.extend(with_batch(g.value_info))
    skel.graph.initializer.extend(small)
    skel.graph.sparse_initializer.extend(g.sparse_initializer)
    return skel


def _shape_map(model: onnx.ModelProto) -> dict[str, list[int | None]]:
    """Name -> shape (None for an unknown dim) over all graphs, after shape inference."""
    shapes: dict[str, list[int | None]] = {}
    for graph in _graphs(model.graph):
        for t in graph.initializer:
            shapes[t.name] = [int(d) for d in t.dims]
        for vi in (*graph.input, *graph.value_info, *graph.output):
            tt = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
            if tt is None or not tt.HasField("shape"):
                continue
            shapes[vi.name] = [
                int(d.dim_value) if d.HasField("dim_value") else None for d in tt.shape.dim
            ]
    return shapes


def _known(shape: list[int | None] | None) -> list[int] | None:
    if shape is None or any(d is None for d in shape):
        return None
    return [int(d) for d in shape]  # type: ignore[arg-type]


def _node_macs(node: onnx.NodeProto, shapes: dict[str, list[int | None]]) -> int:
    def shape(i: int, outputs: bool = False) -> list[int] | None:
        names = node.output if outputs else node.input
        return _known(shapes.get(names[i])) if i < len(names) and names[i] else None

    op = node.op_type
    out = shape(0, outputs=True)
    if op in ("Conv", "ConvInteger", "QLinearConv", "FusedConv"):
        # Each output element is a dot product over (Cin/group) x kernel: W.shape[1:].
        w = shape(3 if op == "QLinearConv" else 1)
        return math.prod(out) * math.prod(w[1:]) if out and w else 0
    if op == "ConvTranspose":
        # Each input element is scattered onto (Cout/group) x kernel outputs.
        x, w = shape(0), shape(1)
        return math.prod(x) * math.prod(w[1:]) if x and w else 0
    if op in ("Gemm", "FusedGemm"):
        a = shape(0)
        if not out or not a or len(a) != 2:
            return 0
        trans_a = any(at.name == "transA" and at.i for at in node.attribute)
        return math.prod(out) * (a[0] if trans_a else a[1])
    if op in ("MatMul", "MatMulInteger", "QLinearMatMul"):
        a = shape(0)
        if out is None or not a:
            return 0
        return math.prod(out) * a[-1]  # batched: out = [..., M, N], K = A's last dim
    return 0


def count_macs(model: onnx.ModelProto, batch: int = 1, *, shapes: Mapping[str, Sequence[int]] | None = None) -> int:
    """Multiply-accumulates of one call at batch size ``batch``; ``shapes`` (input name -> whole
    shape, batch included) fixes the other dynamic axes too, e.g. a transformer's sequence
    length, whose work a count at an unknown length would miss.

    The leading symbolic dim of every non-initializer graph input is set to ``batch``,
    then ``onnx.shape_inference`` gives every tensor a shape. Counted: Conv (grouped and
    depthwise included; ``prod(output) * prod(W.shape[1:])``), ConvTranspose, Gemm and
    MatMul (batched/broadcast), their ConvInteger/QLinearConv/MatMulInteger/
    QLinearMatMul forms, and ONNX Runtime's fused FusedConv/FusedGemm. Not counted: bias adds,
    BatchNormalization, LRN, pools,
    activations and other elementwise ops (they are memory-bound and small; this is the
    convention of torchvision's GFLOPS column and of the published figures). Shapes the
    model declares in ``value_info`` (batch substituted too) fill in where inference
    cannot, e.g. after contrib ops. A node whose shapes stay unknown (inference failed,
    a symbolic non-batch dim, a data-dependent dim) counts 0; the function never raises
    for that. Subgraph bodies are counted once.

    Example::

        count_macs(zoo.build("resnet50"))            # 4089184256
        count_macs(zoo.build("resnet50"), batch=8)   # 8x that
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    skel = _skeleton(model, batch, shapes)
    try:  # strict: a declared value_info that contradicts inference raises...
        skel = onnx.shape_inference.infer_shapes(skel, strict_mode=True, data_prop=True)
    except Exception:  # ...and is dropped; then infer leniently, node by node
        del skel.graph.value_info[:]
        try:
            skel = onnx.shape_inference.infer_shapes(skel, data_prop=True)
        except Exception:  # never fail a statistic: count what the declared shapes allow
            pass
    inferred = _shape_map(skel)
    return sum(_node_macs(n, inferred) for g in _graphs(skel.graph) for n in g.node)


def op_histogram(model: onnx.ModelProto) -> dict[str, int]:
    """op_type -> number of nodes (subgraphs included), by count descending then name.

    Example::

        op_histogram(zoo.build("tiny_cnn"))  # {'BatchNormalization': 4, 'Conv': 4, ...}
    """
    counts = Counter(n.op_type for g in _graphs(model.graph) for n in g.node)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
