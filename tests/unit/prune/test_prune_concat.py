"""Channel pruning through Concat (inception blocks): each branch's removed channels map to their
offset range in the Concat output and its consumers; the pruned graph equals the original with the
same channels masked (ONNX Runtime, FP32 tolerance); hand counts on a tiny concat model."""

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
from tensorforge.prune import prune_model
from tensorforge.prune.groups import channel_groups


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"]).run(None, feeds)


def _vi(name: str, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _filters(n: int, cin: int) -> np.ndarray:
    """Filter c is (c+1) times a +-1 pattern: its L1 rank is its index."""
    sign = np.where(np.arange(cin) % 2, 1.0, -1.0).reshape(1, cin, 1, 1)
    return (np.arange(1, n + 1, dtype=np.float32).reshape(n, 1, 1, 1) * sign).astype(np.float32)


def _tiny_concat(axis: int = 1) -> onnx.ModelProto:
    """x[N,2,4,4] -> convA (4 filters) -> Relu -> a;  x -> convB (2 filters) -> b;
    Concat(a, b, x) [N,8,4,4] -> convC (3 filters, bias) -> y."""
    rng = np.random.default_rng(3)
    wc = rng.standard_normal((3, 8, 1, 1)).astype(np.float32)
    inits = [numpy_helper.from_array(_filters(4, 2), "wa"), numpy_helper.from_array(_filters(2, 2), "wb"),
             numpy_helper.from_array(wc, "wc"), numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "bc")]
    nodes = [helper.make_node("Conv", ["x", "wa"], ["ca"], name="convA"),
             helper.make_node("Relu", ["ca"], ["a"], name="reluA"),
             helper.make_node("Conv", ["x", "wb"], ["b"], name="convB"),
             helper.make_node("Concat", ["a", "b", "x"], ["cat"], name="cat", axis=axis),
             helper.make_node("Conv", ["cat", "wc", "bc"], ["y"], name="convC")]
    out_shape = ["N", 3, 4, 4] if axis == 1 else None
    g = helper.make_graph(nodes, "tiny_concat", [_vi("x", ["N", 2, 4, 4])], [_vi("y", out_shape)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_hand_count_and_offsets_tiny_concat() -> None:
    m = _tiny_concat()
    # A: 4*2 = 8, B: 2*2 = 4, C: 3*8 + 3 = 27; MACs over 16 px: 16 * (8 + 4 + 24)
    assert count_params(m) == 39 and count_macs(m) == 16 * 36
    result = prune_model(m, "channels:50%")
    assert result.plan is not None
    keeps = {g.producers: g.keep for g in result.plan.groups}
    assert keeps == {("convA",): (2, 3), ("convB",): (1,)}
    # A keeps 2 filters (4), B keeps 1 (2), C keeps 2 + 1 + 2 input channels: 3*5 + 3 = 18
    assert count_params(result.model) == 24 and count_macs(result.model) == 16 * (4 + 2 + 15)
    inits = {t.name: numpy_helper.to_array(t) for t in result.model.graph.initializer}
    wc = numpy_helper.to_array(next(t for t in m.graph.initializer if t.name == "wc"))
    # A's kept channels 2, 3 at offset 0; B's kept channel 1 at offset 4; x's two channels at offset 6
    np.testing.assert_array_equal(inits["wc"], wc[:, [2, 3, 5, 6, 7]])
    feeds = {"x": np.random.default_rng(0).standard_normal((2, 2, 4, 4)).astype(np.float32)}
    assert compare(_run(result.model, feeds), _run(result.reference(m), feeds)).within(TOLERANCES["fp32"])
    assert not compare(_run(m, feeds), _run(result.reference(m), feeds)).within(TOLERANCES["fp32"])


def test_concat_off_the_channel_axis_freezes() -> None:
    groups = channel_groups(_tiny_concat(axis=2))
    assert groups and all(g.frozen and "Concat" in g.frozen for g in groups)


def test_nested_concat_and_batchnorm_after_concat() -> None:
    """Concat(Concat(a, b), c) -> BatchNorm -> Relu -> conv: offsets compose; BN params follow."""
    rng = np.random.default_rng(5)

    def t(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    bn = [numpy_helper.from_array(np.abs(rng.standard_normal(12)).astype(np.float32) + 0.5, n)
          for n in ("gamma", "beta", "mean", "var")]
    nodes = [helper.make_node("Conv", ["x", "wa"], ["a"], name="convA"),
             helper.make_node("Conv", ["x", "wb"], ["b"], name="convB"),
             helper.make_node("Conv", ["x", "wc"], ["c"], name="convC"),
             helper.make_node("Concat", ["a", "b"], ["ab"], name="cat1", axis=1),
             helper.make_node("Concat", ["ab", "c"], ["abc"], name="cat2", axis=-3),
             helper.make_node("BatchNormalization", ["abc", "gamma", "beta", "mean", "var"], ["n"], name="bn"),
             helper.make_node("Relu", ["n"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "wd"], ["y"], name="convD")]
    g = helper.make_graph(nodes, "nested", [_vi("x", ["N", 3, 5, 5])], [_vi("y", ["N", 2, 5, 5])],
                          [t("wa", 4, 3, 1, 1), t("wb", 6, 3, 1, 1), t("wc", 2, 3, 1, 1), *bn, t("wd", 2, 12, 1, 1)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    for spec in ("channels:50%", "channels:50%:bn"):
        result = prune_model(m, spec)
        assert result.plan is not None and len(result.plan.groups) == 3
        onnx.checker.check_model(result.model, full_check=True)
        feeds = {"x": rng.standard_normal((2, 3, 5, 5)).astype(np.float32)}
        assert compare(_run(result.model, feeds), _run(result.reference(m), feeds)).within(TOLERANCES["fp32"])
        assert count_params(result.model) < count_params(m)


@pytest.mark.parametrize("name", ["tiny_googlenet", "googlenet"])
def test_googlenet_inception_branches_prune_and_equal_masked(name: str) -> None:
    m = zoo.build(name)
    groups = channel_groups(m)
    # every inception branch is prunable now; only the LRN-read stems and the logits stay whole
    frozen = [g.frozen for g in groups if g.frozen]
    assert all("LRN" in why or "graph output" in why for why in frozen)
    result = prune_model(m, "channels:30%")
    assert result.summary["params_after"] < 0.8 * result.summary["params_before"]
    shape = [1] + [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim][1:]
    feeds = {m.graph.input[0].name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    got, want = _run(result.model, feeds), _run(result.reference(m), feeds)
    assert compare(got, want).within(TOLERANCES["fp32"])
    assert not compare(_run(m, feeds), want).within(TOLERANCES["fp32"])
