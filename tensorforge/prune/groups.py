"""Channel groups: which output channels can be removed together, and every tensor that follows them.

A *channel group* is one channel space: the output channels of one or more producer layers
(Conv with group=1, Gemm, MatMul with a constant weight) and every tensor that carries those
channels on until a consumer layer contracts them away. Removing channel c of a group means
slicing every :class:`Edit` of the group at c, so the result is a smaller dense graph.

The walk follows the nodes in topological order. Cases:

- **producer** (Conv group=1, Gemm, MatMul with a 2-D constant weight): opens a group; its
  weight's output axis and its bias are edits (``out``, ``bias``);
- **consumer** of a tensor in a group (the same ops): its weight's input axis is an edit (``in``);
- **channel-wise** ops keep the group: unary activations, pools, Identity/Dropout,
  BatchNormalization (its four per-channel params are ``param`` edits), depthwise Conv (weight,
  bias and its ``group`` attribute follow), Add/Sub/Mul/Div with a constant that is scalar or
  per-channel (the constant is an edit when per-channel), Flatten of [N, C, 1, 1];
- **two groups meet** at an elementwise op (a residual Add, a squeeze-excite Mul): the groups
  merge, so channels feeding an Add are pruned together or not at all;
- **Concat** on the channel axis (an inception block's branches): the output carries several
  groups side by side, each at its offset (an input outside any group is a fixed segment); a
  consumer's edits then name each group's offset (``Edit.offset``), so removing channel c of a
  branch slices channel offset+c of the consumer's weight. Channel-wise ops, BatchNormalization,
  Flatten of [N, C, 1, 1], a nested Concat and the consumers above follow a concatenated tensor;
  anything else reading it freezes every group in it;
- anything else that reads a grouped tensor (Reshape, Transpose, a graph output, a
  subgraph, an op this walk does not know) makes its group *frozen*: nothing is pruned there, the
  reason is kept. So is a group whose edit touches a constant shared with another node.

Example::

    groups = channel_groups(zoo.build("tiny_cnn"))
    [g.channels for g in groups if g.frozen is None]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

__all__ = ["ChannelGroup", "Edit", "channel_groups"]

# Ops that map each channel to itself (input 0 carries the group; other inputs, e.g. Clip's bounds,
# must be constants outside any group).
_CHANNELWISE = frozenset({
    "Relu", "Clip", "Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid", "HardSwish", "Elu", "Selu", "Celu",
    "Softplus", "Softsign", "Gelu", "Erf", "Mish", "Identity", "Dropout", "Abs", "Neg",
    "Exp", "Sqrt", "Reciprocal", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool",
})
_ELEMENTWISE = frozenset({"Add", "Sub", "Mul", "Div"})


@dataclass(frozen=True)
class Edit:
    """Slice constant ``init`` along ``axis`` by the group's kept channels, shifted by ``offset`` (the
    group's place in a Concat). ``role``: ``out`` (a producer's filters, ranked), ``bias``, ``param``
    (per-channel constants such as BN's), ``bn_scale`` (a BN gamma, ranked by the ``bn`` criterion),
    ``in`` (a consumer's input channels)."""

    init: str
    axis: int
    role: str
    offset: int = 0


@dataclass
class ChannelGroup:
    """One channel space: ``channels`` wide, opened by ``producers`` (node names); slicing every edit
    and setting each depthwise node's ``group`` attribute to the kept count removes channels.
    ``frozen``: why the group must stay whole (None: prunable)."""

    id: int
    channels: int
    producers: list[str] = field(default_factory=list)
    edits: list[Edit] = field(default_factory=list)
    depthwise: list[str] = field(default_factory=list)
    frozen: str | None = None


class _Walk:
    """The union-find of groups and the channel space of each tensor: (group id, axis from the end)."""

    def __init__(self, model: onnx.ModelProto) -> None:
        graph = model.graph
        self.inits = {t.name: t for t in graph.initializer}
        self.graph_inputs = {i.name for i in graph.input}
        inferred = onnx.shape_inference.infer_shapes(model)
        self.shapes: dict[str, list[int | None]] = {}
        for vi in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
            tt = vi.type.tensor_type
            if tt.HasField("shape"):
                self.shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        self.parent: dict[int, int] = {}
        self.groups: dict[int, ChannelGroup] = {}
        self.space: dict[str, tuple[int, int]] = {}
        # a Concat's output: its segments (group id or None for channels outside any group, width) and axis
        self.cat: dict[str, tuple[tuple[tuple[int | None, int], ...], int]] = {}
        self.uses: dict[str, int] = {}
        for node in graph.node:
            for name in node.input:
                self.uses[name] = self.uses.get(name, 0) + 1

    # -- union-find ----------------------------------------------------------------------------
    def root(self, gid: int) -> int:
        while self.parent[gid] != gid:
            self.parent[gid] = self.parent[self.parent[gid]]
            gid = self.parent[gid]
        return gid

    def group(self, gid: int) -> ChannelGroup:
        return self.groups[self.root(gid)]

    def new_group(self, channels: int, producer: str) -> int:
        gid = len(self.parent)
        self.parent[gid] = gid
        self.groups[gid] = ChannelGroup(gid, channels, [producer])
        return gid

    def merge(self, a: int, b: int) -> int:
        ra, rb = self.root(a), self.root(b)
        if ra == rb:
            return ra
        ga, gb = self.groups.pop(ra), self.groups.pop(rb)
        self.parent[rb] = ra
        ga.producers += gb.producers
        ga.edits += gb.edits
        ga.depthwise += gb.depthwise
        ga.frozen = ga.frozen or gb.frozen
        self.groups[ra] = ga
        return ra

    def freeze(self, tensor: str, why: str) -> None:
        for gid, _ in self.segments(tensor):
            g = self.group(gid)
            g.frozen = g.frozen or why

    def carries(self, tensor: str) -> bool:
        return tensor in self.space or tensor in self.cat

    def axis(self, tensor: str) -> int:
        return self.space[tensor][1] if tensor in self.space else self.cat[tensor][1]

    def segments(self, tensor: str) -> list[tuple[int, int]]:
        """(group id, channel offset) of every group ``tensor`` carries (one at offset 0 unless a Concat's)."""
        if tensor in self.space:
            return [(self.space[tensor][0], 0)]
        out, offset = [], 0
        for gid, width in self.cat[tensor][0] if tensor in self.cat else ():
            if gid is not None:
                out.append((gid, offset))
            offset += width
        return out

    def propagate(self, src: str, dst: str, axis: int | None = None) -> None:
        """``dst`` carries the channels of ``src`` (on ``axis`` from the end when given)."""
        if src in self.space:
            self.space[dst] = (self.space[src][0], self.space[src][1] if axis is None else axis)
        else:
            self.cat[dst] = (self.cat[src][0], self.cat[src][1] if axis is None else axis)

    # -- helpers -------------------------------------------------------------------------------
    def const(self, name: str) -> np.ndarray | None:
        """The value of an initializer that is not also a graph input (a caller could feed it)."""
        if name in self.inits and name not in self.graph_inputs:
            return numpy_helper.to_array(self.inits[name])
        return None

    def rank(self, tensor: str) -> int | None:
        shape = self.shapes.get(tensor)
        return None if shape is None else len(shape)

    def edit(self, gid: int, init: str, axis: int, role: str, offset: int = 0) -> None:
        g = self.group(gid)
        g.edits.append(Edit(init, axis, role, offset))
        if self.uses.get(init, 0) > 1:
            g.frozen = g.frozen or f"constant {init!r} is shared by several nodes"

    def channel_axis_ok(self, tensor: str, axis: int) -> bool:
        """The tensor's channel axis is axis 1 (NCHW-style), given as ``axis`` from the end."""
        rank = self.rank(tensor)
        return rank is not None and rank >= 2 and axis == 1 - rank


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    for a in node.attribute:
        if a.name == name:
            return int(a.i)
    return default


def _producer(w: _Walk, node: onnx.NodeProto, channels: int, weight_axis: int, bias: str | None,
              out_axis: int) -> None:
    gid = w.new_group(channels, node.name or node.output[0])
    w.edit(gid, node.input[1], weight_axis, "out")
    if bias:
        b = w.const(bias)
        if b is None:
            w.groups[gid].frozen = f"bias of {node.name!r} is not a constant"
        elif b.ndim >= 1 and b.shape[-1] == channels:
            w.edit(gid, bias, b.ndim - 1, "bias")
        elif b.size != 1 and (b.ndim == 0 or b.shape[-1] != 1):
            w.groups[gid].frozen = f"bias of {node.name!r} has shape {b.shape}"
    w.space[node.output[0]] = (gid, out_axis)


def _conv(w: _Walk, node: onnx.NodeProto) -> bool:
    weight = w.const(node.input[1]) if len(node.input) > 1 else None
    if weight is None or weight.ndim < 3:
        return False
    group, x = _attr(node, "group", 1), node.input[0]
    bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
    rank = w.rank(node.output[0])
    if group == 1:
        if w.carries(x):
            if not w.channel_axis_ok(x, w.axis(x)):
                return False
            for gid, offset in w.segments(x):
                w.edit(gid, node.input[1], 1, "in", offset)
        if rank is not None:
            _producer(w, node, int(weight.shape[0]), 0, bias, 1 - rank)
        return True
    if x in w.space and weight.shape[1] == 1 and weight.shape[0] == group == w.group(w.space[x][0]).channels:
        gid, axis = w.space[x]                       # depthwise: its channels follow the producer's
        if not w.channel_axis_ok(x, axis):
            return False
        w.edit(gid, node.input[1], 0, "param")
        if bias:
            if w.const(bias) is None:
                return False
            w.edit(gid, bias, 0, "param")
        w.group(gid).depthwise.append(node.name)
        w.space[node.output[0]] = (gid, axis)
        return True
    return False                                      # other grouped convs: channels stay


def _gemm(w: _Walk, node: onnx.NodeProto) -> bool:
    weight = w.const(node.input[1])
    if weight is None or weight.ndim != 2 or _attr(node, "transA", 0):
        return False
    trans_b = _attr(node, "transB", 0)
    x = node.input[0]
    if w.carries(x):
        if w.axis(x) != -1:
            return False
        for gid, offset in w.segments(x):
            w.edit(gid, node.input[1], 1 if trans_b else 0, "in", offset)
    bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
    _producer(w, node, int(weight.shape[0 if trans_b else 1]), 0 if trans_b else 1, bias, -1)
    return True


def _matmul(w: _Walk, node: onnx.NodeProto) -> bool:
    weight = w.const(node.input[1])
    if weight is None or weight.ndim != 2:
        return False
    x = node.input[0]
    if w.carries(x):
        if w.axis(x) != -1:
            return False
        for gid, offset in w.segments(x):
            w.edit(gid, node.input[1], 0, "in", offset)
    _producer(w, node, int(weight.shape[1]), 1, None, -1)
    return True


def _batchnorm(w: _Walk, node: onnx.NodeProto) -> bool:
    x = node.input[0]
    if not w.carries(x) or len(node.output) > 1 or not w.channel_axis_ok(x, w.axis(x)):
        return False
    if any(w.const(p) is None for p in node.input[1:5]):
        return False
    for gid, offset in w.segments(x):
        for i, p in enumerate(node.input[1:5]):
            w.edit(gid, p, 0, "bn_scale" if i == 0 else "param", offset)
    w.propagate(x, node.output[0])
    return True


def _channelwise(w: _Walk, node: onnx.NodeProto) -> bool:
    x = node.input[0] if node.input else ""
    if not w.carries(x) or len(node.output) != 1:
        return False
    if any(w.carries(i) or (i and w.const(i) is None) for i in node.input[1:]):
        return False
    w.propagate(x, node.output[0])
    return True


def _elementwise(w: _Walk, node: onnx.NodeProto) -> bool:
    a, b = node.input[0], node.input[1]
    if a in w.cat or b in w.cat:
        return False                                   # offsets of a concatenated operand: not followed
    if a in w.space and b in w.space:
        (ga, axa), (gb, axb) = w.space[a], w.space[b]
        if axa != axb or w.group(ga).channels != w.group(gb).channels:
            return False
        w.space[node.output[0]] = (w.merge(ga, gb), axa)
        return True
    tensor, other = (a, b) if a in w.space else (b, a)
    gid, axis = w.space[tensor]
    value = w.const(other)
    if value is None:
        return False                                   # a computed operand outside any group
    channels = w.group(gid).channels
    if value.ndim >= -axis:                            # the constant reaches the channel axis
        dim = value.shape[value.ndim + axis]
        if dim == channels:
            w.edit(gid, other, value.ndim + axis, "param")
        elif dim != 1:
            return False
    w.space[node.output[0]] = (gid, axis)
    return True


def _flatten(w: _Walk, node: onnx.NodeProto) -> bool:
    x = node.input[0]
    shape = w.shapes.get(x)
    if shape is None or _attr(node, "axis", 1) != 1 or not w.channel_axis_ok(x, w.axis(x)):
        return False
    if any(d != 1 for d in shape[2:]):                 # [N, C, H, W] with H*W > 1 interleaves channels
        return False
    w.propagate(x, node.output[0], -1)
    return True


def _concat(w: _Walk, node: onnx.NodeProto) -> bool:
    """Concat on the channel axis: the output carries each input's groups at their offsets."""
    out = node.output[0]
    rank = w.rank(out)
    if rank is None or rank < 2 or _attr(node, "axis", 0) % rank != 1:
        return False
    segments: list[tuple[int | None, int]] = []
    for x in node.input:
        if x in w.space:
            gid, axis = w.space[x]
            if not w.channel_axis_ok(x, axis):
                return False
            segments.append((gid, w.group(gid).channels))
        elif x in w.cat:
            if not w.channel_axis_ok(x, w.cat[x][1]):
                return False
            segments += w.cat[x][0]
        else:
            shape = w.shapes.get(x)
            if shape is None or len(shape) != rank or shape[1] is None:
                return False
            segments.append((None, int(shape[1])))
    w.cat[out] = (tuple(segments), 1 - rank)
    return True


_HANDLERS = {"Conv": _conv, "Gemm": _gemm, "MatMul": _matmul, "BatchNormalization": _batchnorm,
             "Flatten": _flatten, "Concat": _concat, **{op: _channelwise for op in _CHANNELWISE},
             **{op: _elementwise for op in _ELEMENTWISE}}


def _subgraph_reads(graph: onnx.GraphProto) -> set[str]:
    """Names read inside the subgraphs of ``graph``'s nodes (outer-scope values a walk cannot follow)."""
    names: set[str] = set()
    for node in graph.node:
        for attr in node.attribute:
            for sub in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
                for inner in sub.node:
                    names.update(inner.input)
                names |= _subgraph_reads(sub)
    return names


def channel_groups(model: onnx.ModelProto) -> list[ChannelGroup]:
    """Every channel group of ``model``'s main graph, prunable or frozen (with the reason)."""
    w = _Walk(model)
    for node in model.graph.node:
        handler = _HANDLERS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        grouped = [i for i in node.input if w.carries(i)]
        handled = False
        if handler is not None and (grouped or node.op_type in ("Conv", "Gemm", "MatMul")):
            handled = handler(w, node)
        if not handled:
            for i in grouped:
                w.freeze(i, f"read by {node.op_type} {node.name!r}, which keeps every channel")
    for out in model.graph.output:
        w.freeze(out.name, f"reaches graph output {out.name!r}")
    for name in _subgraph_reads(model.graph):
        w.freeze(name, f"{name!r} is read inside a subgraph")
    return sorted(w.groups.values(), key=lambda g: g.id)
