"""Shared fixtures: small real ONNX models built in tmp dirs, and engines built from them."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper


def make_conv_bn_model(batch: int | str = "N", seed: int = 0) -> onnx.ModelProto:
    """Conv → BatchNorm → Relu → GlobalAveragePool → Flatten → Gemm, with a Dropout and an Identity."""
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3, "w")
    scale = numpy_helper.from_array(rng.uniform(0.5, 1.5, 8).astype(np.float32), "scale")
    bias = numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "bias")
    mean = numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "mean")
    var = numpy_helper.from_array(rng.uniform(0.5, 2.0, 8).astype(np.float32), "var")
    fc_w = numpy_helper.from_array(rng.standard_normal((8, 5)).astype(np.float32), "fc_w")
    fc_b = numpy_helper.from_array(rng.standard_normal(5).astype(np.float32), "fc_b")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["b"], epsilon=1e-3),
        helper.make_node("Relu", ["b"], ["r"]),
        helper.make_node("Identity", ["r"], ["r2"]),
        helper.make_node("Dropout", ["r2"], ["d"]),
        helper.make_node("GlobalAveragePool", ["d"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "conv_bn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 5])],
        initializer=[w, scale, bias, mean, var, fc_w, fc_b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@pytest.fixture
def conv_bn_model() -> onnx.ModelProto:
    return make_conv_bn_model()


@pytest.fixture
def conv_bn_path(tmp_path, conv_bn_model):
    path = tmp_path / "conv_bn.onnx"
    onnx.save(conv_bn_model, path)
    return path


@pytest.fixture
def engine_path(tmp_path, conv_bn_path):
    from tensorforge.engine.build import build

    out = tmp_path / "conv_bn.tfe"
    build(conv_bn_path, out)
    return out
