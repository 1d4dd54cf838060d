"""Issue #13 item 4: sizes are checked before inflating (a small file must not make the loader allocate
a lot), and the optional HMAC signature lets a deployment refuse engines it did not sign."""

from __future__ import annotations

import hashlib
import json
import struct
import tracemalloc
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import pytest

from tensorforge.engine.format import MANIFEST, read_engine, write_engine
from tensorforge.engine.runtime import Engine
from tensorforge.errors import EngineFileError

MiB = 1 << 20


def _peak_bytes(load: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        with pytest.raises(EngineFileError) as info:
            load()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    _peak_bytes.message = str(info.value)      # type: ignore[attr-defined]
    return peak


def _bomb(path: Path, manifest: dict[str, Any], size: int) -> Path:
    """A zip whose model.onnx is ``size`` zero bytes, deflated to a few kB, with an honest header."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(MANIFEST, json.dumps(manifest))
        with zf.open("model.onnx", "w") as f:
            chunk = bytes(MiB)
            for _ in range(size // MiB):
                f.write(chunk)
    assert path.stat().st_size < MiB
    return path


def test_member_larger_than_the_manifest_says_is_not_inflated(engine_path, tmp_path):
    """A <1 MB file whose model.onnx inflates to 64 MiB while the manifest says a few kB."""
    manifest = read_engine(engine_path)[0].to_dict()      # raw JSON, to forge a file from
    bomb = _bomb(tmp_path / "bomb.tfe", manifest, 64 * MiB)
    peak = _peak_bytes(lambda: Engine.load(bomb))
    assert peak < 4 * MiB, f"loader held {peak} bytes"
    assert "declares 67108864 bytes in the zip but" in _peak_bytes.message  # type: ignore[attr-defined]


def test_consistent_bomb_is_refused_by_its_compression_ratio(engine_path, tmp_path):
    """Manifest and zip header agree on 64 MiB (and the sha256 is right): the ratio gives it away."""
    manifest = read_engine(engine_path)[0].to_dict()      # raw JSON, to forge a file from
    size = 64 * MiB
    digest = hashlib.sha256()
    for _ in range(size // MiB):
        digest.update(bytes(MiB))
    manifest["payloads"]["model.onnx"] = {"sha256": digest.hexdigest(), "bytes": size}
    bomb = _bomb(tmp_path / "bomb.tfe", manifest, size)
    peak = _peak_bytes(lambda: Engine.load(bomb))
    assert peak < 4 * MiB, f"loader held {peak} bytes"
    assert "zip bomb" in _peak_bytes.message  # type: ignore[attr-defined]


def test_declared_size_over_the_limit_is_refused_before_reading(engine_path, tmp_path):
    typed, payloads = read_engine(engine_path)
    manifest = typed.to_dict()      # raw JSON, to forge a file from
    big = bytes(3 * MiB)
    manifest["payloads"]["model.onnx"] = {"sha256": hashlib.sha256(big).hexdigest(), "bytes": len(big)}
    path = tmp_path / "big.tfe"
    with zipfile.ZipFile(path, "w") as zf:       # stored: no ratio to give it away, only the limit
        zf.writestr(MANIFEST, json.dumps(manifest))
        zf.writestr("model.onnx", big)
    del big
    peak = _peak_bytes(lambda: read_engine(path, max_bytes=MiB))
    assert peak < MiB
    assert "over the 1048576-byte limit" in _peak_bytes.message  # type: ignore[attr-defined]


# (offset in the local header, offset in the central directory entry, struct format) of a zip field
SIZE, COMPRESSED_SIZE, FLAGS = (22, 24, "<I"), (18, 20, "<I"), (6, 8, "<H")


def _patch(path: Path, name: bytes, field: tuple[int, int, str], value: int) -> None:
    """Rewrite one field of member ``name`` in its local header and its central directory entry."""
    data = bytearray(path.read_bytes())
    for sig, at, name_len_at, name_at in ((b"PK\x03\x04", field[0], 26, 30), (b"PK\x01\x02", field[1], 28, 46)):
        pos = 0
        while (pos := data.find(sig, pos)) != -1:
            (name_len,) = struct.unpack_from("<H", data, pos + name_len_at)
            if data[pos + name_at: pos + name_at + name_len] == name:
                struct.pack_into(field[2], data, pos + at, value)
            pos += 4
    path.write_bytes(bytes(data))


def test_header_that_understates_the_size_cannot_make_it_allocate_more(engine_path, tmp_path):
    """The member declares the manifest's small size but inflates to 16 MiB: reading stops at the declared size."""
    typed, payloads = read_engine(engine_path)
    manifest = typed.to_dict()      # raw JSON, to forge a file from
    small = len(payloads["model.onnx"])
    path = tmp_path / "liar.tfe"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(MANIFEST, json.dumps(manifest))
        zf.writestr("model.onnx", bytes(16 * MiB))
    _patch(path, b"model.onnx", SIZE, small)
    with zipfile.ZipFile(path) as zf:
        assert zf.getinfo("model.onnx").file_size == small
    peak = _peak_bytes(lambda: Engine.load(path))
    assert peak < 4 * MiB, f"loader held {peak} bytes"


def test_compressed_size_past_the_end_of_the_file_is_not_allocated(engine_path, tmp_path):
    """A stored member whose header says 1 GiB sit on disk: the reader must not ask the OS for 1 GiB."""
    path = tmp_path / "short.tfe"
    path.write_bytes(engine_path.read_bytes())
    _patch(path, b"model.onnx", COMPRESSED_SIZE, 1 << 30)
    tracemalloc.start()
    try:
        try:
            Engine.load(path)
            raised = False
        except EngineFileError as exc:
            raised = "more than the whole file holds" in str(exc)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MiB, f"loader held {peak} bytes"
    assert raised


def test_encrypted_member_is_an_engine_file_error(engine_path, tmp_path):
    """Found by the byte fuzz: a flipped 'encrypted' flag made zipfile raise a bare RuntimeError."""
    path = tmp_path / "encrypted.tfe"
    path.write_bytes(engine_path.read_bytes())
    _patch(path, MANIFEST.encode(), FLAGS, 0x1)
    with pytest.raises(EngineFileError, match="encrypted"):
        Engine.load(path)


# -- signatures ---------------------------------------------------------------------------------------

KEY = b"deployment-secret"


def _signed(engine_path: Path, tmp_path: Path, key: bytes | None) -> Path:
    manifest, payloads = read_engine(engine_path)
    return write_engine(tmp_path / "signed.tfe", manifest, payloads, key=key)


def test_signed_engine_loads_with_its_key_and_without_one(engine_path, tmp_path):
    path = _signed(engine_path, tmp_path, KEY)
    assert Engine.load(path, key=KEY).outputs[0].name == "y"
    assert Engine.load(path).outputs[0].name == "y"


def test_wrong_key_and_unsigned_engines_are_refused(engine_path, tmp_path):
    path = _signed(engine_path, tmp_path, KEY)
    with pytest.raises(EngineFileError, match="signature does not match"):
        Engine.load(path, key=b"another key")
    with pytest.raises(EngineFileError, match="not signed"):
        Engine.load(engine_path, key=KEY)


def test_resigning_the_checksum_without_the_key_is_refused(engine_path, tmp_path):
    """An attacker can recompute the manifest sha256, but not the HMAC."""
    path = _signed(engine_path, tmp_path, KEY)
    manifest, payloads = read_engine(path)
    evil = replace(manifest, model=replace(manifest.model, name="evil"))
    forged = write_engine(tmp_path / "forged.tfe", evil, payloads, key=b"attacker")
    Engine.load(forged)                                # a valid engine as such…
    with pytest.raises(EngineFileError, match="signature does not match"):
        Engine.load(forged, key=KEY)                   # …but not one this deployment signed
