"""Engine file round trip, and every way a file can be wrong: each gets EngineFileError naming the problem."""

from __future__ import annotations

import dataclasses
import json
import zipfile

import numpy as np
import pytest

from tensorforge.core.specs import TensorSpec
from tensorforge.engine.format import FORMAT_VERSION, MANIFEST, read_engine
from tensorforge.engine.runtime import Engine
from tensorforge.errors import EngineFileError


def test_round_trip_manifest_fields(engine_path):
    manifest, payloads = read_engine(engine_path)
    assert manifest.format == "tensorforge-engine"
    assert manifest.format_version == FORMAT_VERSION
    assert set(payloads) == set(manifest.payloads) == {"model.onnx"}
    assert manifest.inputs == (TensorSpec("x", "float32", ("N", 3, 16, 16)),)
    assert manifest.outputs == (TensorSpec("y", "float32", ("N", 5)),)
    assert manifest.model.sha256_original is not None and len(manifest.model.sha256_original) == 64
    assert manifest.payloads["model.onnx"].bytes == len(payloads["model.onnx"])
    host = manifest.build.host
    for key in ("cpu_model", "isa_flags", "logical_cores", "gpus"):
        assert key in host
    assert "onnxruntime" in manifest.build.libraries
    assert manifest.precision == "fp32"
    assert manifest.backend.name == "onnxruntime"


def test_manifest_is_immutable_and_serializes_back_to_the_bytes_written(engine_path):
    with zipfile.ZipFile(engine_path) as zf:
        body = zf.read(MANIFEST)
    manifest, _ = read_engine(engine_path)
    # parsed once, serialized at the edge: the same bytes the writer hashed, nothing lost or added
    assert json.dumps(manifest.to_dict(), indent=2, sort_keys=True).encode() == body
    with pytest.raises(dataclasses.FrozenInstanceError):
        manifest.precision = "int8"                  # type: ignore[misc]
    with pytest.raises(TypeError):
        manifest.build.host["cpu_model"] = "elsewhere"         # type: ignore[index]
    with pytest.raises(AttributeError):
        Engine.load(engine_path).manifest = manifest           # type: ignore[misc]



def test_engine_runs_after_reload(engine_path):
    engine = Engine.load(engine_path)
    out = engine.session().run(np.ones((2, 3, 16, 16), np.float32))
    assert out["y"].shape == (2, 5)


def test_truncated_file(engine_path, tmp_path):
    data = engine_path.read_bytes()
    bad = tmp_path / "trunc.tfe"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(EngineFileError, match="truncated|not a zip"):
        Engine.load(bad)


def test_corrupted_payload_fails_checksum(engine_path, tmp_path):
    typed, payloads = read_engine(engine_path)
    manifest = typed.to_dict()
    model = bytearray(payloads["model.onnx"])
    model[len(model) // 2] ^= 0xFF
    bad = tmp_path / "corrupt.tfe"
    with zipfile.ZipFile(bad, "w") as zf:      # a well-formed zip whose payload no longer matches its sha256
        zf.writestr(MANIFEST, json.dumps(manifest))
        zf.writestr("model.onnx", bytes(model))
    with pytest.raises(EngineFileError, match="checksum"):
        Engine.load(bad)


def test_flipped_byte_in_zip_detected(engine_path, tmp_path):
    data = bytearray(engine_path.read_bytes())
    data[len(data) // 2] ^= 0xFF        # damage inside the stored payload; zip CRC or sha256 must catch it
    bad = tmp_path / "flip.tfe"
    bad.write_bytes(bytes(data))
    with pytest.raises(EngineFileError, match="corrupt|truncated|checksum|damaged"):
        Engine.load(bad)


def test_foreign_zip(tmp_path):
    bad = tmp_path / "foreign.tfe"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("hello.txt", "not an engine")
    with pytest.raises(EngineFileError, match="not a TensorForge engine"):
        Engine.load(bad)


def test_foreign_manifest_format(tmp_path):
    bad = tmp_path / "other.tfe"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr(MANIFEST, json.dumps({"format": "something-else", "format_version": 1, "payloads": {}}))
    with pytest.raises(EngineFileError, match="something-else"):
        Engine.load(bad)


def test_future_format_version(engine_path, tmp_path):
    typed, payloads = read_engine(engine_path)
    manifest = typed.to_dict()
    manifest["format_version"] = FORMAT_VERSION + 1
    bad = tmp_path / "future.tfe"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr(MANIFEST, json.dumps(manifest))
        zf.writestr("model.onnx", payloads["model.onnx"])
    with pytest.raises(EngineFileError, match="version"):
        Engine.load(bad)


def test_not_a_file_at_all(tmp_path):
    bad = tmp_path / "text.tfe"
    bad.write_text("hello")
    with pytest.raises(EngineFileError, match="not a TensorForge engine file"):
        Engine.load(bad)
    with pytest.raises(EngineFileError, match="no such engine file"):
        Engine.load(tmp_path / "missing.tfe")


def test_no_pickle_in_engine(engine_path):
    with zipfile.ZipFile(engine_path) as zf:
        assert sorted(zf.namelist()) == ["manifest.json", "model.onnx"]
