"""Conv followed by Add of a per-channel constant → Conv bias — hand-written
(onnxscript's ``ConvAffineFusion`` needs a scalar Mul *and* Add and an existing bias).

Handles: ``Add(Conv(x, W[, B]), c)`` (either operand order) where ``c`` is a constant
that is a scalar or per-output-channel after broadcasting against the conv output:
shape ``(C,1,..,1)``, ``(1,C,1,..,1)``, ``(1,)`` or ``()``; the new bias is ``B + c``.
Refuses: ``c`` varying along the batch or spatial axes, ``c`` of higher rank than the
conv output (it would broadcast the result up), a dtype mismatch, non-constant ``W``/``B``,
or a conv output read by another node or that is a graph output.
Changes counted: ``add_into_conv_bias``.
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
    replace_node,
    sole_consumer,
)

__all__ = ["ConvBiasFusion"]


def _per_channel(c: np.ndarray, out_rank: int, channels: int) -> np.ndarray | None:
    """``c`` as a (channels,) vector if it only varies along axis 1 of the conv output."""
    if c.ndim > out_rank:
        return None
    full = c.reshape((1,) * (out_rank - c.ndim) + c.shape)
    shape: tuple[int, ...] = full.shape
    for axis, size in enumerate(shape):
        if size != 1 and not (axis == 1 and size == channels):
            return None
    return np.broadcast_to(full.reshape(-1), (channels,)) if full.size == 1 else full.reshape(channels)


class ConvBiasFusion(GraphPass):
    name = "conv_bias_fusion"

    def call(self, model: ir.Model) -> CountedPassResult:
        graph = model.graph
        fused = 0
        for add in list(graph):
            if add.op_type != "Add" or add.domain != "" or len(add.inputs) != 2:
                continue
            for yi in (0, 1):
                y, c_value = add.inputs[yi], add.inputs[1 - yi]
                conv = y.producer() if y is not None else None
                if conv is None or conv.op_type != "Conv" or conv.domain != "" or y is None:
                    continue
                if sole_consumer(graph, y) is not add:
                    continue
                c, w = const_array(c_value), const_array(conv.inputs[1])
                if c is None or w is None or c_value is None or c_value.dtype != y.dtype:
                    continue
                b_value = conv.inputs[2] if len(conv.inputs) > 2 else None
                b = const_array(b_value) if b_value is not None else np.zeros(w.shape[0], w.dtype)
                if b is None:
                    continue
                vec = _per_channel(c, w.ndim, w.shape[0])
                if vec is None:
                    continue
                new_b = new_initializer(
                    graph, (conv.inputs[1].name or "w") + "_addbias",  # type: ignore[union-attr]
                    (b.astype(np.float64) + vec.astype(np.float64)).astype(w.dtype),
                )
                new = clone_node(conv, [conv.inputs[0], conv.inputs[1], new_b])
                replace_node(graph, add, [new], [new.outputs[0]])
                graph.remove(conv, safe=True)
                fused += 1
                break
        return self.result(model, {"add_into_conv_bias": fused})
