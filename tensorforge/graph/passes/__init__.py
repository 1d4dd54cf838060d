"""Graph passes: one per module, each an ``onnx_ir.passes.InPlacePass`` that reports
what it changed. ``PASSES`` maps the names used in pipelines to the pass classes.

Wrapping onnx-ir / onnxscript: shape_inference, constant_folding, identity_elimination,
noop_elimination (partly), matmul_add_fusion, dead_code_elimination, transformer_portable_fusion
(onnxscript's LayerNorm/GELU rules); transformer_ort_fusion wraps ONNX Runtime's transformer optimizer.
Hand-written: dropout_removal, bn_folding, conv_bias_fusion, noop_elimination's tensor/Pad/
Reshape cases.
"""

from __future__ import annotations

from tensorforge.graph.passes._base import CountedPassResult, GraphPass
from tensorforge.graph.passes.bn_folding import BatchNormFolding
from tensorforge.graph.passes.constant_folding import ConstantFolding
from tensorforge.graph.passes.conv_bias_fusion import ConvBiasFusion
from tensorforge.graph.passes.dead_code import DeadCodeElimination
from tensorforge.graph.passes.dropout_removal import DropoutRemoval
from tensorforge.graph.passes.identity_elimination import IdentityElimination
from tensorforge.graph.passes.matmul_add_fusion import MatMulAddFusion
from tensorforge.graph.passes.noop_elimination import NoOpElimination
from tensorforge.graph.passes.shape_inference import ShapeInference
from tensorforge.graph.passes.transformer_ort import OrtTransformerFusion
from tensorforge.graph.passes.transformer_portable import PortableTransformerFusion

__all__ = [
    "PASSES",
    "BatchNormFolding",
    "ConstantFolding",
    "ConvBiasFusion",
    "CountedPassResult",
    "DeadCodeElimination",
    "DropoutRemoval",
    "GraphPass",
    "IdentityElimination",
    "MatMulAddFusion",
    "NoOpElimination",
    "OrtTransformerFusion",
    "PortableTransformerFusion",
    "ShapeInference",
]

PASSES: dict[str, type[GraphPass]] = {
    cls.name: cls
    for cls in (
        ShapeInference,
        ConstantFolding,
        DropoutRemoval,
        NoOpElimination,
        IdentityElimination,
        MatMulAddFusion,
        BatchNormFolding,
        ConvBiasFusion,
        DeadCodeElimination,
        OrtTransformerFusion,
        PortableTransformerFusion,
    )
}
