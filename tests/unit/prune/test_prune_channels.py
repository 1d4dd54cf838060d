"""Channel pruning: the pruned graph equals the original with the same channels masked (ONNX Runtime,
FP32 tolerance), on models with residual Adds and depthwise convs; hand counts of MACs and params."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from tensorforge.core.reference import compare
from tensorforge.core.tolerances import TOLERANCES
from tensorforge.graph.analysis import count_macs, count_params
from tensorforge.models import zoo
from tensorforge.prune import plan_channels, prune_model
from tensorforge.prune.groups import channel_groups


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _feeds(model: onnx.ModelProto, batch: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {}
    for vi in model.graph.input:
        shape = [d.dim_value if d.HasField("dim_value") else batch for d in vi.type.tensor_type.shape.dim]
        out[vi.name] = rng.standard_normal(shape).astype(np.float32)
    return out


def _vi(name: str, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _two_conv(out_to_graph: bool = True) -> onnx.ModelProto:
    """x [N,3,8,8] -> Conv(8 filters 3x3, pad 1, bias) -> Relu -> Conv(4 filters 1x1, bias) -> y.
    Filter c of the first conv is (c+1) everywhere, so its L1 ranking is the channel index."""
    w1 = np.stack([np.full((3, 3, 3), c + 1.0, np.float32) for c in range(8)]) * np.where(
        np.arange(27).reshape(3, 3, 3) % 2, 1, -1).astype(np.float32)
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b1"),
             numpy_helper.from_array(rng.standard_normal((4, 8, 1, 1)).astype(np.float32), "w2"),
             numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b2")]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["y"], name="conv2")]
    g = helper.make_graph(nodes, "two_conv", [_vi("x", ["N", 3, 8, 8])], [_vi("y", ["N", 4, 8, 8])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_hand_count_two_conv() -> None:
    m = _two_conv()
    # conv1: 8*3*3*3 + 8 = 224, conv2: 4*8 + 4 = 36; MACs: 64 px * (8*27 + 4*8)
    assert count_params(m) == 260 and count_macs(m) == 64 * (8 * 27 + 4 * 8)
    result = prune_model(m, "channels:50%")
    p = result.model
    # conv1 keeps 4 filters: 4*27 + 4 = 112; conv2 keeps 4 input channels: 4*4 + 4 = 20
    assert count_params(p) == 132 and count_macs(p) == 64 * (4 * 27 + 4 * 4)
    assert result.summary["params_before"] == 260 and result.summary["params_after"] == 132
    assert result.summary["macs_after"] == 64 * (4 * 27 + 4 * 4)
    # the ranking: the four largest-norm filters (channels 4..7) stay; conv2's output is a graph output
    assert result.plan is not None
    [group] = result.plan.groups
    assert group.keep == (4, 5, 6, 7) and group.producers == ("conv1",)
    assert any("graph output" in why for _, why in result.plan.frozen)
    w1 = numpy_helper.to_array(next(t for t in p.graph.initializer if t.name == "w1"))
    assert w1.shape == (4, 3, 3, 3) and float(np.abs(w1[0]).max()) == 5.0


@pytest.mark.parametrize("name", ["tiny_cnn", "tiny_mobilenet", "tiny_mlp", "tiny_googlenet"])
@pytest.mark.parametrize("spec", ["channels:30%", "channels:50%:l2", "channels:40%:bn"])
def test_pruned_equals_masked(name: str, spec: str) -> None:
    m = zoo.build(name)
    result = prune_model(m, spec)
    onnx.checker.check_model(result.model, full_check=True)
    feeds = _feeds(m)
    got, want = _run(result.model, feeds), _run(result.reference(m), feeds)
    assert compare(got, want).within(TOLERANCES["fp32"])
    assert count_params(result.model) <= count_params(m)
    # the masked reference really differs from the dense original (channels were removed)
    if result.plan and result.plan.groups:
        assert not compare(_run(m, feeds), want).within(TOLERANCES["fp32"])


def test_mobilenet_residual_and_depthwise_stay_valid() -> None:
    m = zoo.build("tiny_mobilenet")
    groups = channel_groups(m)
    merged = [g for g in groups if len(g.producers) > 1]
    # the residual Adds merge each block's projection with the tensor it adds to
    assert merged and all(g.frozen is None for g in merged)
    assert any(g.depthwise for g in groups)
    result = prune_model(m, "channels:50%")
    inits = {t.name: numpy_helper.to_array(t) for t in result.model.graph.initializer}
    for node in result.model.graph.node:
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        if node.op_type == "Conv" and group > 1:      # depthwise: group == its (pruned) channel count
            assert inits[node.input[1]].shape[0] == group
    # both inputs of every Add carry the same channel count after pruning
    shapes = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim] for vi in result.model.graph.value_info}
    for node in result.model.graph.node:
        if node.op_type == "Add" and all(i in shapes for i in node.input):
            assert shapes[node.input[0]][1] == shapes[node.input[1]][1]


def test_ratio_zero_changes_nothing() -> None:
    m = zoo.build("tiny_cnn")
    result = prune_model(m, "channels:0%")
    assert result.plan is not None and result.plan.groups == ()
    assert count_params(result.model) == count_params(m)


def _frozen_by(consumer: list[onnx.NodeProto], outputs: list[onnx.ValueInfoProto],
               extra_inputs: list[onnx.ValueInfoProto] = (), inits: list[onnx.TensorProto] = ()) -> list:
    rng = np.random.default_rng(2)
    w = numpy_helper.from_array(rng.standard_normal((8, 3, 1, 1)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"), *consumer]
    g = helper.make_graph(nodes, "g", [_vi("x", [1, 3, 4, 4]), *extra_inputs], outputs, [w, *inits])
    return channel_groups(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))


def test_unsupported_consumers_freeze_the_group() -> None:
    shape = numpy_helper.from_array(np.array([1, -1], np.int64), "shape")
    [g] = _frozen_by([helper.make_node("Reshape", ["c", "shape"], ["y"], name="reshape")], [_vi("y", [1, 128])],
                     inits=[shape])
    assert g.frozen and "Reshape" in g.frozen
    # an Add with a graph input: the other operand's channels cannot be removed
    [g] = _frozen_by([helper.make_node("Add", ["c", "z"], ["a"], name="add"),
                      helper.make_node("Relu", ["a"], ["y"])], [_vi("y", [1, 8, 4, 4])],
                     extra_inputs=[_vi("z", [1, 8, 4, 4])])
    assert g.frozen
    # Flatten of a [N, C, H, W] with H*W > 1 interleaves channels
    [g] = _frozen_by([helper.make_node("Flatten", ["c"], ["y"], name="flat")], [_vi("y", [1, 128])])
    assert g.frozen and "Flatten" in g.frozen


def test_plan_is_deterministic_and_per_group_ratios() -> None:
    m = zoo.build("tiny_cnn")
    a, b = plan_channels(m, 0.3), plan_channels(m, 0.3)
    assert [g.keep for g in a.groups] == [g.keep for g in b.groups]
    first = a.groups[0].producers[0]
    c = plan_channels(m, 0.3, ratios={first: 0.0})
    assert first not in [g.producers[0] for g in c.groups]


def _se_mlp() -> onnx.ModelProto:
    """Conv -> per-channel Mul/Div and scalar Add -> Relu -> squeeze-excite (a Mul of two groups) -> GAP ->
    Flatten -> Gemm(transB) -> Relu -> MatMul + bias -> Relu -> MatMul: every propagation case in one graph."""
    rng = np.random.default_rng(3)

    def t(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    inits = [t("w", 8, 3, 3, 3), t("b", 8), t("scale", 8, 1, 1), t("shift", 1), t("div", 1, 8, 1, 1),
             t("se1", 4, 8, 1, 1), t("se1b", 4), t("se2", 8, 4, 1, 1), t("se2b", 8), t("fc", 16, 8), t("fcb", 16),
             t("m1", 16, 6), t("m1b", 6), t("m2", 6, 3)]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Mul", ["c", "scale"], ["c1"], name="mul"),
             helper.make_node("Add", ["shift", "c1"], ["c2"], name="add"),
             helper.make_node("Div", ["c2", "div"], ["c3"], name="div"),
             helper.make_node("Relu", ["c3"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["p"], name="gap_se"),
             helper.make_node("Conv", ["p", "se1", "se1b"], ["s1"], name="se_reduce"),
             helper.make_node("Relu", ["s1"], ["s2"], name="se_relu"),
             helper.make_node("Conv", ["s2", "se2", "se2b"], ["s3"], name="se_expand"),
             helper.make_node("Sigmoid", ["s3"], ["s4"], name="se_gate"),
             helper.make_node("Mul", ["r", "s4"], ["e"], name="se_mul"),
             helper.make_node("GlobalAveragePool", ["e"], ["g"], name="gap"),
             helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "fc", "fcb"], ["h"], name="fc", transB=1),
             helper.make_node("Relu", ["h"], ["h1"], name="fc_relu"),
             helper.make_node("MatMul", ["h1", "m1"], ["k"], name="mm1"),
             helper.make_node("Add", ["k", "m1b"], ["k1"], name="mm1_bias"),
             helper.make_node("Relu", ["k1"], ["k2"], name="mm1_relu"),
             helper.make_node("MatMul", ["k2", "m2"], ["y"], name="mm2")]
    g = helper.make_graph(nodes, "se_mlp", [_vi("x", ["N", 3, 8, 8])], [_vi("y", ["N", 3])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_every_propagation_case_equals_masked() -> None:
    m = _se_mlp()
    groups = channel_groups(m)
    live = {g.producers[0]: g for g in groups if g.frozen is None}
    # conv and se_expand merge at the squeeze-excite Mul; se_reduce, fc and mm1 are groups of their own
    assert set(live) == {"conv", "se_reduce", "fc", "mm1"} and set(live["conv"].producers) == {"conv", "se_expand"}
    result = prune_model(m, "channels:50%")
    onnx.checker.check_model(result.model, full_check=True)
    feeds = _feeds(m, batch=3)
    assert compare(_run(result.model, feeds), _run(result.reference(m), feeds)).within(TOLERANCES["fp32"])
    shapes = {t.name: tuple(t.dims) for t in result.model.graph.initializer}
    assert shapes["w"] == (4, 3, 3, 3) and shapes["scale"] == (4, 1, 1) and shapes["div"] == (1, 4, 1, 1)
    assert shapes["fc"] == (8, 4) and shapes["m1"] == (8, 3) and shapes["m2"] == (3, 3) and shapes["shift"] == (1,)
