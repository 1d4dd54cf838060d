"""Verification inputs the model accepts (issue #18): shapes from the model, the batch only where it is
shared, integer inputs valid for their consumers or a clear request for sample data, sample data from
``verify_data`` or beside the model, and backend failures as typed errors naming the stage."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tensorforge.cli.main import main
from tensorforge.engine.build import BuildOptions, build
from tensorforge.engine.verify_inputs import choose_feeds
from tensorforge.errors import BuildError

F, I64 = TensorProto.FLOAT, TensorProto.INT64


def _model(nodes, inputs, outputs, inits=(), opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "m", inputs, outputs, initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def mm_model() -> onnx.ModelProto:      # pytorch-operator/test_operator_mm's shape: [2, 3] x [3, 4]
    return _model([helper.make_node("MatMul", ["a", "b"], ["y"])],
                  [_vi("a", F, [2, 3]), _vi("b", F, [3, 4])], [_vi("y", F, [2, 4])])


def test_fixed_shapes_are_kept_per_input():
    engine, report = build(mm_model())
    assert report.verification.passed and report.verification.data.startswith("random")


def test_batch_rewrite_leaves_a_weight_input_alone():
    _, report = build(mm_model(), options=BuildOptions(max_batch=4))
    assert report.verification.passed and report.verification.batch == 2


def test_a_symbol_gets_one_value_across_inputs():
    model = _model([helper.make_node("MatMul", ["x", "w"], ["y"])],
                   [_vi("x", F, ["N", "K"]), _vi("w", F, ["K", 4])], [_vi("y", F, ["N", 4])])
    feeds = choose_feeds(model, model, verify_batch=3).feeds
    assert feeds["x"].shape == (3, 1) and feeds["w"].shape == (1, 4)
    assert build(model)[1].verification.passed


def expand_model() -> onnx.ModelProto:  # simple/test_expand_shape_model*: the shape is an input
    return _model([helper.make_node("Expand", ["x", "shape"], ["y"])],
                  [_vi("x", F, [3, 1]), _vi("shape", I64, [2])], [_vi("y", F, ["A", "B"])])


def test_shape_input_asks_for_sample_data():
    with pytest.raises(BuildError, match=r"'shape' feeds Expand node .* verify_data="):
        build(expand_model())


def test_sample_data_from_verify_data_mapping_and_npz(tmp_path):
    data = {"x": np.arange(3, dtype=np.float32).reshape(3, 1), "shape": np.array([3, 4], np.int64)}
    _, report = build(expand_model(), options=BuildOptions(verify_data=data))
    assert report.verification.passed and report.verification.data == "sample inputs (given)"
    np.savez(tmp_path / "in.npz", **data)
    _, report = build(expand_model(), options=BuildOptions(verify_data=tmp_path / "in.npz"))
    assert report.verification.passed and "in.npz" in report.verification.data
    with pytest.raises(BuildError, match=r"no array for input\(s\) \['shape'\]"):
        build(expand_model(), options=BuildOptions(verify_data={"x": data["x"]}))
    with pytest.raises(BuildError, match="axis 0"):
        build(expand_model(), options=BuildOptions(verify_data={**data, "x": np.zeros((2, 1), np.float32)}))


def test_test_data_beside_the_model_is_used(tmp_path):
    onnx.save(expand_model(), tmp_path / "model.onnx")
    (tmp_path / "test_data_set_0").mkdir()
    for i, a in enumerate([np.ones((3, 1), np.float32), np.array([3, 5], np.int64)]):
        (tmp_path / "test_data_set_0" / f"input_{i}.pb").write_bytes(numpy_helper.from_array(a).SerializeToString())
    _, report = build(tmp_path / "model.onnx")
    assert report.verification.passed and report.verification.data.startswith("test data beside the model")


def test_cli_verify_data_flag(tmp_path, capsys):
    onnx.save(expand_model(), tmp_path / "m.onnx")
    np.savez(tmp_path / "in.npz", x=np.ones((3, 1), np.float32), shape=np.array([3, 2], np.int64))
    code = main(["build", str(tmp_path / "m.onnx"), "--verify-data", str(tmp_path / "in.npz"),
                 "-o", str(tmp_path / "m.tfe")])
    assert code == 0, capsys.readouterr().out


def test_gather_indices_stay_inside_the_indexed_axis():
    table = numpy_helper.from_array(np.arange(4, dtype=np.float32).reshape(1, 4), "table")
    model = _model([helper.make_node("Gather", ["table", "ids"], ["y"], axis=0)],
                   [_vi("ids", I64, ["N", 5])], [_vi("y", F, ["N", 5, 4])], inits=[table])
    feeds = choose_feeds(model, model).feeds
    assert feeds["ids"].shape == (2, 5) and not feeds["ids"].any()     # axis of size 1: only index 0
    assert build(model)[1].verification.passed


def test_backend_failure_is_typed_and_names_the_stage():
    # Gradient is a training op inference onnxruntime cannot load
    model = _model([helper.make_node("Gradient", ["x", "x"], ["g"], domain="ai.onnx.preview.training",
                                     xs=["x"], y="x")],
                   [_vi("x", F, [2])], [_vi("g", F, [2])])
    model.opset_import.append(helper.make_opsetid("ai.onnx.preview.training", 1))
    with pytest.raises(BuildError, match="verification: onnxruntime cannot load the original model"):
        build(model)
