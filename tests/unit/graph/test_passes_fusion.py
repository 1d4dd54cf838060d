"""MatMul+Add → Gemm and Conv+Add(per-channel) → Conv bias."""

from __future__ import annotations

import pytest

from tensorforge.graph.passes import ConvBiasFusion, MatMulAddFusion

from test_passes_helpers import apply, check_equivalent, op_types, parse

MATMUL_ADD = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[5, 4] x) => (float[5, 3] y) <float[4, 3] W = {1.,2.,3.,4.,5.,6.,7.,8.,9.,10.,11.,12.}, float[3] b = {0.5, -1., 2.}> {
    h = MatMul(x, W)
    y = Add(BIAS_ORDER)
}
"""


@pytest.mark.parametrize("order", ["h, b", "b, h"])
def test_matmul_add_to_gemm(order):
    model = parse(MATMUL_ADD.replace("BIAS_ORDER", order))
    out, result = apply(MatMulAddFusion, model)
    assert result.changes == {"matmul_add_to_gemm": 1}
    assert op_types(out) == {"Gemm": 1}
    check_equivalent(model, out)


BATCHED = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[2, 5, 4] x) => (float[2, 5, 3] y) <float[4, 3] W = {1.,2.,3.,4.,5.,6.,7.,8.,9.,10.,11.,12.}, float[3] b = {0.5, -1., 2.}> {
    h = MatMul(x, W)
    y = Add(h, b)
}
"""

BIAS_BROADCASTS_UP = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[5, 4] x) => (float[2, 5, 3] y) <float[4, 3] W = {1.,2.,3.,4.,5.,6.,7.,8.,9.,10.,11.,12.}, float[2, 1, 3] b = {0.5, -1., 2., 1., 1., 1.}> {
    h = MatMul(x, W)
    y = Add(h, b)
}
"""

BIAS_INPUT = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[5, 4] x, float[3] b) => (float[5, 3] y) <float[4, 3] W = {1.,2.,3.,4.,5.,6.,7.,8.,9.,10.,11.,12.}> {
    h = MatMul(x, W)
    y = Add(h, b)
}
"""


@pytest.mark.parametrize("text", [BATCHED, BIAS_BROADCASTS_UP, BIAS_INPUT], ids=["3d", "bias_rank3", "bias_input"])
def test_matmul_add_refused(text):
    model = parse(text)
    out, result = apply(MatMulAddFusion, model)
    assert result.changes == {}
    assert op_types(out) == {"MatMul": 1, "Add": 1}


CONV_ADD = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[2, 2, 5, 5] x) => (float[2, 3, 5, 5] y) <float[3, 2, 1, 1] W = {1., 2., 3., 4., 5., 6.}, BIAS_DECL float[SHAPE] c = {VALUES}> {
    h = Conv(x, W BIAS_USE)
    y = Add(ORDER)
}
"""


@pytest.mark.parametrize(
    "shape,values,bias,order",
    [
        ("3, 1, 1", "1., -2., 3.", False, "h, c"),
        ("1, 3, 1, 1", "1., -2., 3.", True, "c, h"),
        ("1", "0.25", True, "h, c"),
    ],
    ids=["c11_nobias", "1c11_bias_left", "scalar"],
)
def test_conv_add_into_bias(shape, values, bias, order):
    text = (
        CONV_ADD.replace("SHAPE", shape).replace("VALUES", values).replace("ORDER", order)
        .replace("BIAS_DECL", "float[3] B = {0.1, 0.2, 0.3}," if bias else "")
        .replace("BIAS_USE", ", B" if bias else "")
    )
    model = parse(text)
    out, result = apply(ConvBiasFusion, model)
    assert result.changes == {"add_into_conv_bias": 1}
    assert op_types(out) == {"Conv": 1}
    check_equivalent(model, out)


def test_conv_add_spatial_constant_refused():
    text = (
        CONV_ADD.replace("SHAPE", "1, 1, 1, 5").replace("VALUES", "1., 2., 3., 4., 5.")
        .replace("ORDER", "h, c").replace("BIAS_DECL", "").replace("BIAS_USE", "")
    )
    model = parse(text)
    out, result = apply(ConvBiasFusion, model)
    assert result.changes == {} and op_types(out) == {"Conv": 1, "Add": 1}
