"""The backend protocol on every backend present here (ONNX Runtime and the reference evaluator)."""

from __future__ import annotations

import numpy as np
import pytest

from tensorforge.backends.base import BackendSession, Capabilities, SessionConfig
from tensorforge.backends.registry import backend_names, describe_backends, get_backend
from tensorforge.core.precisions import PRECISIONS
from tensorforge.errors import BackendUnavailable, ModelError


def _available(name: str):
    try:
        return get_backend(name)
    except BackendUnavailable as exc:
        pytest.skip(f"backend {name!r} not usable here: {exc}")


@pytest.mark.parametrize("name", backend_names())
def test_protocol(name, conv_bn_model):
    backend = _available(name)
    assert backend.availability() is None
    assert "cpu" in backend.devices()
    assert backend.versions()
    session = backend.create_session(conv_bn_model.SerializeToString(), SessionConfig())
    assert isinstance(session, BackendSession)
    assert list(session.input_names) == ["x"] and list(session.output_names) == ["y"]
    out = session.run({"x": np.ones((2, 3, 16, 16), np.float32)})
    assert isinstance(out, list) and out[0].shape == (2, 5)


@pytest.mark.parametrize("name", backend_names())
def test_capabilities_on_the_protocol(name):
    caps = _available(name).capabilities("cpu")
    assert isinstance(caps, Capabilities)
    assert "fp32" in caps.precisions and caps.precisions <= set(PRECISIONS)
    assert caps.qdq_int8 == ("int8" in caps.precisions)


def test_onnxruntime_capabilities_are_read_from_its_kernel_registry():
    caps = get_backend("onnxruntime").capabilities("cpu")
    assert caps.qdq_int8 and caps.precisions == {"fp32", "int8"}
    assert caps.has_kernel("Conv", "fp32") and caps.has_kernel("QLinearConv", "int8")
    assert not caps.has_kernel("Conv", "fp16") and not caps.has_kernel("Gemm", "bf16")    # why CPU FP16 is slow
    assert caps.has_kernel("Cast", "fp16")
    with pytest.raises(BackendUnavailable, match="unknown device"):
        get_backend("onnxruntime").capabilities("tpu")


@pytest.mark.parametrize("name", [n for n in backend_names() if n != "onnxruntime"])
def test_agrees_with_onnxruntime_at_two_batch_sizes_on_one_session(name, conv_bn_model):
    data = conv_bn_model.SerializeToString()
    session = _available(name).create_session(data, SessionConfig())
    ort = get_backend("onnxruntime").create_session(data, SessionConfig())
    rng = np.random.default_rng(3)
    for batch in (1, 3):
        x = {"x": rng.standard_normal((batch, 3, 16, 16)).astype(np.float32)}
        got, want = session.run(x)[0], ort.run(x)[0]
        assert got.shape == (batch, 5)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("name", backend_names())
def test_garbled_model_is_a_model_error(name):
    backend = _available(name)
    with pytest.raises(ModelError):
        backend.create_session(b"\x08\x07garbage", SessionConfig())


@pytest.mark.parametrize("name", ["onnxruntime", "openvino", "torch"])
def test_unknown_option_rejected_everywhere(name, conv_bn_model):
    with pytest.raises(BackendUnavailable, match="no option"):
        _available(name).create_session(conv_bn_model.SerializeToString(), SessionConfig(options={"turbo": 1}))


def test_ort_and_reference_agree(conv_bn_model):
    x = {"x": np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)}
    data = conv_bn_model.SerializeToString()
    a = get_backend("onnxruntime").create_session(data, SessionConfig()).run(x)[0]
    b = get_backend("reference").create_session(data, SessionConfig()).run(x)[0]
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_unknown_backend_and_device():
    with pytest.raises(BackendUnavailable, match="known backends: onnxruntime"):
        get_backend("tensorrt-nope")
    with pytest.raises(BackendUnavailable, match="device 'tpu'"):
        get_backend("onnxruntime").create_session(b"", SessionConfig(device="tpu"))


def test_unknown_option_rejected(conv_bn_model):
    with pytest.raises(BackendUnavailable, match="no option"):
        get_backend("onnxruntime").create_session(conv_bn_model.SerializeToString(),
                                                  SessionConfig(options={"turbo": True}))


def test_cuda_refused_cleanly_without_gpu(conv_bn_model):
    backend = get_backend("onnxruntime")
    if "cuda" in backend.devices():
        pytest.skip("this machine has CUDA; the refusal path is for CPU-only hosts")
    with pytest.raises(BackendUnavailable, match="CUDAExecutionProvider"):
        backend.create_session(conv_bn_model.SerializeToString(), SessionConfig(device="cuda"))


def test_describe_lists_all():
    rows = describe_backends()
    assert [r["name"] for r in rows] == backend_names()
    for row in rows:
        assert row["available"] or row["reason"]      # a missing backend says why
