"""The Engine file (``.tfe``): a zip of a JSON manifest and ONNX payloads — data, never code.

Layout::

    manifest.json   format name + version, payload checksums, model identity, IO specs,
                    precision, backend + settings, build host, library versions, build report
    model.onnx      the optimized model the runtime loads
    tokenizer.json  optional: the ``tokenizers`` tokenizer the server uses to take raw text
                    (recorded under ``tokenizer`` in the manifest; at most MAX_TOKENIZER_BYTES)

Reading checks, in order: the file is a zip (else "not an engine file"), it holds a
``manifest.json`` whose ``format`` is ours (else "a zip, but not a TensorForge engine"),
its ``format_version`` is one this code reads, and every payload's size and sha256
match the manifest (else "corrupted"). Nothing is unpickled, imported or executed.

The manifest itself is covered by a sha256 of its bytes, kept in the zip comment
(``tensorforge-engine`` then ``manifest-sha256=<hex>``); files from builds that wrote no
comment are read with the other checks. With a signing key the comment also holds
``hmac-sha256=<hex>`` of the manifest bytes — and the manifest holds every payload's
sha256, so the signature covers the whole engine; a reader given a key refuses engines
without a valid signature. The manifest is then checked against its schema and against
the model's graph (:mod:`.manifest`).

Sizes are checked before anything is inflated: each member's declared size must match the
manifest, stay under ``max_bytes`` and not exceed ``MAX_RATIO`` times its compressed size;
members are then read in chunks with a running count, so a header that lies about its size
cannot make the reader hold more than it declared.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

from ..core.hashing import sha256
from ..errors import EngineFileError
from .manifest import Manifest, parse_manifest

FORMAT_NAME = "tensorforge-engine"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
MANIFEST = "manifest.json"
MODEL_PAYLOAD = "model.onnx"
TOKENIZER_PAYLOAD = "tokenizer.json"
COMMENT_TAG = "tensorforge-engine"
MAX_MANIFEST_BYTES = 16 << 20       # a manifest is JSON text: a few kB, a build report at most a few MB
MAX_PAYLOAD_BYTES = 2 << 30         # protobuf cannot parse an ONNX model larger than 2 GiB
MAX_TOKENIZER_BYTES = 64 << 20      # a tokenizer.json: ~0.5 MB for BERT's vocab, a few MB for large vocabularies
MAX_RATIO = 100                     # engines are written stored; deflated weights shrink ~1.1x, bombs ~1000x
_CHUNK = 1 << 20


def write_engine(path: str | os.PathLike[str], manifest: Manifest, payloads: dict[str, bytes], *,
                 key: bytes | None = None) -> Path:
    """Write atomically, so a crash or a full disk never leaves half an engine behind.

    The bytes go to a uniquely named temp file in the target's directory (same filesystem, so the
    rename is atomic; unique, so two concurrent builds of one path cannot trample each other's
    temp), are fsync'ed, then ``os.replace`` puts the file in place and the directory is fsync'ed
    so the rename itself survives a power cut. On any error the temp file is removed and the
    target is untouched (a previous engine there keeps serving); OSError (ENOSPC, EFBIG, EACCES)
    becomes an :class:`EngineFileError` naming the path.

    ``key`` signs the engine (HMAC-SHA256 of the manifest, which lists every payload's sha256).
    """
    path = Path(path)
    record = manifest.to_dict()          # the typed manifest becomes JSON here, at the file's edge
    record["format"] = FORMAT_NAME
    record["format_version"] = FORMAT_VERSION
    record["payloads"] = {name: {"sha256": sha256(data), "bytes": len(data)} for name, data in payloads.items()}
    body = json.dumps(record, indent=2, sort_keys=True).encode()
    tmp: Path | None = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        tmp = Path(tmp_name)
        with os.fdopen(fd, "wb") as fh:
            with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as zf:
                zf.comment = _comment(body, key)
                zf.writestr(MANIFEST, body)
                for name, data in payloads.items():
                    zf.writestr(name, data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644 & ~_umask())          # mkstemp makes 0600; an engine is as readable as any file
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(path.parent)
    except OSError as exc:
        raise EngineFileError(f"{path}: cannot write the engine file ({exc.strerror or exc}); nothing was written "
                              "and any previous file there is unchanged — free disk space or pick another "
                              "output path") from exc
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    return path


def _umask() -> int:
    """The process umask (read by setting it, then restoring it at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    """fsync a directory so a rename in it is durable; not every platform can open a directory."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_engine(path: str | os.PathLike[str], *, key: bytes | None = None,
                max_bytes: int = MAX_PAYLOAD_BYTES) -> tuple[Manifest, dict[str, bytes]]:
    """Return (manifest, payloads) after every check above; EngineFileError names the problem.

    The manifest is parsed once, here, into the typed :class:`~.manifest.Manifest`.

    ``key``: refuse the engine unless it carries a valid HMAC-SHA256 signature made with it.
    ``max_bytes``: the largest payload accepted, checked before inflating.
    """
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
            body = _read_member(path, zf, MANIFEST, None, min(max_bytes, MAX_MANIFEST_BYTES))
            _check_comment(path, zf.comment, body, key)
            try:
                manifest = json.loads(body)
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:
                raise EngineFileError(f"{path}: {MANIFEST} is not valid JSON ({exc}); the file is corrupted") from exc
            _check_header(path, manifest)
            payloads: dict[str, bytes] = {}
            total = 0
            for name, meta in manifest["payloads"].items():
                if name not in names:
                    raise EngineFileError(f"{path}: payload {name!r} listed in the manifest is missing; corrupted file")
                if not isinstance(meta, dict) or not _is_size(meta.get("bytes")) or not isinstance(
                        meta.get("sha256"), str):
                    raise EngineFileError(
                        f"{path}: the manifest's entry for payload {name!r} is {repr(meta)[:80]}; expected "
                        "{'sha256': hex, 'bytes': int}; the file is corrupted — rebuild it")
                limit = max_bytes - total                                                 # the limit is for all
                if name == TOKENIZER_PAYLOAD:
                    limit = min(limit, MAX_TOKENIZER_BYTES)
                data = _read_member(path, zf, name, meta["bytes"], limit)
                total += len(data)
                if sha256(data) != meta["sha256"]:
                    raise EngineFileError(
                        f"{path}: payload {name!r} fails its checksum (sha256 or size differs from the "
                        "manifest); the file is corrupted — rebuild it")
                payloads[name] = data
    except zipfile.BadZipFile as exc:
        raise EngineFileError(f"{path}: damaged zip archive ({exc}); the file is truncated or corrupted") from exc
    except (OSError, EOFError, zipfile.LargeZipFile, NotImplementedError, ValueError, OverflowError, struct.error,
            zlib.error) as exc:
        # what zipfile raises on damaged headers besides BadZipFile: NotImplementedError for an unknown
        # compression method, zlib.error for a damaged deflate stream, struct.error/OverflowError for bad fields
        raise EngineFileError(f"{path}: cannot read the engine ({exc}); the file is truncated or corrupted") from exc
    if MODEL_PAYLOAD not in payloads:
        raise EngineFileError(f"{path}: the engine holds no {MODEL_PAYLOAD} payload")
    return parse_manifest(str(path), manifest, payloads[MODEL_PAYLOAD]), payloads


def _is_size(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _read_member(path: Path, zf: zipfile.ZipFile, name: str, expected: int | None, limit: int) -> bytes:
    """Read one member, refusing before inflating when its declared size is wrong or too large, and
    stopping as soon as the running count passes what it declared."""
    info = zf.getinfo(name)
    declared = info.file_size
    if expected is not None and declared != expected:
        raise EngineFileError(
            f"{path}: payload {name!r} declares {declared} bytes in the zip but {expected} in the manifest; the "
            "file is corrupted — rebuild it")
    if declared > limit:
        raise EngineFileError(
            f"{path}: {name!r} would inflate to {declared} bytes, over the {limit}-byte limit; refusing to read it "
            "(raise max_bytes= if this engine is genuinely that large)")
    if info.flag_bits & 0x1:
        raise EngineFileError(f"{path}: {name!r} is encrypted in the zip; engines are never encrypted — the file is "
                              "corrupted or not an engine, rebuild it")
    if info.compress_type != zipfile.ZIP_STORED and declared > _CHUNK and declared > MAX_RATIO * info.compress_size:
        raise EngineFileError(
            f"{path}: {name!r} inflates {info.compress_size} bytes to {declared} (over {MAX_RATIO}x): a zip bomb or a "
            "corrupted file; refusing to inflate it — engines are written uncompressed, rebuild it")
    if info.compress_size > path.stat().st_size:
        raise EngineFileError(f"{path}: {name!r} declares {info.compress_size} stored bytes, more than the whole "
                              "file holds; the file is truncated or corrupted — rebuild it")
    with zf.open(info) as f:
        if info.compress_type == zipfile.ZIP_STORED:
            # nothing to inflate, and the size is bounded by the file on disk: one read holds the payload
            # once, where chunks and a join would hold it twice
            chunks = [f.read(declared)]
            count = len(chunks[0])
        else:
            chunks, count = [], 0
            while chunk := f.read(min(_CHUNK, declared - count + 1)):
                count += len(chunk)
                if count > declared:
                    raise EngineFileError(f"{path}: {name!r} inflates past its declared {declared} bytes; "
                                          "the file is corrupted — rebuild it")
                chunks.append(chunk)
        if f.read(1):
            raise EngineFileError(f"{path}: {name!r} holds more than its declared {declared} bytes; the file is "
                                  "corrupted — rebuild it")
    if count != declared:
        raise EngineFileError(f"{path}: {name!r} holds {count} bytes but declares {declared}; the file is truncated "
                              "or corrupted — rebuild it")
    return b"".join(chunks)


def _comment(body: bytes, key: bytes | None) -> bytes:
    lines = [COMMENT_TAG, f"manifest-sha256={sha256(body)}"]
    if key is not None:
        lines.append(f"hmac-sha256={_hmac(key, body)}")
    return ("\n".join(lines) + "\n").encode("ascii")


def _hmac(key: bytes, body: bytes) -> str:
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def _check_comment(path: Path, comment: bytes, body: bytes, key: bytes | None) -> None:
    """Verify the manifest checksum (and signature) the writer put in the zip comment."""
    fields: dict[str, str] = {}
    text = comment.decode("ascii", errors="replace")
    if text.startswith(COMMENT_TAG):
        for line in text.splitlines()[1:]:
            name, sep, value = line.partition("=")
            if not sep:
                raise EngineFileError(f"{path}: the engine's checksum record holds {line!r}; the file is corrupted "
                                      "— rebuild it")
            fields[name] = value
        if fields.get("manifest-sha256") != sha256(body):
            raise EngineFileError(
                f"{path}: {MANIFEST} fails its checksum (its sha256 differs from the one written with it); the "
                "manifest was altered or corrupted — rebuild the engine")
    # else: written by a build from before manifest checksums; the schema and graph checks still apply
    if key is not None:
        signature = fields.get("hmac-sha256")
        if signature is None:
            raise EngineFileError(f"{path}: the engine is not signed, and a signing key was given; sign it with "
                                  "write_engine(..., key=) or load it without key=")
        if not hmac.compare_digest(signature.encode(), _hmac(key, body).encode()):
            raise EngineFileError(f"{path}: the engine's signature does not match the given key; it was signed "
                                  "with another key or altered since — refuse it, or re-sign it with this key")
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
