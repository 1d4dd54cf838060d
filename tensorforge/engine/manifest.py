"""The engine manifest's schema, checked on load: types, ranges, known names, and its I/O
specs against the ONNX payload's graph. Every failure is an :class:`EngineFileError` naming
the field, its value and what it should be.

Checks:

- ``model``: an object with a string ``name``; ``precision``: a non-empty string;
- ``inputs``/``outputs``: lists (``outputs`` non-empty) of ``{name, dtype, shape}`` — unique non-empty
  names, a NumPy dtype name, a shape of ints ≥ 0, symbolic names or null (rank ≤ 64);
- ``max_batch``: null or an int ≥ 1;
- ``backend``: ``name`` one of :func:`backend_names`; ``settings`` with a string ``device``,
  ``threads`` null or 1 … max(4 × this host's cores, 128) (more only oversubscribes the cores and can
  stall the process), ``options`` an object, ``streams`` null or 1 … 1024;
- ``build``: an object whose ``host`` and ``tuning`` are objects (or null);
- the payload's graph: the manifest's inputs and outputs, in order, have the graph's names,
  dtypes and ranks, and every axis fixed on either side is the same on the other.

Example::

    validate_manifest("model.tfe", manifest, payloads["model.onnx"])
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from ..core.specs import TensorSpec
from ..errors import EngineFileError

__all__ = ["THREADS_PER_CORE", "max_threads", "validate_manifest", "check_io_against_model"]

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
