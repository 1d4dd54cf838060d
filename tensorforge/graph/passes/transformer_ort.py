"""Transformer fusion to ONNX Runtime contrib ops — wraps ONNX Runtime's own transformer optimizer
(``onnxruntime.transformers.optimizer.optimize_model``, ``model_type="bert"``) with its graph-level
session optimizations off (``opt_level=0``: only its pattern fusions run, so the result is portable
across ONNX Runtime builds and CPUs). Only the onnxruntime backend can run the result.

Fuses (``com.microsoft`` domain), each counted under its op name in the build report:
``EmbedLayerNormalization`` (word + position + token-type Gather, sum, LayerNorm, mask index),
``Attention`` (Q/K/V MatMul+Add, Reshape/Transpose, scaled QK^T, mask Add, Softmax, context MatMul;
``MultiHeadAttention`` when the projections stay apart), ``SkipLayerNormalization`` (residual Add +
LayerNorm, ``SkipSimplifiedLayerNormalization`` for RMS norms), ``Gelu``/``BiasGelu`` (exact
Erf GELU, with the preceding bias Add), ``FastGelu`` (tanh GELU), ``LayerNormalization`` (a
decomposed ReduceMean/Sub/Pow/Sqrt/Div LayerNorm). Heads and hidden size are read from the
graph (V's Reshape into heads and its projection width). Attention takes the raw ``[N, S]`` mask
(``use_raw_attention_mask``), so any 0/1 mask — not only right padding — keeps its meaning.
Refuses (the graph is unchanged): a graph with no Softmax feeding a MatMul (nothing attention-like).
"""

from __future__ import annotations

import logging

import onnx
import onnx_ir as ir

from tensorforge.graph.passes._base import CountedPassResult, GraphPass, const_array

__all__ = ["OrtTransformerFusion", "FUSED_OPS"]

FUSED_OPS = ("EmbedLayerNormalization", "Attention", "MultiHeadAttention", "SkipLayerNormalization",
             "SkipSimplifiedLayerNormalization", "BiasGelu", "Gelu", "FastGelu", "LayerNormalization",
             "SimplifiedLayerNormalization", "BiasSkipLayerNormalization", "QOrderedAttention")


def _contrib_counts(model: ir.Model) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in model.graph:
        if node.domain == "com.microsoft" or (node.domain in ("", "ai.onnx") and node.op_type == "LayerNormalization"):
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def _reshape_target(value: ir.Value | None) -> list[int] | None:
    """The last two entries of a Reshape's shape input: a constant, or a Concat whose last two parts are."""
    if value is None:
        return None
    whole = const_array(value)
    if whole is not None:
        return [int(v) for v in whole.reshape(-1)[-2:]]
    concat = value.producer()
    if concat is None or concat.op_type != "Concat" or len(concat.inputs) < 2:
        return None
    tail = [const_array(v) for v in concat.inputs[-2:]]
    if any(t is None or t.size != 1 for t in tail):
        return None
    return [int(t.reshape(-1)[0]) for t in tail if t is not None]


def _heads_and_hidden(matmul: ir.Node) -> tuple[int, int]:
    """Heads and hidden size from V's split into heads: MatMul(probs, Transpose(Reshape(v, [.., heads, d])))."""
    values = matmul.inputs[1]
    node = values.producer() if values is not None else None
    if node is not None and node.op_type == "Transpose":
        node = node.inputs[0].producer() if node.inputs[0] is not None else None
    if node is not None and node.op_type == "Reshape":
        tail = _reshape_target(node.inputs[1])
        if tail and all(t > 0 for t in tail):
            return tail[0], tail[0] * tail[1]
        hidden = _projection_width(node.inputs[0])
        if tail and tail[0] == -1 and tail[1] > 0 and hidden and hidden % tail[1] == 0:   # view(N, S, -1, d)
            return hidden // tail[1], hidden
    return 0, 0


def _projection_width(value: ir.Value | None) -> int | None:
    """Output width of the V projection ``Add(MatMul(x, W), b)``: W's last dim."""
    node = value.producer() if value is not None else None
    if node is not None and node.op_type == "Add":
        node = next((v.producer() for v in node.inputs if v is not None and v.producer() is not None
                     and v.producer().op_type == "MatMul"), None)  # type: ignore[union-attr]
    if node is None or node.op_type != "MatMul":
        return None
    weight = const_array(node.inputs[1])
    return int(weight.shape[-1]) if weight is not None and weight.ndim == 2 else None


def _attention_like(model: ir.Model) -> tuple[int, int] | None:
    """(heads, hidden size) of the first ``Softmax → MatMul`` (0, 0 where not found: ONNX Runtime's
    detector then tries), or None when the graph has no such pair."""
    for node in model.graph:
        if node.op_type != "Softmax" or node.domain not in ("", "ai.onnx"):
            continue
        for use in node.outputs[0].uses():
            if use.node.op_type == "MatMul" and use.idx == 0:
                return _heads_and_hidden(use.node)
    return None


class OrtTransformerFusion(GraphPass):
    name = "transformer_ort_fusion"

    def call(self, model: ir.Model) -> CountedPassResult:
        shape = _attention_like(model)
        if shape is None:
            return self.result(model, {})
        from onnxruntime.transformers.fusion_options import FusionOptions
        from onnxruntime.transformers.optimizer import optimize_model

        options = FusionOptions("bert")
        # the raw [N, S] 0/1 mask, not ONNX Runtime's default "mask index" (one length per row), which
        # assumes right padding and would change the result of a mask with holes
        options.use_raw_attention_mask(True)

        before = _contrib_counts(model)
        proto = ir.to_proto(model)
        # its modules log fusion progress under their bare names (fusion_attention, onnx_model_bert, ...)
        quiet = [logging.getLogger(n) for n in list(logging.root.manager.loggerDict)
                 if n.startswith(("fusion_", "onnx_model", "onnxruntime.transformers"))]
        levels = [q.level for q in quiet]
        for q in quiet:
            q.setLevel(logging.ERROR)
        try:
            optimized = optimize_model(proto, model_type="bert", num_heads=shape[0], hidden_size=shape[1],
                                       optimization_options=options, opt_level=0)
        finally:
            for q, level in zip(quiet, levels):
                q.setLevel(level)
        fused: onnx.ModelProto = optimized.model
        new = ir.from_proto(fused)
        after = _contrib_counts(new)
        changes = {op: after.get(op, 0) - before.get(op, 0) for op in after if after.get(op, 0) > before.get(op, 0)}
        if not changes:
            return self.result(model, {})
        model.graph = new.graph              # in place: the pipeline runner keeps its model object
        model.graph.opset_imports.setdefault("com.microsoft", 1)
        return self.result(model, changes)
