"""run_pipeline on a small ResNet-like network, reports, interface preservation."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tensorforge.errors import BuildError
from tensorforge.graph.pipelines import PIPELINES, PassReport, run_pipeline

from test_passes_helpers import check_equivalent, op_types


def resnet_block(batch: int | str = 2) -> onnx.ModelProto:
    """conv-bn-relu → conv-bn (+ residual) → relu → dropout → GAP → flatten → MatMul+Add."""
    rng = np.random.default_rng(0)
    c, hw = 8, 6
    inits = []

    def add(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def bn(prefix):
        return [
            add(f"{prefix}_s", rng.uniform(0.5, 2, c).astype(np.float32)),
            add(f"{prefix}_b", rng.standard_normal(c).astype(np.float32)),
            add(f"{prefix}_m", rng.standard_normal(c).astype(np.float32) * 0.1),
            add(f"{prefix}_v", rng.uniform(0.5, 2, c).astype(np.float32)),
        ]

    add("W0", (rng.standard_normal((c, 3, 3, 3)) * 0.3).astype(np.float32))
    add("W1", (rng.standard_normal((c, c, 3, 3)) * 0.1).astype(np.float32))
    add("B1", rng.standard_normal(c).astype(np.float32))
    add("W2", (rng.standard_normal((c, c // 2, 3, 3)) * 0.1).astype(np.float32))
    add("FC", rng.standard_normal((c, 5)).astype(np.float32))
    add("FCb", rng.standard_normal(5).astype(np.float32))
    add("shape", np.array([-1, c], np.int64))
    add("one", np.array(1.0, np.float32))
    nodes = [
        helper.make_node("Conv", ["x", "W0"], ["c0"], pads=[1] * 4),
        helper.make_node("BatchNormalization", ["c0", *bn("bn0")], ["n0"]),
        helper.make_node("Relu", ["n0"], ["r0"]),
        helper.make_node("Conv", ["r0", "W1", "B1"], ["c1"], pads=[1] * 4),
        helper.make_node("BatchNormalization", ["c1", *bn("bn1")], ["n1"]),
        helper.make_node("Relu", ["n1"], ["r1"]),
        helper.make_node("Conv", ["r1", "W2"], ["c2"], pads=[1] * 4, group=2),
        helper.make_node("BatchNormalization", ["c2", *bn("bn2")], ["n2"], epsilon=1e-3),
        helper.make_node("Add", ["n2", "r0"], ["res"]),
        helper.make_node("Relu", ["res"], ["r2"]),
        helper.make_node("Dropout", ["r2"], ["d"]),
        helper.make_node("Identity", ["d"], ["d2"]),
        helper.make_node("GlobalAveragePool", ["d2"], ["g"]),
        helper.make_node("Reshape", ["g", "shape"], ["f"]),
        helper.make_node("Mul", ["f", "one"], ["f1"]),
        helper.make_node("MatMul", ["f1", "FC"], ["m"]),
        helper.make_node("Add", ["m", "FCb"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "resnet_block",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, hw, hw])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 5])], inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model


def test_default_pipeline_on_resnet_block():
    model = resnet_block()
    out, reports = run_pipeline(model)
    ops = op_types(out)
    assert ops == {"Conv": 3, "Relu": 3, "Add": 1, "GlobalAveragePool": 1, "Reshape": 1, "Gemm": 1}
    assert len(out.graph.node) < len(model.graph.node)
    by_name = {r.name: r for r in reports}
    assert [r.name for r in reports] == list(PIPELINES["default"])
    assert by_name["bn_folding"].changes["bn_folded"] == 3
    assert by_name["dropout_removal"].changes["dropout_removed"] == 1
    assert by_name["matmul_add_fusion"].changes["matmul_add_to_gemm"] == 1
    assert by_name["noop_elimination"].changes["arith_noop"] == 1
    json.dumps([r.to_dict() for r in reports])
    # BN folding reorders float32 rounding (see test_passes_bn_folding.BN_ATOL).
    check_equivalent(model, out, atol=1e-4)


def test_interface_preserved_with_symbolic_batch():
    model = resnet_block("N")
    out, _ = run_pipeline(model)
    for a, b in ((model.graph.input, out.graph.input), (model.graph.output, out.graph.output)):
        assert [v.SerializeToString() for v in a] == [v.SerializeToString() for v in b]
    check_equivalent(model, out, atol=1e-4)


def test_none_pipeline_is_identity():
    model = resnet_block()
    out, reports = run_pipeline(model, "none")
    assert reports == [] and op_types(out) == op_types(model)


def test_unknown_pipeline_lists_names():
    with pytest.raises(BuildError, match="default"):
        run_pipeline(resnet_block(), "turbo")


def test_pass_report_to_dict():
    r = PassReport("bn_folding", True, {"bn_folded": 2})
    assert r.to_dict() == {"name": "bn_folding", "modified": True, "changes": {"bn_folded": 2}}


def test_pipeline_is_idempotent():
    once, _ = run_pipeline(resnet_block())
    twice, reports = run_pipeline(once)
    assert op_types(twice) == op_types(once)
    assert not any(r.modified for r in reports)
