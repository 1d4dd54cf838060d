"""Per-layer profiles on real backends (ONNX Runtime; OpenVINO when installed) and the pure bookkeeping.

Engines are tiny_cnn (conv+BN+ReLU, a residual block, global pool, Gemm) built FP32 and INT8
(random calibration: speed only) with one intra-op thread, so a busy test machine cannot
stall the kernels on a spinning thread pool; the rows are checked against the payload's own
node names, never against a hard-coded list of what a backend happens to fuse.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tensorforge.backends.profiling import (
    GraphIndex,
    RawLayerTime,
    RawProfile,
    fused_coverage,
    precision_name,
    resolve_prefixed,
)
from tensorforge.bench.profile import LayerTime, ProfileResult, check_batch, profile_engine, summarize
from tensorforge.engine.build import BuildOptions, build
from tensorforge.engine.manifest import Manifest, ModelInfo
from tensorforge.engine.runtime import Engine
from tensorforge.errors import BackendUnavailable, InputError

RUNS, WARMUP = 10, 3


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    out = tmp_path_factory.mktemp("profile")
    fp32, int8 = out / "fp32.tfe", out / "int8.tfe"
    build("tiny_cnn", fp32, BuildOptions(max_batch=4, threads=1))
    build("tiny_cnn", int8, BuildOptions(max_batch=4, threads=1, precision="int8", calibration="random"))
    return {"fp32": Engine.load(fp32), "int8": Engine.load(int8)}


def _payload_nodes(engine: Engine) -> set[str]:
    return {n.name for n in onnx.load_from_string(engine.model_bytes).graph.node}


def _check_rows_name_real_nodes(result: ProfileResult, engine: Engine) -> None:
    nodes = _payload_nodes(engine)
    assert result.layers, "no timed layer"
    for layer in (*result.layers, *result.idle):
        if layer.mapped:
            assert layer.onnx_nodes and set(layer.onnx_nodes) <= nodes, layer
            assert layer.name in nodes or layer.name.startswith("fused: "), layer
        else:
            assert layer.onnx_nodes == () and layer.name == layer.backend_name
    # every Conv of the payload is timed in some executed row: mapping lost none of them
    convs = {n.name for n in onnx.load_from_string(engine.model_bytes).graph.node if n.op_type == "Conv"}
    assert convs <= {n for layer in result.layers for n in layer.onnx_nodes}
    assert sum(layer.share_pct for layer in result.layers) == pytest.approx(100.0, abs=1e-6)
    assert list(result.layers) == sorted(result.layers, key=lambda layer: -layer.time_ms)
    assert sum(result.precision_summary.values()) == pytest.approx(100.0, abs=1e-6)


def test_onnxruntime_fp32_rows_are_payload_nodes_and_add_up_to_the_run(engines):
    engine = engines["fp32"]
    result = profile_engine(engine, batch=4, runs=RUNS, warmup=WARMUP)
    assert result.backend == "onnxruntime" and result.statistic == "median" and result.runs == RUNS
    _check_rows_name_real_nodes(result, engine)
    # ORT fuses Conv+Relu into one kernel: that row must say so, naming both payload nodes
    fused = [layer for layer in result.layers if layer.name.startswith("fused: ")]
    assert fused and all(len([n for n in f.onnx_nodes if n in f.name]) >= 2 for f in fused)
    # Coverage = the median run's summed kernel time / the median run's wall time. Per run the
    # kernels run back to back inside session.run, so the sum cannot pass the wall time (110 %
    # leaves room for the medians coming from different runs); at batch 4 the convolutions
    # dominate tiny_cnn's run and Python/ORT call overhead is a few tens of µs, well under half.
    assert 50.0 <= result.coverage_pct <= 110.0, (result.coverage_pct, result.run_ms, result.layers_total_ms)
    assert result.coverage_pct == pytest.approx(100.0 * result.layers_total_ms / result.run_ms)
    assert "int8" not in result.precision_summary
    assert all(layer.precision != "int8" for layer in result.layers)


def test_onnxruntime_int8_engine_runs_int8_kernels(engines):
    engine = engines["int8"]
    result = profile_engine(engine, batch=2, runs=RUNS, warmup=WARMUP, backend="onnxruntime")
    _check_rows_name_real_nodes(result, engine)
    assert result.engine_precision == "int8"
    convs = [layer for layer in result.layers if "Conv" in layer.op_type.split("+")]
    assert convs and all(layer.precision == "int8" for layer in convs)
    assert all("QLinear" in layer.kernel or "Integer" in layer.kernel for layer in convs)
    # the Q/DQ pairs folded into a QLinearConv are listed with it, but the row is named by the Conv
    assert any(any(n.endswith("QuantizeLinear") for n in layer.onnx_nodes) for layer in convs)
    assert result.precision_summary["int8"] > 50.0


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_openvino_reports_the_precision_each_layer_ran_in(engines, precision):
    pytest.importorskip("openvino", reason="openvino is not installed (pip install 'tensorforge[openvino]')")
    engine = engines[precision]
    result = profile_engine(engine, batch=2, runs=RUNS, warmup=WARMUP, backend="openvino")
    assert result.backend == "openvino" and result.statistic == "mean"
    _check_rows_name_real_nodes(result, engine)
    convs = [layer for layer in result.layers if "Conv" in layer.op_type.split("+")]
    assert convs
    if precision == "int8":
        assert all(layer.precision == "int8" for layer in convs), [(c.name, c.kernel) for c in convs]
        assert result.precision_summary["int8"] > 50.0
    else:
        assert "int8" not in result.precision_summary
    # OpenVINO's counters are running means: the layer total is their sum, paired with the mean wall time
    assert 0.0 < result.coverage_pct <= 110.0
    assert any("running mean" in note for note in result.notes)


def test_bad_batch_runs_and_backend_are_typed_errors(engines, tmp_path):
    engine = engines["fp32"]
    with pytest.raises(InputError, match=r"batch 5 exceeds .*max batch 4.*batch <= 4"):
        profile_engine(engine, batch=5)
    with pytest.raises(InputError, match="batch must be a positive integer, got 0"):
        profile_engine(engine, batch=0)
    with pytest.raises(InputError, match="runs must be an integer >= 1"):
        profile_engine(engine, runs=0)
    with pytest.raises(InputError, match="--batch 9 exceeds"):
        check_batch(engine, 9, name="--batch")
    fixed = tmp_path / "fixed.tfe"
    build("tiny_mlp", fixed, BuildOptions(batch=2))
    with pytest.raises(InputError, match="fixed batch of 2"):
        profile_engine(fixed, batch=1)
    with pytest.raises(BackendUnavailable, match="unknown backend 'nosuch'"):
        profile_engine(engine, backend="nosuch")
    with pytest.raises(BackendUnavailable, match="profiling supports onnxruntime and openvino"):
        profile_engine(engine, backend="reference")


def test_torch_backend_has_no_profiler(engines):
    pytest.importorskip("torch", reason="torch is not installed")
    with pytest.raises(BackendUnavailable, match="profiling supports onnxruntime and openvino"):
        profile_engine(engines["fp32"], backend="torch")


def test_result_serializes_to_json(engines):
    result = profile_engine(engines["fp32"], batch=1, runs=3, warmup=1)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["schema"] == "tensorforge.profile/1"
    for key in ("engine", "backend", "batch", "runs", "run_ms", "layers_total_ms", "coverage_pct", "layers",
                "idle", "precision_summary", "notes"):
        assert key in data
    assert set(data["layers"][0]) >= {"name", "onnx_nodes", "op_type", "kernel", "precision", "time_ms",
                                      "share_pct", "mapped"}


# -- the bookkeeping alone: hand-made graphs and raw rows, no backend ------------------------------------
def _graph() -> onnx.ModelProto:
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Add", ["r", "x"], ["a"], name="add"),
             helper.make_node("Flatten", ["a"], ["y"], name="flat")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor("w", TensorProto.FLOAT, [1, 1, 1, 1], [1.0])])
    return helper.make_model(graph)


def test_fused_coverage_walks_back_through_tensors_the_optimized_graph_lost():
    payload = GraphIndex(_graph())
    optimized = helper.make_model(helper.make_graph(
        [helper.make_node("FusedConv", ["x", "w"], ["r"], name="conv", domain="com.microsoft"),
         helper.make_node("Add", ["r", "x"], ["a"], name="add"),
         helper.make_node("Flatten", ["a"], ["y"], name="flat_renamed")],
        "o", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor("w", TensorProto.FLOAT, [1, 1, 1, 1], [1.0])]))
    coverage = fused_coverage(optimized, payload)
    assert coverage == {"conv": ("conv", "relu"), "add": ("add",), "flat_renamed": ("flat",)}


def test_resolve_prefixed_and_precision_names():
    payload = GraphIndex(_graph())
    assert resolve_prefixed("conv/WithoutBiases", payload) == "conv"
    assert resolve_prefixed("r", payload) == "relu"            # an output tensor name → its producer
    assert resolve_prefixed("Multiply_5345", payload) is None
    assert resolve_prefixed("x_abcd_acdb_conv/WithoutBiases", payload) is None
    assert [precision_name(t) for t in ("I8", "u8", "uint8", "f32", "float", "bf16", "FP16", "undef")] == [
        "int8", "int8", "int8", "fp32", "fp32", "bf16", "fp16", "unknown"]


def test_summarize_names_fused_rows_keeps_unmapped_and_separates_idle():
    raw = RawProfile("onnxruntime", (
        RawLayerTime("conv_nchwc", "Conv", "Conv [nchwc]", "fp32", (3.0, 3.0, 9.0), ("conv", "relu", "add")),
        RawLayerTime("ReorderOutput", "ReorderOutput", "ReorderOutput", "fp32", (1.0, 1.0, 1.0), ()),
        RawLayerTime("flat", "Flatten", "Flatten", "fp32", (0.0, 0.0, 0.0), ("flat",)),
    ), run_ms=(5.0, 5.0, 11.0))
    engine = Engine(Manifest(model=ModelInfo(name="g")), _graph().SerializeToString())
    result = summarize(raw, engine, batch=1, runs=3, warmup=0)
    first, second = result.layers
    assert first == LayerTime("fused: conv, relu, add", ("conv", "relu", "add"), "Conv+Relu+Add", "Conv [nchwc]",
                              "fp32", 3.0, 75.0, True, "conv_nchwc")
    assert (second.name, second.mapped, second.share_pct) == ("ReorderOutput", False, 25.0)
    assert [layer.name for layer in result.idle] == ["flat"]
    assert result.run_ms == 5.0
    assert result.layers_total_ms == pytest.approx(4.0) and result.coverage_pct == pytest.approx(80.0)
    assert result.precision_summary == {"fp32": 100.0}
    assert any("mapped=False" in note for note in result.notes)
    assert np.isclose(sum(layer.share_pct for layer in result.layers), 100.0)


def test_coverage_pairs_layer_time_with_wall_time_run_by_run():
    # a busy machine: run 2 is slowed inside a kernel, runs 4 and 5 outside any kernel
    raw = RawProfile("onnxruntime", (
        RawLayerTime("conv", "Conv", "Conv", "fp32", (0.8, 0.8, 8.8, 0.8, 0.8), ("conv",)),
        RawLayerTime("add", "Add", "Add", "fp32", (0.1, 0.1, 0.1, 0.1, 0.1), ("add",)),
    ), run_ms=(1.0, 1.0, 9.0, 5.0, 6.0))
    engine = Engine(Manifest(model=ModelInfo(name="g")), _graph().SerializeToString())
    result = summarize(raw, engine, batch=1, runs=5, warmup=0)
    # per-run shares 0.9, 0.9, 0.99, 0.18, 0.15 → median 0.9; the median run is 5 ms
    assert result.coverage_pct == pytest.approx(90.0) and result.run_ms == 5.0
    assert result.layers_total_ms == pytest.approx(4.5)
    assert [layer.time_ms for layer in result.layers] == [0.8, 0.1]
    assert any("medians add up to 0.900 ms" in note for note in result.notes)
