"""Dropout removal for inference — hand-written (onnxscript's folder only covers
opset ≥ 12 and the rewriter only ``ratio=0``/``training_mode=False`` attributes).

Handles:
  * opset 7–11 ``Dropout`` (inference-only in those opsets) → its input;
  * opset ≥ 12 ``Dropout`` whose ``training_mode`` is omitted or a constant False, or
    whose ``ratio`` is a constant 0 → its input;
  * opset < 7 ``Dropout`` with ``is_test=1``;
  * the ``mask`` output: unused → dropped with the node; used (opset ≥ 10, boolean mask)
    → ``ConstantOfShape(Shape(x), value=True)``, which is what inference mode returns.
Refuses (leaves the node, counts ``dropout_kept``): ``training_mode`` that is a graph
input or a non-constant value, or constant True with a non-zero ratio; opset < 7 without
``is_test=1``; a used mask in opset < 10 (its dtype is the data type there).
Changes counted: ``dropout_removed``, ``mask_materialized``, ``dropout_kept``.
"""

from __future__ import annotations

import onnx_ir as ir

from tensorforge.graph.passes._base import (
    CountedPassResult,
    GraphPass,
    const_array,
    opset,
    replace_node,
)

__all__ = ["DropoutRemoval"]


def _is_inference(node: ir.Node, version: int) -> bool:
    if version < 7:
        attr = node.attributes.get("is_test")
        return attr is not None and attr.as_int() == 1
    if version < 12:
        return True
    training = node.inputs[2] if len(node.inputs) > 2 else None
    if training is None:
        return True
    flag = const_array(training)
    if flag is not None and flag.size == 1 and not bool(flag.reshape(()).item()):
        return True
    ratio = node.inputs[1] if len(node.inputs) > 1 else None
    r = const_array(ratio)
    return r is not None and r.size == 1 and float(r.reshape(())) == 0.0


def _mask_used(graph: ir.Graph, node: ir.Node) -> bool:
    if len(node.outputs) < 2 or node.outputs[1] is None:
        return False
    mask = node.outputs[1]
    return bool(mask.uses()) or mask in graph.outputs


class DropoutRemoval(GraphPass):
    name = "dropout_removal"

    def call(self, model: ir.Model) -> CountedPassResult:
        version = opset(model)
        graph = model.graph
        changes = {"dropout_removed": 0, "mask_materialized": 0, "dropout_kept": 0}
        for node in list(graph):
            if node.op_type != "Dropout" or node.domain != "":
                continue
            mask_used = _mask_used(graph, node)
            if not _is_inference(node, version) or (mask_used and version < 10):
                changes["dropout_kept"] += 1
                continue
            x = node.inputs[0]
            assert x is not None
            new_nodes = [ir.node("Identity", [x])]
            new_values = [new_nodes[0].outputs[0]]
            if mask_used:
                shape = ir.node("Shape", [x])
                fill = ir.node(
                    "ConstantOfShape",
                    [shape.outputs[0]],
                    attributes={"value": ir.tensor([True], dtype=ir.DataType.BOOL)},
                )
                new_nodes += [shape, fill]
                new_values.append(fill.outputs[0])
                changes["mask_materialized"] += 1
            replace_node(graph, node, new_nodes, new_values)
            changes["dropout_removed"] += 1
        # Kept nodes are not a modification; report them without claiming a change.
        kept = changes.pop("dropout_kept")
        result = self.result(model, changes)
        if kept:
            result.changes["dropout_kept"] = kept
        return result
