"""FP16/BF16 conversion: close to FP32, graph IO kept, ops that must stay FP32 stay, BF16 runs on ORT's CPU."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from tensorforge.core.specs import io_specs, random_inputs
from tensorforge.engine.build import build
from tensorforge.precision.fp16 import compute_in_fp32, convert_float, missing_kernels

# Stated tolerance: FP16 within 1e-2 relative (max error / max |FP32 output|); BF16 (8-bit mantissa) within 5e-2.
TOL = {"fp16": 1e-2, "bf16": 5e-2}


def run(model, feeds):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]


@pytest.fixture(scope="module", params=["tiny_cnn", "tiny_googlenet", "tiny_mlp"])
def zoo_model(request):
    engine, _ = build(request.param)
    model = onnx.load_from_string(engine.model_bytes)
    return model, random_inputs(io_specs(model)[0], 4, seed=1)


@pytest.mark.parametrize("target", ["fp16", "bf16"])
def test_converted_model_runs_close_to_fp32(zoo_model, target):
    model, x = zoo_model
    low, info = convert_float(model, target)
    if target == "bf16":            # ORT's CPU has no bf16 Conv/Gemm…: compute those in FP32 between Casts
        low, _ = compute_in_fp32(low, missing_kernels(low))
    want, got = run(model, x), run(low, x)
    assert got.dtype == np.float32                       # graph IO keeps the model's dtype
    assert np.abs(got - want).max() <= TOL[target] * np.abs(want).max()
    assert info.converted_nodes > 0
    weights = [t for t in low.graph.initializer if t.data_type in (TensorProto.FLOAT16, TensorProto.BFLOAT16)]
    assert weights, "weights are stored in 16 bits"


def test_lrn_and_softmax_stay_fp32_and_are_reported():
    engine, _ = build("tiny_googlenet")
    model = onnx.load_from_string(engine.model_bytes)
    _, info = convert_float(model, "fp16")
    lrn = [n.name for n in model.graph.node if n.op_type == "LRN"]
    assert lrn and all("LRN" in info.kept_fp32[n] for n in lrn)
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
                           helper.make_node("Softmax", ["h"], ["y"], name="sm", axis=-1)], "s",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
                          [numpy_helper.from_array(np.eye(4, dtype=np.float32), "w")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    low, info = convert_float(m, "fp16")
    assert "sm" in info.kept_fp32 and "accumulation" in info.kept_fp32["sm"]
    types = {n.name: n for n in low.graph.node}
    assert any(n.op_type == "Cast" for n in types.values())
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_allclose(run(low, {"x": x}), run(m, {"x": x}), rtol=1e-2, atol=1e-3)


def test_io_types_can_change_and_fp16_range_is_clamped():
    w = np.array([[1e6, 1.0], [2.0, -1e6]], np.float32)
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "c",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
                          [numpy_helper.from_array(w, "w")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    low, info = convert_float(m, "fp16", keep_io_types=False)
    assert low.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT16
    assert low.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT16
    assert info.clamped_values == 2 and "clamped" in info.notes[0]
    out = run(low, {"x": np.array([[0.0, 1.0]], np.float16)})
    assert out.dtype == np.float16 and out[0, 1] == np.float16(-65504)


def test_missing_kernels_names_the_ops_onnxruntime_runs_in_fp32():
    engine, _ = build("tiny_cnn")
    low, _ = convert_float(onnx.load_from_string(engine.model_bytes), "fp16")
    lacking = missing_kernels(low)
    assert "Conv" in lacking          # ORT's CPU provider has no float16 Conv kernel (read from its registry)
    assert "Cast" not in lacking
