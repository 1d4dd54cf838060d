"""Identity removal — wraps ``onnx_ir.passes.common.IdentityEliminationPass``.

Handles: ``y = Identity(x)`` anywhere in the graph (and subgraphs): uses of ``y`` are
redirected to ``x``; when ``y`` is a graph output, ``x`` is renamed to ``y``.
Refuses: an Identity that maps a graph input straight to a graph output (removing it
would change the interface).
Changes counted: ``identity_removed``.
"""

from __future__ import annotations

import onnx_ir as ir
import onnx_ir.passes.common as common

from tensorforge.graph.passes._base import CountedPassResult, GraphPass, count_ops

__all__ = ["IdentityElimination"]


class IdentityElimination(GraphPass):
    name = "identity_elimination"

    def call(self, model: ir.Model) -> CountedPassResult:
        before = count_ops(model.graph, ["Identity"])
        common.IdentityEliminationPass()(model)
        return self.result(model, {"identity_removed": before - count_ops(model.graph, ["Identity"])})
