"""The engine manifest: a typed, immutable :class:`Manifest`, parsed once from the file's JSON
(:func:`parse_manifest`) and turned back into JSON only at the edge (:meth:`Manifest.to_dict`:
writing the file, ``tensorforge info --json``).

Parsing checks types, ranges, known names, and the I/O specs against the ONNX payload's graph.
Every failure is an :class:`EngineFileError` naming the field, its value and what it should be.

Checks:

- ``model``: an object with a string ``name``; ``precision``: a non-empty string;
- ``inputs``/``outputs``: lists (``outputs`` non-empty) of ``{name, dtype, shape}`` — unique non-empty
  names, a NumPy dtype name, a shape of ints ≥ 0, symbolic names or null (rank ≤ 64);
- ``max_batch``: null or an int ≥ 1;
- ``profiles`` (absent in engines from before shape profiles): a list of ``{input: {min, opt, max}}``
  naming manifest inputs, each shape of the input's rank with ``min <= opt <= max``;
- ``backend``: ``name`` one of :func:`backend_names`; ``settings`` with a string ``device``,
  ``threads`` null or 1 … max(4 × this host's cores, 128) (more only oversubscribes the cores and can
  stall the process), ``options`` an object, ``streams`` null or 1 … 1024;
- ``build``: an object whose ``host`` and ``tuning`` are objects (or null);
- the records the build writes for people (``model.source``, ``build.notes``, ``build.tuning`` …):
  their JSON type (a string, a list, an object or null) — their content is kept as read, frozen;
- ``tokenizer`` (optional, :class:`TokenizerRecord`): ``payload`` a listed payload whose sha256 it
  repeats, ``max_length`` an int >= 1, ``inputs`` a non-empty list of manifest input names;
- the payload's graph: the manifest's inputs and outputs, in order, have the graph's names,
  dtypes and ranks, and every axis fixed on either side is the same on the other.

Example::

    manifest = parse_manifest("model.tfe", json.loads(body), payloads["model.onnx"])
    manifest.backend.settings.threads       # typed attributes, no string keys
    json.dumps(manifest.to_dict())          # the file's JSON again
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from ..backends.base import SessionConfig
from ..core.profiles import ShapeProfile
from ..core.specs import TensorSpec
from ..errors import EngineFileError

__all__ = ["THREADS_PER_CORE", "BackendRecord", "BackendSettings", "BuildRecord", "Manifest", "ModelInfo",
           "PayloadRecord", "TokenizerRecord", "check_io_against_model", "freeze", "max_threads", "parse_manifest",
           "thaw", "validate_manifest"]

THREADS_PER_CORE = 4        # threads beyond 4 per core only oversubscribe; 1024 of them stalled the loader
MAX_RANK = 64
MAX_STREAMS = 1024
_REBUILD = "rebuild the engine with `tensorforge build`"


THREADS_FLOOR = 128         # an engine tuned on a big server (threads = its cores) still loads on a small host


def max_threads() -> int:
    """The largest thread count an engine may ask for on this host: 4 per core, but never below
    :data:`THREADS_FLOOR`, so an engine built on a many-core server stays portable (the runtime
    then warns that it was built on another host)."""
    return max(THREADS_PER_CORE * (os.cpu_count() or 1), THREADS_FLOOR)


def _fail(where: str, what: str) -> EngineFileError:
    return EngineFileError(f"{where}: manifest {what}; the file is corrupted or hand-edited — {_REBUILD}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _obj(where: str, parent: dict[str, Any], key: str, label: str, *, optional: bool = False) -> dict[str, Any]:
    value = parent.get(key)
    if value is None and optional:
        return {}
    if not isinstance(value, dict):
        raise _fail(where, f"field {label!r} is {value!r}; expected an object")
    return value


def validate_manifest(where: str, manifest: dict[str, Any], model_bytes: bytes | None = None) -> None:
    """Check ``manifest`` against the schema above (and against ``model_bytes`` when given)."""
    model = _obj(where, manifest, "model", "model")
    if not isinstance(model.get("name", "model"), str):
        raise _fail(where, f"field 'model.name' is {model.get('name')!r}; expected a string")
    precision = manifest.get("precision", "fp32")
    if not isinstance(precision, str) or not precision:
        raise _fail(where, f"field 'precision' is {precision!r}; expected a name such as 'fp32'")
    inputs = _specs(where, manifest, "inputs")
    outputs = _specs(where, manifest, "outputs")
    max_batch = manifest.get("max_batch")
    if max_batch is not None and (not _is_int(max_batch) or max_batch < 1):
        raise _fail(where, f"field 'max_batch' is {max_batch!r}; expected null or an integer >= 1")
    _check_backend(where, manifest)
    build = _obj(where, manifest, "build", "build", optional=True)
    for key in ("host", "tuning"):
        _obj(where, build, key, f"build.{key}", optional=True)
    if model_bytes is not None:
        check_io_against_model(where, inputs, outputs, model_bytes)


def _specs(where: str, manifest: dict[str, Any], key: str) -> list[TensorSpec]:
    raw = manifest.get(key)
    if not isinstance(raw, list) or (key == "outputs" and not raw):      # a graph may have no inputs, not no outputs
        what = "a non-empty list" if key == "outputs" else "a list"
        raise _fail(where, f"field {key!r} is {_short(raw)}; expected {what} of {{name, dtype, shape}}")
    specs: list[TensorSpec] = []
    for i, d in enumerate(raw):
        label = f"{key}[{i}]"
        if not isinstance(d, dict):
            raise _fail(where, f"field {label!r} is {_short(d)}; expected an object {{name, dtype, shape}}")
        name, dtype, shape = d.get("name"), d.get("dtype"), d.get("shape")
        if not isinstance(name, str) or not name:
            raise _fail(where, f"field '{label}.name' is {name!r}; expected a non-empty string")
        if not isinstance(dtype, str) or not _known_dtype(dtype):
            raise _fail(where, f"field '{label}.dtype' is {dtype!r}; expected a NumPy dtype name such as 'float32'")
        if not isinstance(shape, list) or len(shape) > MAX_RANK:
            raise _fail(where, f"field '{label}.shape' is {_short(shape)}; expected a list of at most {MAX_RANK} "
                        "dims (int >= 0, a symbolic name, or null)")
        for dim in shape:
            if not (dim is None or (isinstance(dim, str) and dim) or (_is_int(dim) and dim >= 0)):
                raise _fail(where, f"field '{label}.shape' holds the dim {dim!r}; expected an int >= 0, "
                            "a symbolic name, or null")
        specs.append(TensorSpec(name=name, dtype=dtype, shape=tuple(shape)))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise _fail(where, f"field {key!r} names {names}; names must be unique")
    return specs


def _known_dtype(name: str) -> bool:
    try:
        with warnings.catch_warnings():         # a deprecated alias ("a") warns before it fails the test below
            warnings.simplefilter("ignore")
            return np.dtype(name).name == name
    except (TypeError, ValueError):
        return False


def _check_backend(where: str, manifest: dict[str, Any]) -> None:
    from ..backends.registry import backend_names

    backend = _obj(where, manifest, "backend", "backend")
    name = backend.get("name")
    known = backend_names()
    if name not in known:
        raise _fail(where, f"field 'backend.name' is {_short(name)}; expected one of {known}")
    settings = _obj(where, backend, "settings", "backend.settings", optional=True)
    device = settings.get("device", "cpu")
    if not isinstance(device, str) or not device:
        raise _fail(where, f"field 'backend.settings.device' is {device!r}; expected a device name such as 'cpu'")
    threads = settings.get("threads")
    limit = max_threads()
    if threads is not None and (not _is_int(threads) or not 1 <= threads <= limit):
        raise EngineFileError(
            f"{where}: manifest field 'backend.settings.threads' is {_short(threads)}; expected null or an "
            f"integer from 1 to {limit} (max of {THREADS_PER_CORE} x this host's {os.cpu_count()} cores and "
            f"{THREADS_FLOOR}) — rebuild "
            "the engine on this machine, or with BuildOptions(threads=...) no larger than that")
    if not isinstance(settings.get("options", {}), dict):
        raise _fail(where, f"field 'backend.settings.options' is {_short(settings.get('options'))}; "
                    "expected an object")
    streams = settings.get("streams")
    if streams is not None and (not _is_int(streams) or not 1 <= streams <= MAX_STREAMS):
        raise _fail(where, f"field 'backend.settings.streams' is {_short(streams)}; expected null or an "
                    f"integer from 1 to {MAX_STREAMS}")


def check_io_against_model(where: str, inputs: list[TensorSpec], outputs: list[TensorSpec],
                           model_bytes: bytes) -> None:
    """The manifest's specs must describe the payload's graph: names in order, dtypes, ranks, fixed dims."""
    import onnx

    from ..core.specs import io_specs

    try:
        model = onnx.load_from_string(model_bytes)
        graph_inputs, graph_outputs = io_specs(model)
    except Exception as exc:        # untrusted bytes: protobuf's DecodeError, ModelError, and whatever else
        # a damaged graph makes the parser raise all mean the same thing to the user
        raise EngineFileError(f"{where}: the model payload is not a readable ONNX model ({exc}); "
                              f"the file is corrupted — {_REBUILD}") from exc
    for kind, manifest_specs, graph_specs in (("inputs", inputs, graph_inputs), ("outputs", outputs, graph_outputs)):
        got = [s.name for s in manifest_specs]
        want = [s.name for s in graph_specs]
        if got != want:
            raise _fail(where, f"{kind} {got} do not match the model's graph {kind} {want}")
        for m, g in zip(manifest_specs, graph_specs):
            if m.dtype != g.dtype:
                raise _fail(where, f"gives {kind[:-1]} {m.name!r} dtype {m.dtype}; the model's graph has {g.dtype}")
            if len(m.shape) != len(g.shape):
                raise _fail(where, f"gives {kind[:-1]} {m.name!r} shape {m.shape_str()} (rank {len(m.shape)}); "
                            f"the model's graph has {g.shape_str()} (rank {len(g.shape)})")
            for axis, (a, b) in enumerate(zip(m.shape, g.shape)):
                if (isinstance(a, int) or isinstance(b, int)) and a != b:
                    raise _fail(where, f"gives {kind[:-1]} {m.name!r} shape {m.shape_str()}; the model's graph "
                                f"has {g.shape_str()} (axis {axis} differs)")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# -- the typed manifest ---------------------------------------------------------------------------------
_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _empty() -> Mapping[str, Any]:
    return _EMPTY


def freeze(value: Any) -> Any:
    """A JSON value made immutable: objects become read-only mappings, lists tuples (deeply)."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """The plain JSON value of a :func:`freeze` d one (dicts and lists), for JSON and for callers that edit."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class ModelInfo:
    """Which model the engine was built from: its name, source and hashes."""

    name: str = "model"
    source: str | None = None                 # "zoo:tiny_cnn", a path, "onnx:<in-memory>" …
    sha256_original: str | None = None        # of the model as given, before any pass
    sha256: str | None = None                 # of the optimized payload
    opset: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "sha256_original": self.sha256_original,
                "sha256": self.sha256, "opset": self.opset}


@dataclass(frozen=True)
class BackendSettings:
    """The session settings the build chose; ``streams`` only when the tuner picked a stream count."""

    device: str = "cpu"
    threads: int | None = None
    options: Mapping[str, Any] = field(default_factory=_empty)
    streams: int | None = None

    def session_config(self) -> SessionConfig:
        return SessionConfig(device=self.device, threads=self.threads, options=thaw(self.options))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"device": self.device, "threads": self.threads, "options": thaw(self.options)}
        if self.streams is not None:
            d["streams"] = self.streams
        return d


@dataclass(frozen=True)
class BackendRecord:
    name: str = "onnxruntime"
    versions: Mapping[str, Any] = field(default_factory=_empty)
    settings: BackendSettings = BackendSettings()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "versions": thaw(self.versions), "settings": self.settings.to_dict()}


@dataclass(frozen=True)
class BuildRecord:
    """How the engine was built. The reports (passes, verification, tuning …) are kept as the frozen
    JSON their own modules wrote; the host fingerprint is :func:`~tensorforge.core.host.host_fingerprint`."""

    date: str | None = None
    host: Mapping[str, Any] = field(default_factory=_empty)
    libraries: Mapping[str, Any] = field(default_factory=_empty)
    pipeline: str | None = None
    passes: tuple[Mapping[str, Any], ...] = ()
    notes: tuple[str, ...] = ()
    verification: Mapping[str, Any] | None = None
    precision: Mapping[str, Any] | None = None
    tuning: Mapping[str, Any] | None = None
    optimization: Mapping[str, Any] | None = None
    summary: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"date": self.date, "host": thaw(self.host), "libraries": thaw(self.libraries),
                "pipeline": self.pipeline, "passes": thaw(self.passes), "notes": list(self.notes),
                "verification": thaw(self.verification), "precision": thaw(self.precision),
                "tuning": thaw(self.tuning), "optimization": thaw(self.optimization), "summary": thaw(self.summary)}


@dataclass(frozen=True)
class PayloadRecord:
    sha256: str
    bytes: int


@dataclass(frozen=True)
class TokenizerRecord:
    """The tokenizer an engine carries (a ``tokenizers`` tokenizer.json payload): the server tokenizes
    text into ``inputs``, truncated to ``max_length`` tokens (the profile's longest sequence)."""

    payload: str
    sha256: str
    max_length: int
    inputs: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"payload": self.payload, "sha256": self.sha256, "max_length": self.max_length,
                "inputs": list(self.inputs)}


@dataclass(frozen=True)
class Manifest:
    """Everything an engine file says about itself, typed and immutable.

    ``format``, ``format_version`` and ``payloads`` are set on a manifest read from a file (the writer
    adds them); a freshly built engine that was not written has none. To change a field, make a new
    manifest with :func:`dataclasses.replace`.
    """

    model: ModelInfo = ModelInfo()
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    precision: str = "fp32"
    max_batch: int | None = None
    profiles: tuple[ShapeProfile, ...] = ()     # min/opt/max per dynamic input (core/profiles.py)
    accuracy: Mapping[str, Any] | None = None
    backend: BackendRecord = BackendRecord()
    build: BuildRecord = BuildRecord()
    format: str | None = None
    format_version: int | None = None
    payloads: Mapping[str, PayloadRecord] = field(default_factory=_empty)
    tokenizer: TokenizerRecord | None = None    # a tokenizer payload: the server then takes raw text

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to ``manifest.json`` (the writer adds the format and payload table)."""
        d: dict[str, Any] = {"model": self.model.to_dict(), "inputs": [s.to_dict() for s in self.inputs],
                             "outputs": [s.to_dict() for s in self.outputs], "max_batch": self.max_batch,
                             "precision": self.precision, "accuracy": thaw(self.accuracy),
                             "backend": self.backend.to_dict(), "build": self.build.to_dict()}
        if self.profiles:       # only when there are some: older readers see the same JSON as before
            d["profiles"] = [p.to_dict() for p in self.profiles]
        if self.tokenizer is not None:
            d["tokenizer"] = self.tokenizer.to_dict()
        if self.format is not None:
            d["format"] = self.format
        if self.format_version is not None:
            d["format_version"] = self.format_version
        if self.payloads:
            d["payloads"] = {name: {"sha256": p.sha256, "bytes": p.bytes} for name, p in self.payloads.items()}
        return d


def parse_manifest(where: str, raw: Any, model_bytes: bytes | None = None) -> Manifest:
    """The typed manifest of ``raw`` (the file's parsed JSON), checked as the module doc says (and against
    ``model_bytes`` when given); EngineFileError on any problem."""
    if not isinstance(raw, dict):
        raise _fail(where, f"is {_short(raw)}; expected an object")
    validate_manifest(where, raw, model_bytes)
    model = raw["model"]
    backend = raw["backend"]
    settings = _obj(where, backend, "settings", "backend.settings", optional=True)
    build = _obj(where, raw, "build", "build", optional=True)
    payloads: dict[str, PayloadRecord] = {}
    for name, meta in (_typed(where, raw, "payloads", "", dict) or {}).items():
        if not isinstance(meta, Mapping) or not isinstance(meta.get("sha256"), str) or not _is_int(meta.get("bytes")):
            raise _fail(where, f"field 'payloads.{name}' is {_short(thaw(meta))}; expected {{sha256, bytes}}")
        payloads[name] = PayloadRecord(meta["sha256"], meta["bytes"])
    return Manifest(
        model=ModelInfo(name=model.get("name", "model"), source=_typed(where, model, "source", "model.", str),
                        sha256_original=_typed(where, model, "sha256_original", "model.", str),
                        sha256=_typed(where, model, "sha256", "model.", str),
                        opset=_typed(where, model, "opset", "model.", int)),
        inputs=tuple(_specs(where, raw, "inputs")), outputs=tuple(_specs(where, raw, "outputs")),
        precision=raw.get("precision", "fp32"), max_batch=raw.get("max_batch"),
        profiles=_profiles(where, raw),
        accuracy=_record(where, raw, "accuracy", ""),
        backend=BackendRecord(
            name=backend["name"], versions=_record(where, backend, "versions", "backend.") or _EMPTY,
            settings=BackendSettings(device=settings.get("device", "cpu"), threads=settings.get("threads"),
                                     options=freeze(settings.get("options", {})), streams=settings.get("streams"))),
        build=BuildRecord(
            date=_typed(where, build, "date", "build.", str), host=_record(where, build, "host", "build.") or _EMPTY,
            libraries=_record(where, build, "libraries", "build.") or _EMPTY,
            pipeline=_typed(where, build, "pipeline", "build.", str),
            passes=_typed(where, build, "passes", "build.", list) or (),
            notes=_typed(where, build, "notes", "build.", list, of=str) or (),
            verification=_record(where, build, "verification", "build."),
            precision=_record(where, build, "precision", "build."),
            tuning=_record(where, build, "tuning", "build."),
            optimization=_record(where, build, "optimization", "build."),
            summary=_record(where, build, "summary", "build.")),
        format=_typed(where, raw, "format", "", str), format_version=_typed(where, raw, "format_version", "", int),
        payloads=MappingProxyType(payloads), tokenizer=_tokenizer(where, raw, payloads))


_JSON_TYPES = {str: "a string", int: "an integer", list: "a list", dict: "an object"}
_PLURALS = {str: "strings", int: "integers", list: "lists", dict: "objects"}


def _typed(where: str, parent: dict[str, Any], key: str, prefix: str, kind: type, of: type | None = None) -> Any:
    """``parent[key]`` when it is null/absent or of ``kind`` (a list: of ``of``), frozen; else EngineFileError."""
    value = parent.get(key)
    if value is None:
        return None
    ok = _is_int(value) if kind is int else isinstance(value, kind)
    if ok and of is not None:
        ok = all(isinstance(v, of) for v in value)
    if not ok:
        what = _JSON_TYPES[kind] + (f" of {_PLURALS[of]}" if of is not None else "")
        raise _fail(where, f"field '{prefix}{key}' is {_short(value)}; expected null or {what}")
    return freeze(value)


def _profiles(where: str, raw: dict[str, Any]) -> tuple[ShapeProfile, ...]:
    """The recorded shape profiles (none in an engine from before them), checked against the inputs."""
    value = raw.get("profiles")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _fail(where, f"field 'profiles' is {_short(value)}; expected a list of {{input: {{min, opt, max}}}}")
    ranks = {d["name"]: len(d["shape"]) for d in raw["inputs"]}
    out = []
    for i, d in enumerate(value):
        try:
            p = ShapeProfile.from_dict(d)
        except ValueError as exc:
            raise _fail(where, f"field 'profiles[{i}]' is {_short(d)}: {exc}") from None
        for ip in p.inputs:
            if ranks.get(ip.name) != len(ip.min):
                raise _fail(where, f"field 'profiles[{i}]' gives input {ip.name!r} rank {len(ip.min)}; the "
                            f"inputs are {ranks} (name: rank)")
        order = list(ranks)         # the file's JSON may sort its keys: keep the inputs' order
        out.append(ShapeProfile(tuple(sorted(p.inputs, key=lambda ip: order.index(ip.name)))))
    return tuple(out)


def _record(where: str, parent: dict[str, Any], key: str, prefix: str) -> Mapping[str, Any] | None:
    """A free-form JSON object (a report written by its own module), frozen; null stays None."""
    result: Mapping[str, Any] | None = _typed(where, parent, key, prefix, dict)
    return result


def _tokenizer(where: str, raw: dict[str, Any], payloads: Mapping[str, PayloadRecord]) -> TokenizerRecord | None:
    """The tokenizer record (none in most engines), checked against the inputs and the payload table."""
    value = raw.get("tokenizer")
    if value is None:
        return None
    expected = "{payload, sha256, max_length, inputs}"
    if not isinstance(value, dict) or not isinstance(value.get("payload"), str) or not isinstance(
            value.get("sha256"), str) or not _is_int(value.get("max_length")) or value["max_length"] < 1 or \
            not isinstance(value.get("inputs"), list) or not value["inputs"] or \
            not all(isinstance(n, str) for n in value["inputs"]):
        raise _fail(where, f"field 'tokenizer' is {_short(value)}; expected {expected}")
    names = [d["name"] for d in raw["inputs"]]
    unknown = [n for n in value["inputs"] if n not in names]
    if unknown:
        raise _fail(where, f"field 'tokenizer.inputs' names {unknown}, which are not inputs ({names})")
    if payloads:            # a manifest read from a file: the payload must be there, with the same checksum
        record = payloads.get(value["payload"])
        if record is None or record.sha256 != value["sha256"]:
            raise _fail(where, f"field 'tokenizer' names payload {value['payload']!r} with sha256 "
                        f"{value['sha256'][:12]}…, which the payload table does not hold")
    return TokenizerRecord(value["payload"], value["sha256"], value["max_length"], tuple(value["inputs"]))
