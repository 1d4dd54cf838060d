"""Shared base for TensorForge graph passes.

Every pass is an :class:`onnx_ir.passes.InPlacePass` (so it composes with onnx-ir's
``PassManager``/``Sequential``) whose ``call`` returns a :class:`CountedPassResult`:
the usual ``PassResult(model, modified)`` plus ``changes``, a dict of counts that says
what the pass did (``{"bn_folded": 3}``). Pipelines read ``changes`` for the build report.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Iterable

import numpy as np
import onnx_ir as ir

__all__ = ["CountedPassResult", "GraphPass", "const_array", "count_ops", "op_counts"]


@dataclasses.dataclass
class CountedPassResult(ir.passes.PassResult):
    """``PassResult`` with a count of each kind of change the pass made."""

    changes: dict[str, int] = dataclasses.field(default_factory=dict)


class GraphPass(ir.passes.InPlacePass):
    """An in-place pass with a short ``name`` and a count of what it changed."""

    name: str = "pass"

    def result(self, model: ir.Model, changes: dict[str, int]) -> CountedPassResult:
        changes = {k: int(v) for k, v in changes.items() if v}
        return CountedPassResult(model, modified=bool(changes), changes=changes)


def op_counts(graph: ir.Graph) -> Counter[str]:
    """How many nodes of each op type (default domain only) the main graph holds."""
    return Counter(n.op_type for n in graph if n.domain in ("", "ai.onnx"))


def count_ops(graph: ir.Graph, op_types: Iterable[str]) -> int:
    counts = op_counts(graph)
    return sum(counts[t] for t in op_types)


def const_array(value: ir.Value | None) -> np.ndarray | None:
    """The constant numpy value of ``value`` (initializer or ``Constant`` output), else None.

    Graph inputs are never constant: a caller may feed a different value.
    """
    if value is None or value.is_graph_input():
        return None
    if value.const_value is not None:
        return value.const_value.numpy()
    producer = value.producer()
    if producer is not None and producer.op_type == "Constant" and producer.domain == "":
        attr = producer.attributes.get("value")
        if attr is not None and attr.type == ir.AttributeType.TENSOR:
            return attr.as_tensor().numpy()
    return None


def opset(model: ir.Model) -> int:
    return int(model.opset_imports.get("", 1))


def replace_node(
    graph: ir.Graph,
    old: ir.Node,
    new_nodes: list[ir.Node],
    new_values: list[ir.Value],
) -> None:
    """Replace ``old`` by ``new_nodes``; ``old.outputs[i]`` becomes ``new_values[i]``.

    The new values take the old names, types and shapes, and stand in for them as graph
    outputs, so the graph interface is unchanged.
    """
    old_values = list(old.outputs[: len(new_values)])
    ir.convenience.replace_nodes_and_values(
        graph, old, [old], new_nodes, old_values, new_values
    )


def new_initializer(graph: ir.Graph, base: str, array: np.ndarray) -> ir.Value:
    """Register ``array`` as a fresh initializer whose name starts with ``base``."""
    taken = set(graph.initializers)
    taken.update(v.name for n in graph for v in n.outputs if v.name)
    taken.update(v.name for v in graph.inputs if v.name)
    name, i = base, 1
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    value = ir.Value(name=name, const_value=ir.tensor(array, name=name))
    value.shape = ir.Shape(array.shape)
    value.dtype = value.const_value.dtype  # type: ignore[union-attr]
    graph.register_initializer(value)
    return value


def sole_consumer(graph: ir.Graph, value: ir.Value) -> ir.Node | None:
    """The one node reading ``value``, if it is read exactly once and is no graph output."""
    if value in graph.outputs:
        return None
    uses = list(value.uses())
    if len(uses) != 1:
        return None
    return uses[0].node


def clone_node(node: ir.Node, inputs: list[ir.Value | None], drop: tuple[str, ...] = ()) -> ir.Node:
    """A node of the same op and attributes (minus ``drop``) over new inputs."""
    attrs = [a for name, a in node.attributes.items() if name not in drop]
    return ir.Node(
        node.domain, node.op_type, inputs, attributes=attrs, num_outputs=1, name=node.name,
        version=node.version,
    )
