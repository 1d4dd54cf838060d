"""The OpenVINO backend on the real library: FP32 pinned, hints and streams, a thread-safe request pool,
its capabilities, outputs that are owned (not views into a reused request). Skips without openvino."""

from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("openvino")

from tensorforge.backends.base import SessionConfig  # noqa: E402
from tensorforge.backends.openvino import OpenVinoBackend, compile_properties  # noqa: E402
from tensorforge.backends.registry import get_backend  # noqa: E402
from tensorforge.errors import BackendUnavailable  # noqa: E402


def test_fp32_is_pinned_by_default_and_options_map_to_properties():
    props = compile_properties(SessionConfig(threads=2))
    assert props["INFERENCE_PRECISION_HINT"] == "f32" and props["PERFORMANCE_HINT"] == "LATENCY"
    assert props["INFERENCE_NUM_THREADS"] == "2"
    props = compile_properties(SessionConfig(options={"performance_hint": "throughput", "num_streams": 2}))
    assert props["PERFORMANCE_HINT"] == "THROUGHPUT" and props["NUM_STREAMS"] == "2"
    assert "PERFORMANCE_HINT" not in compile_properties(SessionConfig(options={"performance_hint": "none"}))
    for bad in ({"performance_hint": "fast"}, {"num_streams": 0}, {"inference_precision": "int4"}):
        with pytest.raises(BackendUnavailable):
            compile_properties(SessionConfig(options=bad))


def test_cuda_is_refused_with_the_reason(conv_bn_model):
    with pytest.raises(BackendUnavailable, match="not 'cuda'"):
        OpenVinoBackend().create_session(conv_bn_model.SerializeToString(), SessionConfig(device="cuda"))


def test_consecutive_outputs_stay_distinct(conv_bn_model):
    session = get_backend("openvino").create_session(conv_bn_model.SerializeToString(), SessionConfig())
    a = session.run({"x": np.zeros((1, 3, 16, 16), np.float32)})[0]
    kept = a.copy()
    session.run({"x": np.ones((1, 3, 16, 16), np.float32)})
    np.testing.assert_array_equal(a, kept)     # the second call did not overwrite the first result


def test_concurrent_callers_each_get_their_own_rows(conv_bn_model):
    data = conv_bn_model.SerializeToString()
    session = get_backend("openvino").create_session(data, SessionConfig(options={"num_requests": 2}))
    ort = get_backend("onnxruntime").create_session(data, SessionConfig())
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((2, 3, 16, 16)).astype(np.float32) for _ in range(6)]
    wants = [ort.run({"x": x})[0] for x in inputs]
    errors: list[str] = []

    def worker(i: int) -> None:
        for _ in range(10):
            got = session.run({"x": inputs[i]})[0]
            if not np.allclose(got, wants[i], rtol=1e-4, atol=1e-4 * np.abs(wants[i]).max()):
                errors.append(f"thread {i} got another caller's rows")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_cpu_pinning_off_unless_asked():
    # regression: OpenVINO's default pinning slowed ONNX Runtime sessions in the same process by ~40 %
    from tensorforge.backends.openvino import compile_properties

    assert compile_properties(SessionConfig())["ENABLE_CPU_PINNING"] == "NO"
    assert compile_properties(SessionConfig(options={"enable_cpu_pinning": True}))["ENABLE_CPU_PINNING"] == "YES"


def test_static_batch_copy_runs_its_batch_and_the_dynamic_model_the_rest(conv_bn_model):
    data = conv_bn_model.SerializeToString()
    session = get_backend("openvino").create_session(data, SessionConfig(options={"static_batch": 2}))
    assert session.static_batch == 2 and session.note is None
    assert session._static.inputs[0].get_partial_shape().is_static          # noqa: SLF001
    assert session._compiled.inputs[0].get_partial_shape()[0].is_dynamic    # noqa: SLF001
    ort = get_backend("onnxruntime").create_session(data, SessionConfig())
    rng = np.random.default_rng(2)
    for batch in (2, 1, 3, 2):
        x = rng.standard_normal((batch, 3, 16, 16)).astype(np.float32)
        want = ort.run({"x": x})[0]
        np.testing.assert_allclose(session.run({"x": x})[0], want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_shared_inputs_leave_the_callers_arrays_and_results_alone(conv_bn_model):
    # inputs are read in place (share_inputs): a caller reusing its buffer must not change a result it holds
    data = conv_bn_model.SerializeToString()
    session = get_backend("openvino").create_session(data, SessionConfig(options={"static_batch": 1}))
    buf = np.ones((1, 3, 16, 16), np.float32)
    first = session.run({"x": buf})[0]
    kept, before = first.copy(), buf.copy()
    np.testing.assert_array_equal(buf, before)
    buf[:] = -3.0
    second = session.run({"x": buf})[0]
    np.testing.assert_array_equal(first, kept)
    assert not np.allclose(first, second)
    strided = np.ones((1, 3, 16, 32), np.float32)[..., ::2]            # not contiguous: copied, still right
    readonly = np.ones((1, 3, 16, 16), np.float32)
    readonly.flags.writeable = False
    for x in (strided, readonly):
        np.testing.assert_allclose(session.run({"x": x})[0], kept, rtol=1e-5, atol=1e-6)


def test_static_batch_falls_back_when_the_model_hard_codes_its_batch():
    from onnx import TensorProto, helper, numpy_helper

    shape = numpy_helper.from_array(np.array([2, 12], np.int64), "shape")
    graph = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 12])], [shape])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    session = get_backend("openvino").create_session(data, SessionConfig(options={"static_batch": 3}))
    assert session.static_batch is None and "static_batch=3 not applied" in session.note
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.testing.assert_array_equal(session.run({"x": x})[0], x.reshape(2, 12))


def test_static_batch_values_are_checked():
    for bad in (0, -1, True, "1", 1.5):
        with pytest.raises(BackendUnavailable, match="static_batch"):
            compile_properties(SessionConfig(options={"static_batch": bad}))


def test_capabilities_come_from_the_plugins_optimization_capabilities(monkeypatch):
    import openvino as ov

    monkeypatch.setattr(ov.Core, "get_property", lambda self, device, name: ["FP32", "INT8", "BF16", "EXPORT_IMPORT"])
    caps = OpenVinoBackend().capabilities("cpu")
    assert caps.precisions == {"fp32", "int8", "bf16"} and caps.qdq_int8
    assert caps.has_kernel("Conv", "bf16")          # no per-op registry: the plugin compiles the whole graph
