"""No-op removal — wraps onnxscript's no-op rewrite rules, plus hand-written checks
for the cases those rules skip.

Handles (each rewritten to ``Identity``; ``IdentityElimination`` then removes it):
  * from onnxscript (``rewriter.rules.common``): ``x*1``, ``1*x``, ``x+0``, ``0+x``,
    ``x-0``, ``x/1`` with a scalar constant; ``Cast`` to the type ``x`` already has;
    ``Transpose`` with the identity permutation; ``Expand`` to ``x``'s own shape;
  * hand-written: ``Mul``/``Div`` by an all-ones and ``Add``/``Sub`` of an all-zeros
    constant *tensor* that does not broadcast ``x`` to a larger shape (needs ``x``'s
    static shape and the same dtype); ``Pad`` whose pads are all zero (any mode,
    pads as input or, before opset 11, as attribute); ``Reshape`` to ``x``'s own static
    shape (``0`` and ``-1`` resolved as ONNX does).
Refuses: anything that changes shape or dtype (``x + zeros(4, 1)`` on ``(4,)`` broadcasts);
constants that are graph inputs; unknown input shapes.
Changes counted: ``arith_noop``, ``cast_noop``, ``transpose_noop``, ``expand_noop``,
``pad_noop``, ``reshape_noop``.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from tensorforge.graph.passes._base import (
    CountedPassResult,
    GraphPass,
    const_array,
    opset,
    replace_node,
)

__all__ = ["NoOpElimination"]


def _static_shape(value: ir.Value | None) -> tuple[int, ...] | None:
    if value is None or value.shape is None:
        return None
    dims = value.shape.dims
    if not all(isinstance(d, int) for d in dims):
        return None
    return tuple(int(d) for d in dims)  # type: ignore[arg-type]


def _reshape_target(in_shape: tuple[int, ...], target: np.ndarray, allowzero: int) -> tuple[int, ...] | None:
    out = [int(d) for d in target.reshape(-1)]
    for i, d in enumerate(out):
        if d == 0 and not allowzero:
            if i >= len(in_shape):
                return None
            out[i] = in_shape[i]
    if out.count(-1) > 1:
        return None
    if -1 in out:
        known = int(np.prod([d for d in out if d != -1]))
        if known == 0:
            return None
        out[out.index(-1)] = int(np.prod(in_shape)) // known
    return tuple(out)


def _arith_noop(node: ir.Node) -> int | None:
    """Index of the input that passes through unchanged, or None."""
    if node.op_type not in ("Mul", "Div", "Add", "Sub") or len(node.inputs) != 2:
        return None
    neutral = 1 if node.op_type in ("Mul", "Div") else 0
    # Mul/Add commute: the constant may be on either side; Div/Sub only on the right.
    sides = [(0, 1), (1, 0)] if node.op_type in ("Mul", "Add") else [(0, 1)]
    out_shape = _static_shape(node.outputs[0])
    for xi, ci in sides:
        x, c = node.inputs[xi], node.inputs[ci]
        arr = const_array(c)
        x_shape = _static_shape(x)
        if arr is None or x_shape is None or x is None or c is None:
            continue
        if x.dtype is None or x.dtype != c.dtype or not np.all(arr == neutral):
            continue
        try:
            broadcast = np.broadcast_shapes(x_shape, arr.shape)
        except ValueError:
            continue
        if broadcast == x_shape and (out_shape is None or out_shape == x_shape):
            return xi
    return None


def _pad_noop(node: ir.Node, version: int) -> bool:
    if node.op_type != "Pad":
        return False
    if version < 11:
        attr = node.attributes.get("pads")
        return attr is not None and all(p == 0 for p in attr.as_ints())
    pads = const_array(node.inputs[1] if len(node.inputs) > 1 else None)
    return pads is not None and bool(np.all(pads == 0))


def _reshape_noop(node: ir.Node) -> bool:
    if node.op_type != "Reshape" or len(node.inputs) < 2:
        return False
    in_shape = _static_shape(node.inputs[0])
    target = const_array(node.inputs[1])
    if in_shape is None or target is None:
        return False
    allowzero = node.attributes.get("allowzero")
    out = _reshape_target(in_shape, target, allowzero.as_int() if allowzero else 0)
    return out == in_shape


def _onnxscript_rules() -> dict[str, object]:
    from onnxscript.rewriter import pattern  # heavy import: keep it late
    from onnxscript.rewriter.rules.common import _no_op, no_op_cast_rule, no_op_expand_rule, no_op_transpose_rule

    return {
        "arith_noop": _no_op.rules,
        "cast_noop": pattern.RewriteRuleSet([no_op_cast_rule]),
        "transpose_noop": pattern.RewriteRuleSet([no_op_transpose_rule]),
        "expand_noop": pattern.RewriteRuleSet([no_op_expand_rule]),
    }


class NoOpElimination(GraphPass):
    name = "noop_elimination"

    def call(self, model: ir.Model) -> CountedPassResult:
        changes: dict[str, int] = {}
        for kind, rules in _onnxscript_rules().items():
            changes[kind] = int(rules.apply_to_model(model))  # type: ignore[attr-defined]
        version = opset(model)
        graph = model.graph
        for node in list(graph):
            if node.domain != "":
                continue
            xi = _arith_noop(node)
            if xi is not None:
                kind = "arith_noop"
            elif _pad_noop(node, version):
                kind = "pad_noop"
            elif _reshape_noop(node):
                kind = "reshape_noop"
            else:
                continue
            x = node.inputs[xi if xi is not None else 0]
            identity = ir.node("Identity", [x])
            replace_node(graph, node, [identity], [identity.outputs[0]])
            changes[kind] = changes.get(kind, 0) + 1
        return self.result(model, changes)
