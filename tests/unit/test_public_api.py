"""The public surface is deliberate: a change to these names must change this test too."""

import subprocess
import sys

import tensorforge

EXPECTED = ["BackendUnavailable", "BenchOptions", "BenchResult", "BuildError", "BuildOptions", "BuildReport",
            "Engine", "EngineFileError", "InputError", "ModelError", "ResourceError", "Session", "TensorForgeError",
            "VerificationError", "__version__", "bench", "build", "load", "zoo"]


def test_public_names():
    assert sorted(tensorforge.__all__) == sorted(EXPECTED)
    for name in EXPECTED:
        assert getattr(tensorforge, name) is not None


def test_import_is_light():
    """`import tensorforge` must not import onnxruntime, onnx or rich (no work at import time)."""
    code = ("import sys, tensorforge; heavy = [m for m in ('onnxruntime', 'onnx', 'rich', 'torch') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_errors_share_one_root():
    for name in ("ModelError", "InputError", "EngineFileError", "BackendUnavailable", "BuildError",
                 "VerificationError", "ResourceError"):
        assert issubclass(getattr(tensorforge, name), tensorforge.TensorForgeError)
