"""Transformer fusion to standard ONNX ops only (OpenVINO, the reference backend, any runtime) — wraps
onnxscript's rewrite rules; no ``com.microsoft`` op is ever emitted.

Fuses, each counted in the build report:

* ``layer_norm``: a decomposed LayerNorm — ``ReduceMean`` → ``Sub`` → ``Mul``/``Pow 2`` →
  ``ReduceMean`` → ``Add eps`` → ``Sqrt`` → ``Div`` (or ``Reciprocal``+``Mul``) → ``Mul scale`` —
  into ``LayerNormalization`` (opset ≥ 17; onnxscript's ``LayerNormFusion``);
* ``layer_norm_bias``: ``LayerNormalization`` followed by ``Add bias`` into its bias input
  (``LayerNormBiasFusion``);
* ``gelu``: exact GELU ``0.5 * x * (1 + Erf(x / sqrt 2))`` (every operand order onnxscript's
  ``GeluErfFusion`` and ``erfgelu`` patterns know) into ``Gelu``, and tanh GELU
  (``GeluTanhFusion``) into ``Gelu(approximate="tanh")`` — only at opset ≥ 20, where ``Gelu`` is a
  standard op; below it the Erf form is left as is (still standard ONNX).

Attention has no standard op before opset 23, which few runtimes import yet, so it is left to the
backend's own compiler (OpenVINO fuses MatMul/Softmax/MatMul into its SDPA itself).
"""

from __future__ import annotations

import onnx_ir as ir

from tensorforge.graph.passes._base import CountedPassResult, GraphPass, opset

__all__ = ["PortableTransformerFusion"]

GELU_OPSET = 20


def _gelu_rules():  # built lazily: onnxscript is a heavy import
    from onnxscript.rewriter import pattern
    from onnxscript.rewriter.ort_fusions import erfgelu
    from onnxscript.rewriter.ort_fusions.gelu import GeluErfFusion, GeluTanhFusion

    class _StdGeluErf(GeluErfFusion):
        def rewrite(self, op, x):  # type: ignore[no-untyped-def]
            return op.Gelu(x)

    class _StdGeluTanh(GeluTanhFusion):
        def rewrite(self, op, x):  # type: ignore[no-untyped-def]
            return op.Gelu(x, approximate="tanh")

    def std_gelu(op, x):  # type: ignore[no-untyped-def]
        return op.Gelu(x)

    rules = [_StdGeluErf.rule(), _StdGeluTanh.rule(),
             pattern.RewriteRule(erfgelu.erf_gelu_pattern_1, std_gelu),
             pattern.RewriteRule(erfgelu.erf_gelu_pattern_2, std_gelu)]
    return pattern.RewriteRuleSet(rules, commute=True)


def _layer_norm_rules():
    from onnxscript.rewriter import pattern
    from onnxscript.rewriter.rules.fusion._layer_norm import LayerNormBiasFusion, LayerNormFusion

    return (pattern.RewriteRuleSet([LayerNormFusion.rule()], commute=True),
            pattern.RewriteRuleSet([LayerNormBiasFusion.rule()], commute=True))


class PortableTransformerFusion(GraphPass):
    name = "transformer_portable_fusion"

    def call(self, model: ir.Model) -> CountedPassResult:
        changes: dict[str, int] = {}
        if opset(model) >= 17:
            norm, bias = _layer_norm_rules()
            changes["layer_norm"] = norm.apply_to_model(model)
            changes["layer_norm_bias"] = bias.apply_to_model(model)
        if opset(model) >= GELU_OPSET:
            changes["gelu"] = _gelu_rules().apply_to_model(model)
        return self.result(model, changes)
