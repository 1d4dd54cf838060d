"""Dropout, Identity, no-op removal, constant folding and dead-code elimination."""

from __future__ import annotations

from tensorforge.graph.passes import (
    ConstantFolding,
    DeadCodeElimination,
    DropoutRemoval,
    IdentityElimination,
    NoOpElimination,
)

from test_passes_helpers import apply, check_equivalent, op_types, parse

DROPOUT_MASK = """
<ir_version: 8, opset_import: ["" : 13]>
g (float[2, 3] x) => (float[2, 3] y, bool[2, 3] mask) <float ratio = {0.5}> {
    d, mask = Dropout(x, ratio)
    y = Relu(d)
}
"""

DROPOUT_UNUSED_MASK = """
<ir_version: 8, opset_import: ["" : 13]>
g (float[2, 3] x) => (float[2, 3] y) {
    d, mask = Dropout(x)
    y = Relu(d)
}
"""

DROPOUT_TRAINING_INPUT = """
<ir_version: 8, opset_import: ["" : 13]>
g (float[2, 3] x, bool t) => (float[2, 3] y) {
    y = Dropout(x, , t)
}
"""


def test_dropout_with_used_mask_becomes_constant_mask():
    model = parse(DROPOUT_MASK)
    out, result = apply(DropoutRemoval, model)
    assert result.changes == {"dropout_removed": 1, "mask_materialized": 1}
    assert "Dropout" not in op_types(out)
    check_equivalent(model, out)


def test_dropout_unused_mask_then_identity_removed():
    model = parse(DROPOUT_UNUSED_MASK)
    out, result = apply(DropoutRemoval, model)
    assert result.changes == {"dropout_removed": 1}
    out2, result2 = apply(IdentityElimination, out)
    assert result2.changes == {"identity_removed": 1}
    assert op_types(out2) == {"Relu": 1}
    check_equivalent(model, out2)


def test_dropout_with_training_mode_input_kept():
    model = parse(DROPOUT_TRAINING_INPUT)
    out, result = apply(DropoutRemoval, model)
    assert not result.modified and result.changes == {"dropout_kept": 1}
    assert op_types(out) == {"Dropout": 1}


def test_dropout_opset10_removed():
    model = parse(DROPOUT_UNUSED_MASK.replace('"" : 13', '"" : 10').replace("Dropout(x)", "Dropout<ratio=0.3>(x)"))
    out, result = apply(DropoutRemoval, model)
    assert result.changes == {"dropout_removed": 1}
    check_equivalent(model, out)


IDENTITY_OUT = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[2, 3] x) => (float[2, 3] y) {
    a = Identity(x)
    b = Relu(a)
    y = Identity(b)
}
"""


def test_identity_removed_including_before_graph_output():
    model = parse(IDENTITY_OUT)
    out, result = apply(IdentityElimination, model)
    assert result.changes == {"identity_removed": 2}
    assert op_types(out) == {"Relu": 1}
    assert [o.name for o in out.graph.output] == ["y"]
    check_equivalent(model, out)


NOOPS = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[2, 3, 4] x) => (float[2, 3, 4] y) <float one = {1.0}, float[4] zeros = {0.,0.,0.,0.},
 int64[6] pads = {0,0,0,0,0,0}, int64[3] same = {2, -1, 4}> {
    a = Mul(x, one)
    b = Add(zeros, a)
    c = Cast<to = 1>(b)
    d = Transpose<perm = [0, 1, 2]>(c)
    e = Pad(d, pads)
    f = Reshape(e, same)
    y = Relu(f)
}
"""


def test_noops_removed():
    model = parse(NOOPS)
    out, result = apply(NoOpElimination, model)
    assert result.changes == {
        "arith_noop": 2, "cast_noop": 1, "transpose_noop": 1, "pad_noop": 1, "reshape_noop": 1,
    }
    out, _ = apply(IdentityElimination, out)
    out, _ = apply(DeadCodeElimination, out)
    assert op_types(out) == {"Relu": 1}
    assert len(out.graph.initializer) == 0
    check_equivalent(model, out)


BROADCASTING_ADD = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[4] x) => (float[3, 4] y) <float[3, 1] zeros = {0., 0., 0.}, float[4] ones_i = {1., 1., 1., 2.}> {
    a = Add(x, zeros)
    y = Mul(a, ones_i)
}
"""


def test_broadcasting_or_non_neutral_constants_kept():
    model = parse(BROADCASTING_ADD)
    out, result = apply(NoOpElimination, model)
    assert result.changes == {}
    assert op_types(out) == {"Add": 1, "Mul": 1}


WEIGHT_SUBGRAPH = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[2, 3] x) => (float[2, 4] y) <int64[2] wshape = {3, 4}, float[3, 4] delta = {1.,2.,3.,4.,5.,6.,7.,8.,9.,10.,11.,12.}> {
    z = ConstantOfShape<value = float[1] {0.5}>(wshape)
    w = Add(z, delta)
    wt = Transpose<perm = [1, 0]>(w)
    w2 = Transpose<perm = [1, 0]>(wt)
    y0 = MatMul(x, w2)
    y = Identity(y0)
}
"""


def test_constant_of_shape_weight_subgraph_folded():
    model = parse(WEIGHT_SUBGRAPH)
    out, result = apply(ConstantFolding, model)
    assert result.changes["nodes_folded"] >= 4
    assert op_types(out)["ConstantOfShape"] == 0 and op_types(out)["Transpose"] == 0
    assert op_types(out)["MatMul"] == 1
    check_equivalent(model, out)


SMALL_CONSTANT_BIAS = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[N, 8] x) => (float[N, 10] y) <int64[1] bshape = {10}, float[8, 10] w = {%s}> {
    b = ConstantOfShape<value = float[1] {0.25}>(bshape)
    m = MatMul(x, w)
    y = Add(m, b)
}
""" % ", ".join(["0.5"] * 80)


def test_small_constant_of_shape_bias_folded_beside_runtime_values():
    """Regression: a ConstantOfShape bias whose consumer also reads a run-time value stayed unfolded,
    which hid the constant from MatMul+Add → Gemm fusion (found on an opset-9 exporter's model)."""
    model = parse(SMALL_CONSTANT_BIAS)
    out, result = apply(ConstantFolding, model)
    assert op_types(out)["ConstantOfShape"] == 0 and result.changes["nodes_folded"] >= 1
    check_equivalent(model, out)


SHAPE_STATIC = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[2, 3, 4] x) => (float[2, 12] y) <int64[1] minus1 = {-1}> {
    s = Shape(x)
    zero = Constant<value = int64[1] {0}>()
    one = Constant<value = int64[1] {1}>()
    n = Slice(s, zero, one)
    target = Concat<axis = 0>(n, minus1)
    y = Reshape(x, target)
}
"""


def test_shape_of_static_shape_folded():
    model = parse(SHAPE_STATIC)
    out, result = apply(ConstantFolding, model)
    assert op_types(out) == {"Reshape": 1}
    check_equivalent(model, out)


def test_folding_never_touches_graph_inputs():
    model = parse(IDENTITY_OUT)
    out, result = apply(ConstantFolding, model)
    assert op_types(out)["Relu"] == 1
    check_equivalent(model, out)


DEAD = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[2, 3] x) => (float[2, 3] y) <float[3] unused = {1., 2., 3.}, float[3] b = {1., 2., 3.}> {
    dead = Mul(x, b)
    dead2 = Relu(dead)
    y = Relu(x)
}
"""


def test_dead_nodes_and_initializers_removed():
    model = parse(DEAD)
    out, result = apply(DeadCodeElimination, model)
    assert result.changes == {"nodes_removed": 2, "initializers_removed": 2}
    assert op_types(out) == {"Relu": 1}
    check_equivalent(model, out)
