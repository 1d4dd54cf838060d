"""A model "from the wild" end to end through the CLI: every quirk at once.

Opset 9 (and opset 7 with BatchNormalization's old ``spatial`` attribute), initializers also listed
as graph inputs, a weight computed by a ConstantOfShape subgraph, Dropout and Identity
left in, a fixed batch of 1 with a hard-coded Reshape([1, -1]) flatten, and its weights in
an external-data file. `tensorforge build --max-batch 8` must turn it into an engine that
runs batch 8 and gives, row by row, what the original gives on each row alone.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import tensorforge
from tensorforge.cli.main import main


def wild_model(opset: int = 9) -> onnx.ModelProto:
    rng = np.random.default_rng(7)
    inits = {
        "w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.5,
        "scale": rng.uniform(0.5, 1.5, 4).astype(np.float32),
        "bias": rng.standard_normal(4).astype(np.float32),
        "mean": rng.standard_normal(4).astype(np.float32) * 0.1,
        "var": rng.uniform(0.5, 2.0, 4).astype(np.float32),
        "fc_w": rng.standard_normal((4 * 8 * 8, 10)).astype(np.float32) * 0.1,
        "flat_shape": np.array([1, -1], np.int64),
        "fc_b_shape": np.array([10], np.int64),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["b"], epsilon=1e-5,
                         **({"spatial": 1} if opset < 9 else {})),
        helper.make_node("Relu", ["b"], ["r"]),
        helper.make_node("Dropout", ["r"], ["d"], ratio=0.5),
        helper.make_node("Identity", ["d"], ["i"]),
        helper.make_node("Reshape", ["i", "flat_shape"], ["f"]),
        # the bias is computed at run time from a constant subgraph: ConstantOfShape(0.25), or
        # before opset 9 (no ConstantOfShape) Constant(0.5) * Constant(0.5) broadcast
        *([helper.make_node("ConstantOfShape", ["fc_b_shape"], ["fc_b"],
                            value=numpy_helper.from_array(np.array([0.25], np.float32)))] if opset >= 9 else [
            helper.make_node("Constant", [], ["half"], value=numpy_helper.from_array(np.full(10, 0.5, np.float32))),
            helper.make_node("Mul", ["half", "half"], ["fc_b"])]),
        helper.make_node("MatMul", ["f", "fc_w"], ["m"]),
        helper.make_node("Add", ["m", "fc_b"], ["y"]),
    ]
    graph_inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])]
    # old exporters listed every initializer as a graph input too
    graph_inputs += [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
                     for k, v in inits.items()]
    graph = helper.make_graph(nodes, "wild", graph_inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
                              initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="old-exporter")
    model.ir_version = 3
    return model


@pytest.mark.parametrize("opset", [7, 9])
def test_wild_model_build_and_run(tmp_path, capsys, opset):
    model = wild_model(opset)
    path = tmp_path / "wild.onnx"
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    onnx.save(copy, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location="wild.weights", size_threshold=0)
    assert (tmp_path / "wild.weights").exists()

    engine_file = tmp_path / "wild.tfe"
    code = main(["build", str(path), "--max-batch", "8", "-o", str(engine_file)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "passed" in out and "BatchNormalization" in out

    engine = tensorforge.Engine.load(engine_file)
    ops = {n.op_type for n in onnx.load_from_string(engine.model_bytes).graph.node}
    assert not ops & {"BatchNormalization", "Dropout", "Identity", "ConstantOfShape", "Constant", "Mul"}, ops
    assert engine.inputs[0].shape[0] == "N" and engine.max_batch == 8

    x = np.random.default_rng(0).standard_normal((8, 3, 8, 8)).astype(np.float32)
    got = engine.session().run(x)["y"]
    original = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = np.concatenate([original.run(None, {"x": x[i:i + 1]})[0] for i in range(8)])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
