"""BatchNormalization folding into the preceding linear op — hand-written.

(onnxscript has BN-fusion rules, but they do not refuse a BN in training mode, an
opset-7 ``spatial=0`` BN, a shared conv output, or a weight shared by another node —
this pass states and checks those cases itself.)

In inference, ``BN(y) = s * (y - mean) + beta`` with ``s = gamma / sqrt(var + eps)``,
per channel (axis 1). For ``y = W x + b`` that is ``(s W) x + (s (b - mean) + beta)``.
The new weights are computed in float64 and stored in the weight's dtype.

Handles:
  * ``Conv`` → BN: with or without bias, any ``group`` (grouped and depthwise: the
    output-channel axis of ``W`` is axis 0 for every group layout), any rank (1-D/2-D/3-D);
  * ``Gemm`` → BN on a 2-D output: ``transB`` 0/1, ``alpha`` kept, ``beta`` folded into
    the new bias, with or without ``C``;
  * 2-D ``MatMul`` with a constant right operand → BN: becomes ``Gemm(x, s W, b')``.
    (``MatMul + Add`` is first turned into ``Gemm`` by ``MatMulAddFusion`` in the
    default pipeline, then folds as a Gemm.)
Refuses (counts ``bn_not_folded`` when BN follows a candidate op):
  * the producer's output has another consumer or is a graph output (folding would
    change what the other reader sees);
  * non-constant weight/bias/BN parameters, or parameters that are graph inputs;
  * BN in training mode (``training_mode=1`` or extra outputs in use), opset < 7, or
    ``spatial=0`` (opsets 7–8);
  * shapes that do not line up (channel count ≠ weight's output axis, Gemm/MatMul
    output not 2-D, MatMul weight not 2-D);
  * BN after anything else (e.g. after an input or a Relu) is left alone, not counted.
Changes counted: ``bn_folded``, ``bn_not_folded``.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from tensorforge.graph.passes._base import (
    CountedPassResult,
    GraphPass,
    clone_node,
    const_array,
    new_initializer,
    opset,
    replace_node,
    sole_consumer,
)

__all__ = ["BatchNormFolding"]

_CANDIDATES = ("Conv", "Gemm", "MatMul")


def _bn_params(bn: ir.Node, version: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(scale s, shift t) with BN(y) = s*y + t per channel, or None to refuse."""
    if version < 7:
        return None
    if version < 9:
        spatial = bn.attributes.get("spatial")
        if spatial is not None and spatial.as_int() != 1:
            return None
    training = bn.attributes.get("training_mode")
    if training is not None and training.as_int() != 0:
        return None
    if any(o is not None and (o.uses() or o.is_graph_output()) for o in bn.outputs[1:]):
        return None
    params = [const_array(v) for v in bn.inputs[1:5]]
    if len(params) != 4 or any(p is None or p.ndim != 1 for p in params):
        return None
    gamma, beta, mean, var = (p.astype(np.float64) for p in params)  # type: ignore[union-attr]
    if not (gamma.shape == beta.shape == mean.shape == var.shape):
        return None
    eps_attr = bn.attributes.get("epsilon")
    eps = eps_attr.as_float() if eps_attr is not None else 1e-5
    s = gamma / np.sqrt(var + eps)
    return s, beta - mean * s


def _rank(value: ir.Value | None) -> int | None:
    return None if value is None or value.shape is None else len(value.shape)


def _fold(graph: ir.Graph, producer: ir.Node, s: np.ndarray, t: np.ndarray) -> ir.Node | None:
    """The producer rebuilt with BN folded in, or None when a case is refused."""
    c = s.shape[0]
    w_value = producer.inputs[1] if len(producer.inputs) > 1 else None
    w = const_array(w_value)
    if w is None or w_value is None:
        return None
    b_value = producer.inputs[2] if len(producer.inputs) > 2 else None
    b = const_array(b_value) if b_value is not None else np.zeros((), np.float64)
    if b is None:
        return None
    w64, b64 = w.astype(np.float64), b.astype(np.float64)
    drop: tuple[str, ...] = ()
    if producer.op_type == "Conv":
        if w.ndim < 3 or w.shape[0] != c or b64.size not in (1, c):
            return None
        new_w = w64 * s.reshape((c,) + (1,) * (w.ndim - 1))
        new_b = s * b64.reshape(-1) + t if b64.ndim else s * b64 + t
        op = "Conv"
    else:
        if _rank(producer.outputs[0]) != 2 or w.ndim != 2:
            return None
        trans_b = producer.attributes.get("transB")
        out_axis = 0 if (producer.op_type == "Gemm" and trans_b and trans_b.as_int()) else 1
        if w.shape[out_axis] != c:
            return None
        new_w = w64 * (s.reshape(c, 1) if out_axis == 0 else s.reshape(1, c))
        if producer.op_type == "Gemm":
            beta = producer.attributes.get("beta")
            b64 = b64 * (beta.as_float() if beta is not None else 1.0)
            drop = ("beta",)
            if b64.ndim > 2 or (b64.ndim >= 1 and b64.shape[-1] not in (1, c)):
                return None
        else:
            if _rank(producer.inputs[0]) != 2:
                return None
        new_b = s * b64 + t  # broadcasts over the last (channel) axis
        op = "Gemm"
    x = producer.inputs[0]
    w_name = (w_value.name or "w") + "_bnfold"
    new_w_value = new_initializer(graph, w_name, new_w.astype(w.dtype))
    new_b_value = new_initializer(graph, w_name + "_bias", np.asarray(new_b).astype(w.dtype))
    if op == producer.op_type:
        return clone_node(producer, [x, new_w_value, new_b_value], drop=drop)
    return ir.Node("", "Gemm", [x, new_w_value, new_b_value], name=producer.name)


class BatchNormFolding(GraphPass):
    name = "bn_folding"

    def call(self, model: ir.Model) -> CountedPassResult:
        version = opset(model)
        graph = model.graph
        folded = refused = 0
        for bn in list(graph):
            if bn.op_type != "BatchNormalization" or bn.domain != "":
                continue
            y = bn.inputs[0]
            producer = y.producer() if y is not None else None
            if producer is None or producer.op_type not in _CANDIDATES or producer.domain != "":
                continue  # standalone BN: left for the runtime
            params = _bn_params(bn, version)
            if y is None or params is None or sole_consumer(graph, y) is not bn:
                refused += 1
                continue
            new = _fold(graph, producer, *params)
            if new is None:
                refused += 1
                continue
            replace_node(graph, bn, [new], [new.outputs[0]])
            graph.remove(producer, safe=True)
            folded += 1
        result = self.result(model, {"bn_folded": folded})
        if refused:
            result.changes["bn_not_folded"] = refused
        return result
