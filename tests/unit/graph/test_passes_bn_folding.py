"""BatchNormalization folding: Conv (bias/no bias/grouped/depthwise), Gemm, MatMul."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from tensorforge.graph.passes import BatchNormFolding

from test_passes_helpers import apply, check_equivalent, op_types, parse

# BN folding changes the rounding order: s*(W x + b - mean) + beta becomes (s W) x + b'.
# In float32 over a K-term dot product that is a few ulps of |s|*|W x|, so outputs of
# magnitude ~1-10 differ by ~1e-6..1e-5; atol 1e-4 bounds it with margin, rtol 1e-5.
BN_ATOL = 1e-4


def _bn_inits(rng: np.random.Generator, c: int, prefix: str = "bn") -> list[onnx.TensorProto]:
    return [
        numpy_helper.from_array(rng.uniform(0.5, 2.0, c).astype(np.float32), f"{prefix}_s"),
        numpy_helper.from_array(rng.standard_normal(c).astype(np.float32), f"{prefix}_b"),
        numpy_helper.from_array(rng.standard_normal(c).astype(np.float32), f"{prefix}_m"),
        numpy_helper.from_array(rng.uniform(0.1, 3.0, c).astype(np.float32), f"{prefix}_v"),
    ]


def conv_bn_model(
    *, cin: int = 4, cout: int = 6, group: int = 1, bias: bool = True, eps: float = 1e-5,
    k: int = 3, hw: int = 7, seed: int = 0, extra_consumer: bool = False, opset: int = 17,
) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((cout, cin // group, k, k)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "W"), *_bn_inits(rng, cout)]
    conv_inputs = ["x", "W"]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(cout).astype(np.float32), "B"))
        conv_inputs.append("B")
    nodes = [
        helper.make_node("Conv", conv_inputs, ["c"], group=group, pads=[k // 2] * 4, name="conv"),
        helper.make_node("BatchNormalization", ["c", "bn_s", "bn_b", "bn_m", "bn_v"], ["y"], epsilon=eps, name="bn"),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, cout, hw, hw])]
    if extra_consumer:
        nodes.append(helper.make_node("Relu", ["c"], ["z"]))
        outputs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, cout, hw, hw]))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, cin, hw, hw])], outputs, inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(bias=False),
        dict(bias=True),
        dict(cin=4, cout=8, group=2),
        dict(cin=6, cout=6, group=6, bias=False),  # depthwise
        dict(eps=1e-2, seed=3),  # non-trivial eps; mean/var random in every case
    ],
    ids=["no_bias", "bias", "grouped", "depthwise", "eps"],
)
def test_bn_folds_into_conv(kwargs):
    model = conv_bn_model(**kwargs)
    out, result = apply(BatchNormFolding, model)
    assert result.changes == {"bn_folded": 1}
    assert op_types(out) == {"Conv": 1}
    check_equivalent(model, out, atol=BN_ATOL)


def test_bn_not_folded_when_conv_output_has_two_consumers():
    model = conv_bn_model(extra_consumer=True)
    out, result = apply(BatchNormFolding, model)
    assert not result.modified
    assert result.changes == {"bn_not_folded": 1}
    assert op_types(out) == {"Conv": 1, "BatchNormalization": 1, "Relu": 1}
    check_equivalent(model, out)


def test_bn_not_folded_when_conv_output_is_graph_output():
    model = conv_bn_model()
    model.graph.output.append(helper.make_tensor_value_info("c", TensorProto.FLOAT, [2, 6, 7, 7]))
    out, result = apply(BatchNormFolding, model)
    assert op_types(out)["BatchNormalization"] == 1
    check_equivalent(model, out)


STANDALONE = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[2, 3, 4, 4] x) => (float[2, 3, 4, 4] y) <float[3] s = {1., 2., 3.}, float[3] b = {0., 1., 2.},
 float[3] m = {0.5, 0., -1.}, float[3] v = {1., 4., 0.25}> {
    r = Relu(x)
    y = BatchNormalization(r, s, b, m, v)
}
"""


def test_standalone_bn_left_alone():
    model = parse(STANDALONE)
    out, result = apply(BatchNormFolding, model)
    assert result.changes == {} and op_types(out) == {"Relu": 1, "BatchNormalization": 1}


GEMM_BN = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[5, 4] x) => (float[5, 3] y) <float[3, 4] W = {1.,2.,3.,4.,5.,6.,7.,8.,9.,10.,11.,12.}, float[3] C = {0.5, -1., 2.},
 float[3] s = {1., 2., 3.}, float[3] b = {0., 1., 2.}, float[3] m = {0.5, 0., -1.}, float[3] v = {1., 4., 0.25}> {
    h = Gemm<transB = 1, alpha = 0.5, beta = 2.0>(x, W, C)
    y = BatchNormalization<epsilon = 0.001>(h, s, b, m, v)
}
"""

MATMUL_BN = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[5, 4] x) => (float[5, 3] y) <float[4, 3] W = {1.,2.,3.,4.,5.,6.,7.,8.,9.,10.,11.,12.},
 float[3] s = {1., 2., 3.}, float[3] b = {0., 1., 2.}, float[3] m = {0.5, 0., -1.}, float[3] v = {1., 4., 0.25}> {
    h = MatMul(x, W)
    y = BatchNormalization(h, s, b, m, v)
}
"""


@pytest.mark.parametrize("text", [GEMM_BN, MATMUL_BN], ids=["gemm", "matmul"])
def test_bn_folds_into_gemm_and_matmul(text):
    model = parse(text)
    out, result = apply(BatchNormFolding, model)
    assert result.changes == {"bn_folded": 1}
    assert op_types(out) == {"Gemm": 1}
    check_equivalent(model, out, atol=BN_ATOL)


def test_bn_in_training_mode_refused():
    model = conv_bn_model()
    model.graph.node[1].attribute.append(helper.make_attribute("training_mode", 1))
    model.graph.node[1].output.extend(["running_mean", "running_var"])
    out, result = apply(BatchNormFolding, model, infer=False)
    assert op_types(out)["BatchNormalization"] == 1 and result.changes == {"bn_not_folded": 1}


def test_bn_params_as_graph_input_refused():
    model = conv_bn_model()
    model.graph.input.append(helper.make_tensor_value_info("bn_m", TensorProto.FLOAT, [6]))
    out, result = apply(BatchNormFolding, model)
    assert op_types(out)["BatchNormalization"] == 1


@settings(max_examples=15, deadline=None)
@given(
    cg=st.integers(1, 3),
    group=st.sampled_from([1, 2, 3]),
    mult=st.integers(1, 2),
    eps=st.floats(1e-6, 1e-1),
    bias=st.booleans(),
    k=st.sampled_from([1, 3]),
    seed=st.integers(0, 1000),
)
def test_bn_fold_property(cg, group, mult, eps, bias, k, seed):
    cin, cout = cg * group, mult * group
    model = conv_bn_model(cin=cin, cout=cout, group=group, bias=bias, eps=eps, k=k, hw=5, seed=seed)
    out, result = apply(BatchNormFolding, model)
    assert result.changes == {"bn_folded": 1}
    # eps down to 1e-6 with var >= 0.1 keeps s <= ~6.3; atol scales with that bound.
    check_equivalent(model, out, atol=BN_ATOL, seeds=(seed,))
