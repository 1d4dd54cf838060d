"""--device cpu|cuda|auto: resolution and the backend chosen for a device."""

from __future__ import annotations

import pytest

from tensorforge.backends.registry import get_backend
from tensorforge.engine.build import BuildOptions, build
from tensorforge.engine.device import backend_for_device, resolve_device
from tensorforge.errors import BackendUnavailable, InputError


def _cuda_here() -> bool:
    for name in ("onnxruntime", "torch"):
        try:
            if "cuda" in get_backend(name).devices():
                return True
        except BackendUnavailable:
            pass
    return False


def test_resolve():
    assert resolve_device("cpu") == "cpu" and resolve_device("cuda") == "cuda"
    assert resolve_device("auto") == ("cuda" if _cuda_here() else "cpu")
    with pytest.raises(InputError, match="unknown device"):
        resolve_device("tpu")


def test_backend_for_device_cpu_is_the_default():
    assert backend_for_device("cpu") == "onnxruntime"
    assert backend_for_device("cpu", "reference") == "reference"


@pytest.mark.skipif(_cuda_here(), reason="a CUDA backend is present here")
def test_cuda_without_a_gpu_names_what_to_install(conv_bn_path):
    with pytest.raises(BackendUnavailable, match="no backend can use device 'cuda'"):
        backend_for_device("cuda")
    with pytest.raises(BackendUnavailable, match="cannot use device 'cuda'"):
        backend_for_device("cuda", "onnxruntime")
    with pytest.raises(BackendUnavailable):
        build(conv_bn_path, None, BuildOptions(device="cuda"))


def test_auto_build_records_the_resolved_device(conv_bn_path):
    engine, report = build(conv_bn_path, None, BuildOptions(device="auto"))
    assert engine.manifest.backend.settings.device == resolve_device("auto")
