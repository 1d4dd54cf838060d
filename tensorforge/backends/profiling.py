"""Per-layer profiles as plain data, and the bookkeeping that maps a backend's kernels to ONNX nodes.

A backend module that can profile offers a module-level function::

    profile_layers(model_bytes, config, feeds, runs, warmup) -> RawProfile

which runs the model ``warmup`` times unprofiled-for-the-result, then ``runs`` times with
the SDK's own profiler (ONNX Runtime's JSON trace, OpenVINO's performance counters), and
returns one :class:`RawLayerTime` per kernel the backend reports, with its time in every
profiled run and the payload's ONNX node names it covers. No SDK type leaves the backend;
this module imports no SDK either, so the name bookkeeping is tested on ONNX graphs alone.

Precisions use one vocabulary everywhere: ``int8`` (8-bit integer data, signed or not),
``fp32``, ``fp16``, ``bf16``, ``int32``, ``int64``, ``bool``, ``fp64``, or ``unknown``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    import onnx

# element type names as backends spell them → our precision names
_PRECISIONS = {
    "float": "fp32", "float32": "fp32", "f32": "fp32", "fp32": "fp32",
    "float16": "fp16", "f16": "fp16", "fp16": "fp16", "half": "fp16",
    "bfloat16": "bf16", "bf16": "bf16",
    "uint8": "int8", "int8": "int8", "u8": "int8", "i8": "int8",
    "int32": "int32", "i32": "int32", "uint32": "int32", "u32": "int32",
    "int64": "int64", "i64": "int64", "uint64": "int64", "u64": "int64",
    "bool": "bool", "boolean": "bool", "double": "fp64", "float64": "fp64", "f64": "fp64",
}
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"})


def precision_name(element_type: str) -> str:
    """``"uint8"``/``"I8"``/``"u8"`` → ``"int8"``, ``"float"``/``"f32"`` → ``"fp32"`` …; else ``"unknown"``."""
    return _PRECISIONS.get(element_type.strip().lower(), "unknown")


@dataclass(frozen=True)
class RawLayerTime:
    """One kernel as the backend reports it.

    ``times_ms`` holds its time in each profiled run (0.0 in a run where it did not appear), or
    one mean over them (see :attr:`RawProfile.statistic`);
    ``onnx_nodes`` the payload nodes it computes, in graph order — empty when none could be
    found (a layout reorder the backend inserted, a renamed node). ``executed`` is False for
    rows the backend lists but did not run (OpenVINO's NOT_RUN / OPTIMIZED_OUT: fused into
    another kernel or removed).
    """

    name: str
    op_type: str
    kernel: str
    precision: str
    times_ms: tuple[float, ...]
    onnx_nodes: tuple[str, ...] = ()
    executed: bool = True


@dataclass(frozen=True)
class RawProfile:
    """A backend's per-kernel times plus the wall time of the same profiled runs.

    ``statistic`` says how to summarize them: ``"median"`` when ``times_ms`` holds one value
    per run; ``"mean"`` when the backend only keeps running means (OpenVINO), so ``times_ms``
    holds the single mean of the profiled runs and the run time must be a mean too.
    """

    backend: str
    layers: tuple[RawLayerTime, ...]
    run_ms: tuple[float, ...]
    notes: tuple[str, ...] = ()
    statistic: str = "median"


class GraphIndex:
    """Names of an ONNX graph: nodes in order, their op types and inputs, and each tensor's producer."""

    def __init__(self, model: "onnx.ModelProto") -> None:
        graph = model.graph
        self.order: dict[str, int] = {}
        self.op_types: dict[str, str] = {}
        self.inputs: dict[str, tuple[str, ...]] = {}
        self.outputs: dict[str, tuple[str, ...]] = {}
        self.producer: dict[str, str] = {}
        for i, node in enumerate(graph.node):
            if not node.name:      # an unnamed node cannot be named in a report; its tensors still are
                continue
            self.order.setdefault(node.name, i)
            self.op_types[node.name] = node.op_type
            self.inputs[node.name] = tuple(node.input)
            self.outputs[node.name] = tuple(node.output)
            for out in node.output:
                if out:
                    self.producer[out] = node.name
        self.tensors = {t for n in graph.node for t in (*n.input, *n.output) if t}
        self.tensors |= {v.name for v in (*graph.input, *graph.output)} | {t.name for t in graph.initializer}

    def sort(self, names: Iterable[str]) -> tuple[str, ...]:
        """Unique known node names in graph order (unknown names are dropped)."""
        return tuple(sorted({n for n in names if n in self.order}, key=self.order.__getitem__))

    def resolve(self, name: str) -> str | None:
        """The node called ``name``, else the node that produces the tensor ``name``."""
        if name in self.order:
            return name
        return self.producer.get(name)


_GENERATED = re.compile(r"^[A-Z][A-Za-z]*_\d+$")     # OpenVINO-made names such as Multiply_5345, Convert_331


def resolve_prefixed(name: str, index: GraphIndex) -> str | None:
    """A node for a backend name that may carry suffixes after ``/`` (``stem/WithoutBiases`` → ``stem``).

    Tries the whole name, then drops one ``/`` part at a time from the right, each as a node
    name or a tensor name. Names a backend generated itself (``Multiply_5345``) map only when
    the payload really has a node or tensor of that name.
    """
    parts = name.split("/")
    for end in range(len(parts), 0, -1):
        candidate = "/".join(parts[:end])
        if not candidate or (end < len(parts) and _GENERATED.match(candidate)):
            continue
        node = index.resolve(candidate)
        if node is not None:
            return node
    return None


def fused_coverage(optimized: "onnx.ModelProto", payload: GraphIndex) -> dict[str, tuple[str, ...]]:
    """For each node of a backend's optimized ONNX graph, the payload nodes it computes.

    A fused node keeps the output tensor name of the last node it absorbed; the tensors
    inside the fused group no longer exist in the optimized graph. So walk the payload
    backwards from the node's outputs through tensors the optimized graph lacks: every
    producer met on the way was fused into it (Conv+Relu → FusedConv; DequantizeLinear →
    Conv → QuantizeLinear → QLinearConv). A node whose outputs were all renamed falls back
    to its own name when the payload has a node of that name.
    """
    kept = {t for n in optimized.graph.node for t in (*n.input, *n.output) if t}
    kept |= {v.name for v in (*optimized.graph.input, *optimized.graph.output)}
    kept |= {t.name for t in optimized.graph.initializer}
    coverage: dict[str, tuple[str, ...]] = {}
    for node in optimized.graph.node:
        covered: set[str] = set()
        stack = [t for t in node.output if t]
        while stack:
            producer = payload.producer.get(stack.pop())
            if producer is None or producer in covered:
                continue
            covered.add(producer)
            stack.extend(t for t in payload.inputs[producer] if t and t not in kept)
        if not covered and node.name in payload.order:
            covered = {node.name}
        coverage[node.name] = payload.sort(covered)
    return coverage
