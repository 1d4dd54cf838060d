"""batch_dim_of / set_batch."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tensorforge.errors import BuildError
from tensorforge.graph.batch import batch_dim_of, set_batch

from test_passes_helpers import parse, run_ort, run_ref


def _fixed_batch_cnn(target: list[int]) -> onnx.ModelProto:
    """Conv → Relu → Reshape(target) → Gemm, exported at fixed batch 1."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "W"),
        numpy_helper.from_array(np.array(target, np.int64), "flat"),
        numpy_helper.from_array(rng.standard_normal((4 * 5 * 5, 7)).astype(np.float32), "F"),
        numpy_helper.from_array(rng.standard_normal(7).astype(np.float32), "Fb"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Reshape", ["r", "flat"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "F", "Fb"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 7])], inits,
        value_info=[helper.make_tensor_value_info("f", TensorProto.FLOAT, [1, 100])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.mark.parametrize("target", [[1, -1], [1, 100]], ids=["flatten_minus1", "flatten_fixed"])
def test_set_batch_symbolic_runs_at_batch_4(target):
    model = _fixed_batch_cnn(target)
    assert batch_dim_of(model) == 1
    dyn = set_batch(model, "N")
    assert batch_dim_of(dyn) == "N"
    assert dyn.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "N"
    assert len(dyn.graph.value_info) == 0
    onnx.checker.check_model(dyn, full_check=True)
    x = np.random.default_rng(1).standard_normal((4, 3, 5, 5)).astype(np.float32)
    for run in (run_ort, run_ref):
        got = run(dyn, {"x": x})[0]
        assert got.shape == (4, 7)
        for i in range(4):
            want = run(model, {"x": x[i : i + 1]})[0]
            np.testing.assert_allclose(got[i : i + 1], want, rtol=1e-5, atol=1e-5)


def test_set_batch_fixed_int():
    model = set_batch(_fixed_batch_cnn([1, -1]), 3)
    assert batch_dim_of(model) == 3
    x = np.zeros((3, 3, 5, 5), np.float32)
    assert run_ort(model, {"x": x})[0].shape == (3, 7)


def test_unrewritable_reshape_names_node():
    # data's dim 0 is unknown and the target has a -1 elsewhere: no safe rewrite
    text = """
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[1, 6] x, float[1, 6] z) => (float[1, 3, 2] y) <int64[3] t = {1, -1, 2}> {
        u = Unique<sorted = 0>(x)
        y = Reshape(u, t)
    }
    """
    model = parse(text.replace("float[1, 6] z", "float[1, 6] zz"))
    with pytest.raises(BuildError, match="Reshape node"):
        set_batch(model, "N")


def test_batch_dim_of_cases():
    assert batch_dim_of(parse("""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[N, 3] x) => (float[N, 3] y) { y = Relu(x) }
    """)) == "N"
    assert batch_dim_of(parse("""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float x) => (float y) { y = Relu(x) }
    """)) is None


def test_set_batch_rejects_bad_values():
    model = _fixed_batch_cnn([1, -1])
    for bad in (0, -2, "", True, 1.5):
        with pytest.raises(BuildError):
            set_batch(model, bad)  # type: ignore[arg-type]
