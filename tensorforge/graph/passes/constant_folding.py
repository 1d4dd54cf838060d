"""Constant folding — wraps ``onnxscript.optimizer.fold_constants_ir`` (its FoldConstantsPass) and onnx-ir's
``LiftConstantsToInitializersPass``.

Handles (all from onnxscript's folder, which evaluates with ``onnx.reference``):
  * any default-domain node whose inputs are all constant (initializers that are not
    graph inputs, ``Constant`` nodes): weight subgraphs such as ``Transpose(W)``,
    ``Mul(W, s)``, ``Cast(W)``; the result becomes an initializer;
  * ``ConstantOfShape`` of a constant shape when it feeds a node whose other inputs are
    constant too (onnxscript keeps ConstantOfShape by default to save file size; here a
    ``should_fold`` hook folds it when it is part of a weight subgraph, e.g. → ``Add``,
    or when it is small (≤ 64 Ki elements: a bias or a mask used beside run-time values);
  * ``Shape``/``Size`` of values whose shape is static, and the Gather/Concat/Slice
    arithmetic built on them;
  * the folder's local simplifications: Reshape to the same static shape, Cast to the
    same type, Expand to the same shape, Dropout in inference mode (opset ≥ 12) → Identity.
Refuses: nodes that read a graph input; ops from other domains; stochastic ops
(RandomNormal…); tensors above the size limits (inputs > 1 Mi elements unless read only
here, outputs > 4 Mi elements), so a fold cannot blow up the file.
Changes counted: ``nodes_folded`` (computing nodes gone), ``constants_lifted``.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import onnx_ir.passes.common as common

from tensorforge.graph.passes._base import CountedPassResult, GraphPass

__all__ = ["ConstantFolding"]

INPUT_SIZE_LIMIT = 1 << 20
OUTPUT_SIZE_LIMIT = 1 << 22
SMALL_FOLD_LIMIT = 1 << 16   # ConstantOfShape outputs up to this many elements fold even when consumed at run time


def _is_const(value: ir.Value | None) -> bool:
    if value is None:
        return True  # an omitted optional input
    if value.is_graph_input():
        return False
    if value.const_value is not None:
        return True
    producer = value.producer()
    return producer is not None and producer.op_type in ("Constant", "ConstantOfShape") and all(
        _is_const(i) for i in producer.inputs
    )


def _should_fold(node: ir.Node) -> bool | None:
    # Fold ConstantOfShape only inside weight subgraphs: every consumer's other inputs
    # are constant as well, so the consumer folds next and the big tensor never survives.
    if node.op_type != "ConstantOfShape" or node.domain != "":
        return None
    if not _is_const(node.inputs[0]):
        return None
    consumers = node.outputs[0].consumers()
    if consumers and all(all(_is_const(i) for i in c.inputs) for c in consumers):
        return True
    # A small one is a weight in its own right (e.g. a bias fed to Add next to a MatMul):
    # folding it lets the fusions see a constant, and costs at most SMALL_FOLD_LIMIT floats.
    shape = node.inputs[0].const_value if node.inputs[0] is not None else None
    if shape is not None and int(np.prod(shape.numpy(), dtype=np.int64)) <= SMALL_FOLD_LIMIT:
        return True
    return None


def _computing_nodes(graph: ir.Graph) -> int:
    return sum(1 for n in graph if n.op_type != "Constant")


class ConstantFolding(GraphPass):
    name = "constant_folding"

    def call(self, model: ir.Model) -> CountedPassResult:
        from onnxscript.optimizer import fold_constants_ir  # heavy import: keep it late

        before = _computing_nodes(model.graph)
        fold_constants_ir(
            model,
            onnx_shape_inference=True,
            input_size_limit=INPUT_SIZE_LIMIT,
            output_size_limit=OUTPUT_SIZE_LIMIT,
            should_fold=_should_fold,
        )
        # Folded nodes become Identity(Constant); let the dead-code pass drop the rest.
        common.RemoveUnusedNodesPass()(model)
        folded = before - _computing_nodes(model.graph)
        constants = sum(1 for n in model.graph if n.op_type == "Constant")
        common.LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0)(model)
        lifted = constants - sum(1 for n in model.graph if n.op_type == "Constant")
        return self.result(model, {"nodes_folded": folded, "constants_lifted": lifted})
