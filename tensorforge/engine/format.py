"""The Engine file (``.tfe``): a zip of a JSON manifest and ONNX payloads — data, never code.

Layout::

    manifest.json   format name + version, payload checksums, model identity, IO specs,
                    precision, backend + settings, build host, library versions, build report
    model.onnx      the optimized model the runtime loads

Reading checks, in order: the file is a zip (else "not an engine file"), it holds a
``manifest.json`` whose ``format`` is ours (else "a zip, but not a TensorForge engine"),
its ``format_version`` is one this code reads, and every payload's size and sha256
match the manifest (else "corrupted"). Nothing is unpickled, imported or executed.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

from ..errors import EngineFileError

FORMAT_NAME = "tensorforge-engine"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
MANIFEST = "manifest.json"
MODEL_PAYLOAD = "model.onnx"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_engine(path: str | os.PathLike[str], manifest: dict[str, Any], payloads: dict[str, bytes]) -> Path:
    """Write atomically (temp file + rename), so a crash never leaves half an engine behind."""
    path = Path(path)
    manifest = dict(manifest)
    manifest["format"] = FORMAT_NAME
    manifest["format_version"] = FORMAT_VERSION
    manifest["payloads"] = {name: {"sha256": sha256(data), "bytes": len(data)} for name, data in payloads.items()}
    tmp = path.with_name(path.name + ".tmp")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.writestr(MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
            for name, data in payloads.items():
                zf.writestr(name, data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_engine(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Return (manifest, payloads) after every check above; EngineFileError names the problem."""
    path = Path(path)
    if not path.is_file():
        raise EngineFileError(f"{path}: no such engine file")
    if not zipfile.is_zipfile(path):
        size = path.stat().st_size
        raise EngineFileError(
            f"{path}: not a TensorForge engine file (not a zip archive; {size} bytes). "
            "If it was copied, it may be truncated; rebuild it with `tensorforge build`.")
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if MANIFEST not in names:
                raise EngineFileError(
                    f"{path}: a zip archive but not a TensorForge engine (no {MANIFEST}; it holds "
                    f"{names[:5]}{'...' if len(names) > 5 else ''})")
            try:
                manifest = json.loads(zf.read(MANIFEST))
            except (ValueError, UnicodeDecodeError) as exc:
                raise EngineFileError(f"{path}: {MANIFEST} is not valid JSON ({exc}); the file is corrupted") from exc
            _check_header(path, manifest)
            payloads = {}
            for name, meta in manifest["payloads"].items():
                if name not in names:
                    raise EngineFileError(f"{path}: payload {name!r} listed in the manifest is missing; corrupted file")
                data = zf.read(name)
                if len(data) != meta.get("bytes") or sha256(data) != meta.get("sha256"):
                    raise EngineFileError(
                        f"{path}: payload {name!r} fails its checksum (sha256 or size differs from the "
                        "manifest); the file is corrupted — rebuild it")
                payloads[name] = data
    except zipfile.BadZipFile as exc:
        raise EngineFileError(f"{path}: damaged zip archive ({exc}); the file is truncated or corrupted") from exc
    except (OSError, EOFError, zipfile.LargeZipFile) as exc:
        raise EngineFileError(f"{path}: cannot read the engine ({exc}); the file is truncated or corrupted") from exc
    if MODEL_PAYLOAD not in payloads:
        raise EngineFileError(f"{path}: the engine holds no {MODEL_PAYLOAD} payload")
    return manifest, payloads


def _check_header(path: Path, manifest: Any) -> None:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        fmt = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise EngineFileError(f"{path}: manifest format is {fmt!r}, expected {FORMAT_NAME!r}; not a TensorForge engine")
    version = manifest.get("format_version")
    if version not in SUPPORTED_VERSIONS:
        raise EngineFileError(
            f"{path}: engine format version {version!r} is not supported by this TensorForge "
            f"(reads {list(SUPPORTED_VERSIONS)}); rebuild the engine with this version or upgrade tensorforge")
    if not isinstance(manifest.get("payloads"), dict):
        raise EngineFileError(f"{path}: manifest has no payload table; the file is corrupted")
