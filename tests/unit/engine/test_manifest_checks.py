"""Issue #13 item 4: a manifest that lies about the model, or is malformed, is refused on load with
EngineFileError — via its checksum when it has one, via the schema and the graph cross-check always."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tensorforge.engine.format import MANIFEST, read_engine
from tensorforge.engine.runtime import Engine
from tensorforge.errors import EngineFileError

from conftest import make_conv_bn_model


def write_zip(path: Path, manifest: dict[str, Any] | bytes, model: bytes, comment: bytes = b"") -> Path:
    """An engine zip as an older build (no comment) or a tampering tool would write it."""
    body = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w") as zf:
        zf.comment = comment
        zf.writestr(MANIFEST, body)
        zf.writestr("model.onnx", model)
    return path


def test_current_build_writes_a_manifest_checksum(engine_path):
    with zipfile.ZipFile(engine_path) as zf:
        comment = zf.comment.decode()
    assert comment.startswith("tensorforge-engine\nmanifest-sha256=")


def test_legacy_file_without_checksum_still_loads(engine_path, tmp_path):
    typed, payloads = read_engine(engine_path)
    manifest = typed.to_dict()      # raw JSON, to forge a file from
    old = write_zip(tmp_path / "old.tfe", manifest, payloads["model.onnx"])
    assert Engine.load(old).outputs[0].name == "y"


def test_rewritten_manifest_fails_its_checksum(engine_path, tmp_path):
    """A manifest rewritten inside an otherwise valid zip, keeping the old comment: caught by the checksum."""
    typed, payloads = read_engine(engine_path)
    manifest = typed.to_dict()      # raw JSON, to forge a file from
    with zipfile.ZipFile(engine_path) as zf:
        comment = zf.comment
    manifest["model"]["name"] = "renamed"        # harmless to the schema: only the checksum can see it
    bad = write_zip(tmp_path / "edited.tfe", manifest, payloads["model.onnx"], comment=comment)
    with pytest.raises(EngineFileError, match="manifest.json fails its checksum"):
        Engine.load(bad)


def _set(manifest: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node: Any = manifest
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


@pytest.mark.parametrize("field, value, pattern", [
    ("outputs.0.name", "logits", r"outputs \['logits'\] do not match the model's graph outputs \['y'\]"),
    ("inputs.0.name", "images", r"inputs \['images'\] do not match"),
    ("outputs.0.shape", ["N", 6], r"output 'y' shape \(N, 6\).*axis 1 differs"),
    ("inputs.0.shape", ["N", 3, 16], r"rank 3.*rank 4"),
    ("outputs.0.dtype", "float16", r"dtype float16; the model's graph has float32"),
    ("outputs.0.dtype", "complex-ish", r"'outputs\[0\].dtype' is 'complex-ish'"),
    ("inputs.0.shape", ["N", -3, 16, 16], r"dim -3"),
    ("backend.name", "tensorrt9", r"'backend.name' is 'tensorrt9'; expected one of"),
    ("backend.settings.threads", 1024, r"threads' is 1024; expected null or an integer from 1 to"),
    ("backend.settings.threads", 0, r"threads' is 0"),
    ("backend.settings.threads", "4", r"threads' is '4'"),
    ("backend.settings.threads", True, r"threads' is True"),
    ("backend.settings.options", [], r"options' is \[\]"),
    ("max_batch", -1, r"'max_batch' is -1"),
    ("inputs", {"x": 1}, r"'inputs' is \{'x': 1\}; expected a list"),
    ("inputs", [], r"inputs \[\] do not match the model's graph inputs \['x'\]"),
    ("outputs", [], r"'outputs' is \[\]"),
    ("model", "resnet", r"'model' is 'resnet'; expected an object"),
    ("backend", None, r"'backend' is None"),
    ("build.host", 3, r"'build.host' is 3"),
    ("build.notes", [1], r"'build.notes' is \[1\]; expected null or a list of strings"),
    ("build.tuning", [], r"'build.tuning' is \[\]"),
    ("model.source", 7, r"'model.source' is 7; expected null or a string"),
    ("backend.versions", "1.0", r"'backend.versions' is '1.0'"),
])
def test_manifest_that_does_not_fit_is_refused(engine_path, tmp_path, field, value, pattern):
    """Written without a checksum, as an older build would: the schema and graph cross-check catch it."""
    typed, payloads = read_engine(engine_path)
    manifest = typed.to_dict()      # raw JSON, to forge a file from
    _set(manifest, field, value)
    bad = write_zip(tmp_path / "bad.tfe", manifest, payloads["model.onnx"])
    with pytest.raises(EngineFileError, match=pattern):
        Engine.load(bad)


def test_thread_limit_follows_this_host(engine_path, tmp_path):
    typed, payloads = read_engine(engine_path)
    manifest = typed.to_dict()      # raw JSON, to forge a file from
    limit = max(4 * (os.cpu_count() or 1), 128)
    manifest["backend"]["settings"]["threads"] = limit
    Engine.load(write_zip(tmp_path / "ok.tfe", manifest, payloads["model.onnx"]))
    manifest["backend"]["settings"]["threads"] = limit + 1
    with pytest.raises(EngineFileError, match=f"from 1 to {limit}"):
        Engine.load(write_zip(tmp_path / "over.tfe", manifest, payloads["model.onnx"]))


def test_payload_that_is_not_onnx_is_refused(engine_path, tmp_path):
    manifest = read_engine(engine_path)[0].to_dict()
    junk = b"\xff" * 64
    manifest["payloads"]["model.onnx"] = {"sha256": hashlib.sha256(junk).hexdigest(), "bytes": len(junk)}
    with pytest.raises(EngineFileError, match="not a readable ONNX model"):
        Engine.load(write_zip(tmp_path / "junk.tfe", manifest, junk))


# -- fuzz: whatever the manifest holds, only EngineFileError leaves Engine.load ---------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i,))
    return out


@st.composite
def mutations(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    manifest = copy.deepcopy(base)
    paths = _paths(manifest)
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(paths))
        node: Any = manifest
        try:
            for key in where[:-1]:
                node = node[key]
            if draw(st.booleans()) and isinstance(node, dict):
                node.pop(where[-1], None)
            else:
                node[where[-1]] = draw(JSON)
        except (KeyError, IndexError, TypeError):
            pass        # an earlier mutation replaced a parent: fine, the manifest is mutated anyway
    return manifest


@pytest.fixture(scope="module")
def base_engine(tmp_path_factory) -> tuple[dict[str, Any], bytes]:
    from tensorforge.engine.build import build

    out = tmp_path_factory.mktemp("fuzz") / "base.tfe"
    build(make_conv_bn_model(), out)
    manifest, payloads = read_engine(out)
    return manifest.to_dict(), payloads["model.onnx"]


def test_fuzzed_manifests_raise_only_engine_file_error(base_engine, tmp_path_factory):
    manifest, model = base_engine
    folder = tmp_path_factory.mktemp("fuzzed")

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(mutations(manifest))
    def check(mutated: dict[str, Any]) -> None:
        path = write_zip(folder / "m.tfe", json.dumps(mutated, allow_nan=True).encode(), model)
        try:
            engine = Engine.load(path)
        except EngineFileError:
            return
        # what loads is usable: the attributes sessions read are well-typed
        assert engine.inputs and engine.outputs
        assert isinstance(engine.name, str)

    check()


def test_fuzzed_file_bytes_raise_only_engine_file_error(engine_path, tmp_path):
    """Damage anywhere in the file (zip headers, manifest text, payload), not only in the manifest's values."""
    original = engine_path.read_bytes()
    path = tmp_path / "damaged.tfe"

    n = len(original)
    # most of the file is the model payload, whose sha256 catches any flip: aim at the zip headers and
    # the manifest at the start, and the central directory at the end
    where = st.integers(0, min(n, 4096) - 1) | st.integers(max(0, n - 512), n - 1) | st.integers(0, n - 1)

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(st.lists(st.tuples(where, st.integers(1, 255)), min_size=1, max_size=4),
           st.integers(0, len(original)))
    def check(flips: list[tuple[int, int]], keep: int) -> None:
        data = bytearray(original)
        for at, mask in flips:
            data[at] ^= mask
        path.write_bytes(bytes(data[:keep] if keep > len(original) // 2 else data))
        try:
            Engine.load(path)
        except EngineFileError:
            pass

    check()
