"""MatMul + Add(bias) → Gemm — wraps onnxscript's ``MatMulAddToGemm`` rewrite rule
(``rewriter/rules/common/_matmul_add_to_gemm.py``) with a stricter ``check``.

Handles: ``Add(MatMul(a, b), c)`` and ``Add(c, MatMul(a, b))`` where ``a`` and ``b`` are
2-D (known from shape inference) and ``c`` is a constant that Gemm's unidirectional
broadcast accepts: rank ≤ 2 and each dim 1 or equal to the MatMul output's.
Refuses (the rule's ``check`` fails, the graph is unchanged): batched (≥3-D) MatMul,
unknown ranks, a non-constant or higher-rank ``c`` (``Add`` would broadcast the result
*up*, Gemm cannot), a MatMul output read by another node (the pattern matcher
keeps intermediate values with other uses).
Changes counted: ``matmul_add_to_gemm``.
"""

from __future__ import annotations

import onnx_ir as ir

from tensorforge.graph.passes._base import CountedPassResult, GraphPass, const_array

__all__ = ["MatMulAddFusion"]


def _rules():  # built lazily: onnxscript is a heavy import
    from onnxscript.rewriter import pattern
    from onnxscript.rewriter._basics import MatchResult
    from onnxscript.rewriter.rules.common._matmul_add_to_gemm import MatMulAddToGemm

    class _ConstBiasMatMulAddToGemm(MatMulAddToGemm):
        def check(self, context, input_a, input_b, input_c=None, **kw):  # type: ignore[override]
            result = super().check(context, input_a, input_b, **kw)
            if not result:
                return result
            bias = const_array(input_c)
            if bias is None:
                return MatchResult().fail("bias is not a constant")
            if bias.ndim > 2:
                return MatchResult().fail(f"bias has rank {bias.ndim}; Gemm takes rank <= 2")
            out = [input_a.shape[0], input_b.shape[1]]
            for d, o in zip(bias.shape[::-1], out[::-1]):
                if d != 1 and d != o:
                    return MatchResult().fail(f"bias dim {d} does not broadcast to {o}")
            return result

    return pattern.RewriteRuleSet([_ConstBiasMatMulAddToGemm.rule()], commute=True)


class MatMulAddFusion(GraphPass):
    name = "matmul_add_fusion"

    def call(self, model: ir.Model) -> CountedPassResult:
        count = _rules().apply_to_model(model)
        return self.result(model, {"matmul_add_to_gemm": count})
