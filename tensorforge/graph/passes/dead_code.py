"""Dead-node and unused-initializer elimination — wraps onnx-ir's
``RemoveUnusedNodesPass`` and ``RemoveUnusedOpsetsPass``.

Handles: nodes none of whose outputs reach a graph output (in graphs and subgraphs),
unused optional outputs (e.g. a Dropout mask nobody reads), initializers no node reads,
and opset imports no node uses.
Refuses: anything on the graph interface — inputs and outputs stay, even if unused.
Changes counted: ``nodes_removed``, ``initializers_removed``.
"""

from __future__ import annotations

import onnx_ir as ir
import onnx_ir.passes.common as common

from tensorforge.graph.passes._base import CountedPassResult, GraphPass

__all__ = ["DeadCodeElimination"]


class DeadCodeElimination(GraphPass):
    name = "dead_code_elimination"

    def call(self, model: ir.Model) -> CountedPassResult:
        nodes, inits = len(model.graph), len(model.graph.initializers)
        common.RemoveUnusedNodesPass()(model)
        common.RemoveUnusedOpsetsPass()(model)
        return self.result(
            model,
            {
                "nodes_removed": nodes - len(model.graph),
                "initializers_removed": inits - len(model.graph.initializers),
            },
        )
