"""Shape inference — wraps ``onnx_ir.passes.common.ShapeInferencePass``.

Handles: runs ``onnx.shape_inference.infer_shapes`` (strict, with data propagation)
on the whole model and merges the inferred types/shapes back into the IR values, so the
later rewrite rules can check ranks and static shapes.
Refuses: nothing to refuse; if ONNX's inference raises, the model is left unchanged
(the IR pass logs a warning) and the report says ``{}``.
Changes counted: ``values_shaped`` — values whose shape went from unknown to known.
"""

from __future__ import annotations

import onnx_ir as ir
import onnx_ir.passes.common as common

from tensorforge.graph.passes._base import CountedPassResult, GraphPass

__all__ = ["ShapeInference"]


def _shaped(graph: ir.Graph) -> int:
    return sum(1 for n in graph for v in n.outputs if v.shape is not None)


class ShapeInference(GraphPass):
    name = "shape_inference"

    def call(self, model: ir.Model) -> CountedPassResult:
        before = _shaped(model.graph)
        common.ShapeInferencePass(check_type=False, strict_mode=False)(model)
        gained = max(0, _shaped(model.graph) - before)
        # An analysis pass: newly known shapes do not count as a rewrite for fixpoints.
        return CountedPassResult(model, modified=False, changes={"values_shaped": gained} if gained else {})
