"""Tests of count_params / count_macs / op_histogram on hand-made models with hand counts."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from tensorforge.graph.analysis import count_macs, count_params, op_histogram
from tensorforge.models import zoo


def _w(name: str, *shape: int, dtype: type = np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.ones(shape, dtype=dtype), name)


def _model(nodes, inputs, outputs, inits=(), opset: int = 17, ir: int | None = None):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    if ir is not None:
        m.ir_version = ir
    return m


def _vi(name: str, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def test_grouped_conv_with_bias() -> None:
    # X [N,8,10,10], W [16, 8/2, 3, 3], group 2, pad 1 -> Y [N,16,10,10]
    m = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[N, 8, 10, 10] x, float[16, 4, 3, 3] w, float[16] b) => (float[N, 16, 10, 10] y) {
            y = Conv <group = 2, pads = [1, 1, 1, 1], kernel_shape = [3, 3]> (x, w, b)
        }""")
    # Weights as initializers (the text format would need every value spelled out).
    del m.graph.input[1:]
    m.graph.initializer.extend([_w("w", 16, 4, 3, 3), _w("b", 16)])
    onnx.checker.check_model(m)
    assert count_params(m) == 16 * 4 * 9 + 16
    assert count_macs(m) == 16 * 10 * 10 * (4 * 3 * 3)  # bias adds not counted
    assert count_macs(m, batch=5) == 5 * 57_600


def test_depthwise_strided_conv_without_bias() -> None:
    m = _model(
        [helper.make_node("Conv", ["x", "w"], ["y"], group=32, strides=[2, 2], pads=[1, 1, 1, 1])],
        [_vi("x", ["batch", 32, 16, 16])], [_vi("y", None)], [_w("w", 32, 1, 3, 3)],
    )
    assert count_params(m) == 288
    assert count_macs(m, batch=2) == 2 * 32 * 8 * 8 * 9


def test_conv_transpose() -> None:
    m = _model(
        [helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2])],
        [_vi("x", ["N", 4, 5, 5])], [_vi("y", None)], [_w("w", 4, 2, 3, 3)],
    )
    assert count_macs(m) == 4 * 5 * 5 * (2 * 3 * 3)


def test_gemm_trans_b_and_trans_a() -> None:
    m = _model(
        [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)],
        [_vi("x", ["N", 20])], [_vi("y", None)], [_w("w", 30, 20), _w("b", 30)],
    )
    assert count_params(m) == 630
    assert count_macs(m) == 600 and count_macs(m, batch=3) == 1800
    m = _model(
        [helper.make_node("Gemm", ["x", "w"], ["y"], transA=1)],
        [_vi("x", [20, 4])], [_vi("y", None)], [_w("w", 20, 30)],
    )
    assert count_macs(m) == 4 * 30 * 20


def test_batched_matmul() -> None:
    m = _model(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        [_vi("x", ["N", 4, 5, 6])], [_vi("y", None)], [_w("w", 6, 7)],
    )
    assert count_params(m) == 42
    assert count_macs(m, batch=2) == 2 * 4 * 5 * 7 * 6
    # Two activations, broadcast batch dims, no parameters.
    m = _model(
        [helper.make_node("MatMul", ["a", "b"], ["y"])],
        [_vi("a", [2, 1, 3, 4]), _vi("b", [5, 4, 6])], [_vi("y", None)],
    )
    assert count_params(m) == 0
    assert count_macs(m) == 2 * 5 * 3 * 6 * 4
    # 1-D operands.
    m = _model([helper.make_node("MatMul", ["a", "w"], ["y"])],
               [_vi("a", [8])], [_vi("y", None)], [_w("w", 8, 3)])
    assert count_macs(m) == 24


def test_initializer_also_graph_input() -> None:
    # IR 3 style: every initializer is listed as a graph input too.
    m = _model(
        [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)],
        [_vi("x", ["N", 20]), _vi("w", [30, 20]), _vi("b", [30])], [_vi("y", ["N", 30])],
        [_w("w", 30, 20), _w("b", 30)], opset=8, ir=3,
    )
    onnx.checker.check_model(m)
    assert count_params(m) == 630
    assert count_macs(m, batch=4) == 4 * 600


def test_constant_node_weights_and_integer_constants() -> None:
    nodes = [
        helper.make_node("Constant", [], ["w"], value=_w("w", 8, 3, 1, 1)),
        helper.make_node("Constant", [], ["b"], value_floats=[0.5] * 8),
        helper.make_node("Constant", [], ["shape"],
                         value=numpy_helper.from_array(np.array([0, -1], np.int64))),
        helper.make_node("Conv", ["x", "w", "b"], ["c"]),
        helper.make_node("Reshape", ["c", "shape"], ["r"]),
        helper.make_node("MatMul", ["r", "m"], ["y"]),
    ]
    inits = [_w("m", 8 * 4 * 4, 2), _w("axes", 2, dtype=np.int64)]
    m = _model(nodes, [_vi("x", ["N", 3, 4, 4])], [_vi("y", ["N", 2])], inits)
    onnx.checker.check_model(m)
    assert count_params(m) == 24 + 8 + 128 * 2  # int64 shape/axes excluded
    assert count_macs(m, batch=2) == 2 * 8 * 16 * 3 + 2 * 2 * 128


def test_batchnorm_stats_and_clip_bounds_are_not_params() -> None:
    c = 4
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"]),
        helper.make_node("BatchNormalization", ["c", "g", "beta", "mean", "var"], ["n"]),
        helper.make_node("Clip", ["n", "lo", "hi"], ["y"]),
    ]
    inits = [_w("w", c, 3, 1, 1), _w("g", c), _w("beta", c), _w("mean", c), _w("var", c),
             numpy_helper.from_array(np.array(0, np.float32), "lo"),
             numpy_helper.from_array(np.array(6, np.float32), "hi")]
    m = _model(nodes, [_vi("x", ["N", 3, 2, 2])], [_vi("y", None)], inits)
    assert count_params(m) == 12 + 2 * c
    assert op_histogram(m) == {"BatchNormalization": 1, "Clip": 1, "Conv": 1}


def test_quantized_weights_count_but_scales_do_not() -> None:
    nodes = [
        helper.make_node("DequantizeLinear", ["wq", "scale", "zp"], ["w"]),
        helper.make_node("MatMul", ["x", "w"], ["y"]),
    ]
    inits = [_w("wq", 16, 4, dtype=np.int8),
             numpy_helper.from_array(np.array(0.1, np.float32), "scale"),
             numpy_helper.from_array(np.array(0, np.int8), "zp")]
    m = _model(nodes, [_vi("x", ["N", 16])], [_vi("y", None)], inits)
    assert count_params(m) == 64
    assert count_macs(m, batch=2) == 128


def test_unknown_shapes_do_not_crash() -> None:
    # A symbolic spatial dim leaves the Conv output unknown: it counts 0, Gemm still counts.
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"]),
        helper.make_node("GlobalAveragePool", ["c"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1),
        helper.make_node("Gemm", ["f", "fc"], ["z"], transB=1),
        helper.make_node("MysteryOp", ["z"], ["q"], domain="custom"),
        helper.make_node("MatMul", ["q", "k"], ["out"]),
    ]
    inits = [_w("w", 8, 3, 3, 3), _w("fc", 5, 8), _w("k", 5, 5)]
    g = helper.make_graph(nodes, "g", [_vi("x", ["N", 3, "H", "W"])],
                          [_vi("y", None), _vi("out", None)], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                            helper.make_opsetid("custom", 1)])
    assert count_params(m) == 216 + 40 + 25
    assert count_macs(m, batch=2) == 2 * 2 * 40  # two Gemms; Conv and MatMul unknown
    assert count_macs(onnx.ModelProto()) == 0 and count_params(onnx.ModelProto()) == 0


def test_old_opset_and_external_data(tmp_path) -> None:
    m = zoo.build("tiny_cnn")
    params, macs = count_params(m), count_macs(m, batch=2)
    old = zoo.build("tiny_cnn", opset=9)
    assert (count_params(old), count_macs(old, batch=2)) == (params, macs)
    path = tmp_path / "m.onnx"
    onnx.save_model(m, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="m.data", size_threshold=0)
    unloaded = onnx.load_model(path, load_external_data=False)
    assert unloaded.graph.initializer[0].data_location == TensorProto.EXTERNAL
    assert (count_params(unloaded), count_macs(unloaded, batch=2)) == (params, macs)
    loaded = onnx.load_model(path)
    assert (count_params(loaded), count_macs(loaded, batch=2)) == (params, macs)


def test_subgraph_nodes_are_counted() -> None:
    then = helper.make_graph([helper.make_node("MatMul", ["a", "w"], ["t"])], "then",
                             [], [_vi("t", [2, 3])], initializer=[_w("w", 4, 3)])
    other = helper.make_graph([helper.make_node("Identity", ["a2"], ["e"])], "else",
                              [], [_vi("e", [2, 3])])
    nodes = [helper.make_node("Relu", ["a"], ["a2"]),
             helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=other)]
    g = helper.make_graph(nodes, "g", [_vi("a", [2, 4]),
                                      helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
                          [_vi("y", None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    assert count_params(m) == 12
    assert count_macs(m) == 2 * 3 * 4
    assert op_histogram(m) == {"Identity": 1, "If": 1, "MatMul": 1, "Relu": 1}


def test_op_histogram_order() -> None:
    h = op_histogram(zoo.build("tiny_cnn"))
    assert list(h.items())[:2] == [("BatchNormalization", 4), ("Conv", 4)]
    counts = list(h.values())
    assert counts == sorted(counts, reverse=True)
    ties = [k for k, v in h.items() if v == 1]
    assert ties == sorted(ties)


def test_bad_batch() -> None:
    with pytest.raises(ValueError, match="batch"):
        count_macs(zoo.build("tiny_mlp"), batch=0)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 3), groups=st.integers(1, 3), cin_g=st.integers(1, 4),
    cout_g=st.integers(1, 4), k=st.integers(1, 3), stride=st.integers(1, 2),
    pad=st.integers(0, 1), hw=st.integers(3, 9), bias=st.booleans(),
)
def test_conv_counts_match_formula(n, groups, cin_g, cout_g, k, stride, pad, hw, bias) -> None:
    cin, cout = cin_g * groups, cout_g * groups
    inputs = ["x", "w", "b"] if bias else ["x", "w"]
    inits = [_w("w", cout, cin_g, k, k)] + ([_w("b", cout)] if bias else [])
    m = _model(
        [helper.make_node("Conv", inputs, ["y"], group=groups, strides=[stride, stride],
                          pads=[pad] * 4, kernel_shape=[k, k])],
        [_vi("x", ["N", cin, hw, hw])], [_vi("y", None)], inits,
    )
    out = (hw + 2 * pad - k) // stride + 1
    assert count_params(m) == cout * cin_g * k * k + (cout if bias else 0)
    assert count_macs(m, batch=n) == n * cout * out * out * cin_g * k * k


def test_unloaded_external_integer_tensors(tmp_path) -> None:
    # Reshape's shape lives in the external file too: MACs after it may become unknown,
    # but nothing crashes and parameters are still counted from dims.
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["r"]),
             helper.make_node("MatMul", ["r", "w"], ["y"])]
    inits = [numpy_helper.from_array(np.array([-1, 12], np.int64), "shape"), _w("w", 12, 5)]
    m = _model(nodes, [_vi("x", ["N", 3, 4])], [_vi("y", ["N", 5])], inits)
    assert count_macs(m, batch=2) == 2 * 12 * 5
    path = tmp_path / "r.onnx"
    onnx.save_model(m, path, save_as_external_data=True, location="r.data", size_threshold=0)
    unloaded = onnx.load_model(path, load_external_data=False)
    assert count_params(unloaded) == 60
    assert count_macs(unloaded, batch=2) in (0, 120)


def test_declared_value_info_helps_past_contrib_ops() -> None:
    nodes = [helper.make_node("FusedConv", ["x", "w"], ["c"], domain="com.microsoft",
                              activation="Relu"),
             helper.make_node("Flatten", ["c"], ["f"]),
             helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1)]
    inits = [_w("w", 8, 3, 3, 3), _w("fc", 10, 8 * 4 * 4)]
    g = helper.make_graph(nodes, "g", [_vi("x", ["N", 3, 6, 6])], [_vi("y", ["N", 10])],
                          initializer=inits, value_info=[_vi("c", ["N", 8, 4, 4])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                            helper.make_opsetid("com.microsoft", 1)])
    assert count_macs(m, batch=2) == 2 * (8 * 16 * 27 + 10 * 128)
    # A declared shape that contradicts inference is dropped, not fatal.
    m.graph.value_info[0].type.tensor_type.shape.dim[1].dim_value = 7
    m.graph.node[0].op_type, m.graph.node[0].domain = "Conv", ""
    del m.graph.node[0].attribute[:]
    assert count_macs(m, batch=2) == 2 * (8 * 16 * 27 + 10 * 128)
