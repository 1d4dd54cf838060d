"""Backends found by name. Adding one = a module in this folder + a line here."""

from __future__ import annotations

import importlib
from typing import Callable, Union

from ..errors import BackendUnavailable
from .base import Backend

BackendFactory = Union[str, Callable[[], Backend]]

# name -> "module:Class" (imported only when asked for: no SDK import at startup) or a factory
# registered at run time by register_backend (a plug-in, or a test's instrumented backend)
_BACKENDS: dict[str, BackendFactory] = {
    "onnxruntime": "tensorforge.backends.onnxruntime:OnnxRuntimeBackend",
    "openvino": "tensorforge.backends.openvino:OpenVinoBackend",
    "torch": "tensorforge.backends.torch:TorchBackend",
    "reference": "tensorforge.backends.reference:ReferenceBackend",
}
DEFAULT_BACKEND = "onnxruntime"


def backend_names() -> list[str]:
    return list(_BACKENDS)


def register_backend(name: str, factory: BackendFactory) -> None:
    """Make a backend known by ``name``: a ``"module:Class"`` path or a zero-argument factory.

    Registering a known name replaces it. The tuner and ``build --backend`` then find it like
    the built-in ones; :func:`unregister_backend` removes it again.
    """
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"backend names are letters, digits, '-' and '_'; got {name!r}")
    _BACKENDS[name] = factory


def string_registry() -> dict[str, str]:
    """The backends known by ``"module:Class"`` path — what a worker process can re-create by import."""
    return {name: target for name, target in _BACKENDS.items() if isinstance(target, str)}


def unregister_backend(name: str) -> None:
    _BACKENDS.pop(name, None)


def canonical_name(name: str) -> str:
    """``name`` as registered: exactly, else ignoring case (``OpenVINO`` -> ``openvino``); an unknown name
    raises BackendUnavailable with the close matches ("did you mean") and the known names."""
    if name in _BACKENDS:
        return name
    folded = [n for n in _BACKENDS if n.lower() == str(name).lower()]
    if folded:
        return folded[0]
    import difflib

    close = difflib.get_close_matches(str(name).lower(), list(_BACKENDS), n=2, cutoff=0.6)
    hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
    raise BackendUnavailable(f"unknown backend {name!r}{hint}; known backends: {', '.join(_BACKENDS)}")


def get_backend(name: str = DEFAULT_BACKEND) -> Backend:
    """The backend called ``name`` (any case), checked usable here; raises BackendUnavailable otherwise."""
    name = canonical_name(name)
    target = _BACKENDS[name]
    if isinstance(target, str):
        module_name, cls_name = target.split(":")
        backend: Backend = getattr(importlib.import_module(module_name), cls_name)()
    else:
        backend = target()
    reason = backend.availability()
    if reason is not None:
        raise BackendUnavailable(f"backend {name!r} is not usable here: {reason}")
    return backend


def conformance() -> dict[str, object]:
    """The conformance suite's result per backend (``tests/conformance``, summarized into the package's
    ``conformance.json`` and checked against the suite's expectations files by a test)."""
    import json
    from importlib import resources

    try:
        return json.loads(resources.files(__package__).joinpath("conformance.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):      # a broken install: the rest of the listing still works
        return {}


def describe_backends() -> list[dict[str, object]]:
    """One row per known backend: name, available, devices, versions or the reason it is not."""
    rows: list[dict[str, object]] = []
    suite = conformance().get("backends", {})
    for name in _BACKENDS:
        try:
            b = get_backend(name)
            notes = getattr(b, "notes", None)
            rows.append({"name": name, "available": True, "devices": b.devices(), "versions": b.versions(),
                         "reason": "", "notes": notes() if notes else []})
        except BackendUnavailable as exc:
            rows.append({"name": name, "available": False, "devices": [], "versions": {}, "reason": str(exc),
                         "notes": []})
        rows[-1]["conformance"] = suite.get(name) if isinstance(suite, dict) else None
    return rows
