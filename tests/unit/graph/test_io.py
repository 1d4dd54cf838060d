"""load_model / normalize / model_hash."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tensorforge.errors import ModelError
from tensorforge.graph.io import load_model, model_hash, normalize
from tensorforge.graph.pipelines import run_pipeline

from test_passes_helpers import check_equivalent, op_types, random_feeds, run_ort


def _big_model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((64, 32)).astype(np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 32])], [w],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_external_data_round_trip(tmp_path):
    model = _big_model()
    path = tmp_path / "m.onnx"
    to_save = onnx.ModelProto()
    to_save.CopyFrom(model)  # onnx.save rewrites the tensors it externalizes in place
    onnx.save(to_save, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location="m.data", size_threshold=0)
    assert (tmp_path / "m.data").exists()
    loaded = load_model(path)
    assert model_hash(loaded) == model_hash(model)
    check_equivalent(model, loaded)


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_model(tmp_path / "nope.onnx")


@pytest.mark.parametrize("content", [b"hello, I am a text file\n", b"PK\x03\x04" + bytes(range(256)) * 4],
                         ids=["text", "zip"])
def test_garbage_bytes(tmp_path, content):
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(ModelError, match="bad.onnx"):
        load_model(path)


def test_truncated_proto(tmp_path):
    data = _big_model().SerializeToString()
    path = tmp_path / "trunc.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="trunc.onnx"):
        load_model(path)


def test_missing_external_data(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_big_model(), str(path), save_as_external_data=True, location="m.data", size_threshold=0)
    (tmp_path / "m.data").unlink()
    with pytest.raises(ModelError, match="external"):
        load_model(path)


def test_checker_failure(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x", "x2"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    path = tmp_path / "bad_graph.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ModelError, match="checker"):
        load_model(path)


def test_model_hash_is_stable_and_sensitive():
    a, b = _big_model(), _big_model()
    assert model_hash(a) == model_hash(b) and len(model_hash(a)) == 64
    b.graph.initializer[0].float_data.append(0.0)
    assert model_hash(a) != model_hash(b)


def _opset7_model() -> onnx.ModelProto:
    """An old-exporter model: opset 7, weights also listed as inputs, BN with spatial, Dropout."""
    rng = np.random.default_rng(1)
    c = 4
    inits = [
        numpy_helper.from_array(rng.standard_normal((c, 3, 3, 3)).astype(np.float32), "W"),
        numpy_helper.from_array(rng.uniform(0.5, 2, c).astype(np.float32), "s"),
        numpy_helper.from_array(rng.standard_normal(c).astype(np.float32), "b"),
        numpy_helper.from_array(rng.standard_normal(c).astype(np.float32), "m"),
        numpy_helper.from_array(rng.uniform(0.5, 2, c).astype(np.float32), "v"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"], spatial=1, epsilon=1e-3),
        helper.make_node("Relu", ["n"], ["r"]),
        helper.make_node("Dropout", ["r"], ["y"], ratio=0.5),
    ]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])] + [
        helper.make_tensor_value_info(t.name, TensorProto.FLOAT, list(t.dims)) for t in inits
    ]
    graph = helper.make_graph(nodes, "old", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, 6, 6])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 7)])
    model.ir_version = 3
    onnx.checker.check_model(model)
    return model


def test_normalize_opset7_then_optimize():
    old = _opset7_model()
    model, notes = normalize(old)
    assert "upgraded opset 7 -> 13" in notes
    assert "removed 5 initializers listed as graph inputs" in notes
    assert [i.name for i in model.graph.input] == ["x"]
    assert model.opset_import[0].version == 13
    assert len(old.graph.input) == 6  # the input is not modified
    optimized, reports = run_pipeline(model)
    assert op_types(optimized) == {"Conv": 1, "Relu": 1}
    feeds = random_feeds(old)
    np.testing.assert_allclose(run_ort(optimized, feeds)[0], run_ort(old, feeds)[0], rtol=1e-5, atol=1e-4)


def test_normalize_noop_on_modern_model():
    model, notes = normalize(_big_model())
    assert notes == [] and model_hash(model) == model_hash(_big_model())


def test_normalize_failure_is_model_error():
    model = _big_model()
    model.opset_import[0].version = 12
    model.graph.node[0].op_type = "NoSuchOp"
    with pytest.raises(ModelError, match="opset 12"):
        normalize(model)
