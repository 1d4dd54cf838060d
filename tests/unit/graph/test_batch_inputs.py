"""Issue #18: the batch rewrite touches only inputs that share the batch axis; the opset upgrade keeps
PRelu's per-channel slopes (opset < 7) per channel."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from tensorforge.graph.batch import batch_inputs, set_batch
from tensorforge.graph.io import normalize

F = TensorProto.FLOAT


def _model(nodes, inputs, outputs, inits=(), opset=17) -> onnx.ModelProto:
    model = helper.make_model(helper.make_graph(nodes, "m", inputs, outputs, initializer=list(inits)),
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _dims(vi: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]


def test_only_inputs_sharing_dim0_are_rewritten():
    # pytorch-operator/test_operator_mm and test_operator_add_broadcast: [2, 3] x [3, 4], [2, 3] + [3]
    model = _model([helper.make_node("MatMul", ["a", "b"], ["m"]), helper.make_node("Add", ["m", "c"], ["y"]),
                    helper.make_node("Add", ["a2", "a2"], ["z"])],
                   [helper.make_tensor_value_info("a", F, [2, 3]), helper.make_tensor_value_info("b", F, [3, 4]),
                    helper.make_tensor_value_info("c", F, [4]), helper.make_tensor_value_info("a2", F, [2, 5])],
                   [helper.make_tensor_value_info("y", F, [2, 4]), helper.make_tensor_value_info("z", F, [2, 5])])
    assert batch_inputs(model) == ["a", "a2"]
    out = set_batch(model, "N")
    assert {vi.name: _dims(vi) for vi in out.graph.input} == {"a": ["N", 3], "b": [3, 4], "c": [4], "a2": ["N", 5]}
    assert [_dims(vi) for vi in out.graph.output] == [["N", 4], ["N", 5]]
    x = {"a": np.ones((6, 3), np.float32), "b": np.ones((3, 4), np.float32), "c": np.ones(4, np.float32),
         "a2": np.ones((6, 5), np.float32)}
    y, z = ort.InferenceSession(out.SerializeToString()).run(None, x)
    assert y.shape == (6, 4) and z.shape == (6, 5)


def test_prelu_per_channel_slope_survives_the_opset_upgrade():
    # pytorch-converted/test_PReLU_2d_multiparam: opset 6, slope [C] applied per channel
    slope = numpy_helper.from_array(np.array([0.1, 0.2, 0.3], np.float32), "s")
    model = _model([helper.make_node("PRelu", ["x", "s"], ["y"])],
                   [helper.make_tensor_value_info("x", F, [2, 3, 4, 5])],
                   [helper.make_tensor_value_info("y", F, [2, 3, 4, 5])], inits=[slope], opset=6)
    upgraded, notes = normalize(model)
    assert any("PRelu" in n for n in notes)
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    got = ort.InferenceSession(upgraded.SerializeToString()).run(None, {"x": x})[0]
    want = np.where(x >= 0, x, x * np.array([0.1, 0.2, 0.3], np.float32).reshape(1, 3, 1, 1))
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_a_shared_prelu_slope_gets_a_per_channel_copy_per_node():
    slope = numpy_helper.from_array(np.array([0.1, 0.2, 0.3], np.float32), "s")
    model = _model([helper.make_node("PRelu", ["x", "s"], ["y1"]), helper.make_node("PRelu", ["y1", "s"], ["y"])],
                   [helper.make_tensor_value_info("x", F, [2, 3, 4, 5])],
                   [helper.make_tensor_value_info("y", F, [2, 3, 4, 5])], inits=[slope], opset=6)
    upgraded, _ = normalize(model)
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    got = ort.InferenceSession(upgraded.SerializeToString()).run(None, {"x": x})[0]
    s = np.array([0.1, 0.2, 0.3], np.float32).reshape(1, 3, 1, 1)
    y1 = np.where(x >= 0, x, x * s)
    np.testing.assert_allclose(got, np.where(y1 >= 0, y1, y1 * s), rtol=1e-6)
