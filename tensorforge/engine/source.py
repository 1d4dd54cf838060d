"""The one model-source resolver: whatever a user hands to build, bench, accuracy or loadtest.

A model source is one of

* an engine file (``.tfe``, or any file that is a zip) or a loaded :class:`~.runtime.Engine`;
* an ONNX file path;
* a zoo name (``tiny_cnn``) or a shipped trained model's name (``mnist_cnn``), also written
  ``zoo:NAME`` / ``trained:NAME`` as a manifest records it; names match case-insensitively;
* an ``onnx.ModelProto`` or its serialized bytes;
* a ``(torch.nn.Module, example_input)`` pair (the torch extra), exported with ``torch.onnx.export``.

:func:`resolve_source` returns a :class:`ModelSource`: the ModelProto or the Engine, the name the
source goes by (file stem, zoo name, graph name, or the ``name=`` the caller gives) and its kind.
Everything downstream takes the name from here, so an engine built from an in-memory model
records that model's name and nobody patches a manifest afterwards. An unknown name raises
:class:`~tensorforge.errors.ModelError` with a "did you mean" over the zoo and trained names.

Example::

    src = resolve_source("tiny_cnn")            # src.kind == "zoo", src.model is a ModelProto
    src = resolve_source("resnet50.tfe")        # src.kind == "engine", src.engine is an Engine
"""

from __future__ import annotations

import difflib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from ..errors import ModelError
from ..graph.io import load_model
from .runtime import Engine

__all__ = ["KINDS", "ModelSource", "resolve_source"]

KINDS = ("engine", "onnx", "zoo", "trained", "proto", "torch")


@dataclass(frozen=True)
class ModelSource:
    """A resolved model source: exactly one of ``model`` (an FP32 ONNX graph) and ``engine`` is set."""

    kind: str                          # one of KINDS
    name: str                          # what reports and manifests call it
    origin: str                        # where it came from: a path, "zoo:NAME", "trained:NAME", "in-memory …"
    model: onnx.ModelProto | None = None
    engine: Engine | None = None
    path: Path | None = None           # the file it was read from, if any

    @property
    def precision(self) -> str:
        """The precision of the graph: an engine's recorded one, else fp32 (a model as trained)."""
        return self.engine.manifest.precision if self.engine is not None else "fp32"

    def onnx_model(self) -> onnx.ModelProto:
        """The ONNX graph: the model itself, or the optimized graph inside the engine."""
        if self.model is not None:
            return self.model
        assert self.engine is not None
        return onnx.load_from_string(self.engine.model_bytes)


def resolve_source(source: Any, *, name: str | None = None) -> ModelSource:
    """Resolve ``source`` (see the module doc); ``name`` overrides the name it would go by.

    A :class:`ModelSource` passes through (renamed when ``name`` is given), so a caller may resolve
    once and hand the result on.
    """
    resolved = _resolve(source)
    if name is not None and name != resolved.name:
        return ModelSource(resolved.kind, name, resolved.origin, resolved.model, resolved.engine, resolved.path)
    return resolved


def _resolve(source: Any) -> ModelSource:
    if isinstance(source, ModelSource):
        return source
    if isinstance(source, Engine):
        return ModelSource("engine", source.name, str(source.path) if source.path else "in-memory Engine",
                           engine=source, path=source.path)
    if isinstance(source, onnx.ModelProto):
        return ModelSource("proto", source.graph.name or "model", "in-memory ModelProto", model=source)
    if isinstance(source, (bytes, bytearray)):
        try:
            model = onnx.load_from_string(bytes(source))
        except Exception as exc:  # protobuf raises its own DecodeError
            raise ModelError(f"the bytes given as a model are not a serialized ONNX model ({exc})") from None
        return ModelSource("proto", model.graph.name or "model", "in-memory ONNX bytes", model=model)
    if isinstance(source, tuple) and len(source) == 2 and hasattr(source[0], "state_dict"):
        from ..backends.torch import module_to_onnx

        module, example = source
        label = type(module).__name__
        return ModelSource("torch", label, f"torch module {label}",
                           model=onnx.load_from_string(module_to_onnx(module, example)))
    if not isinstance(source, (str, os.PathLike)):
        raise ModelError(f"a model source is a path, a zoo or trained model name, an onnx.ModelProto, an Engine "
                         f"or a (torch module, example input) pair; got {type(source).__name__}")
    return _resolve_text(os.fspath(source))


def _resolve_text(text: str) -> ModelSource:
    path = Path(text)
    if path.suffix.lower() == ".tfe" or (path.is_file() and zipfile.is_zipfile(path)):
        engine = Engine.load(path)              # EngineFileError names a missing or broken file
        return ModelSource("engine", engine.name, str(path), engine=engine, path=path)
    if path.is_file():
        return ModelSource("onnx", path.stem, str(path), model=load_model(path), path=path)
    if path.suffix.lower() == ".onnx" or os.sep in text or (os.altsep and os.altsep in text):
        load_model(path)                        # a path that is not there: ModelError "does not exist"
    from ..models import datasets, zoo

    prefix, _, rest = text.partition(":")
    if prefix in ("zoo", "trained") and rest:
        text = rest
    zoo_names, trained_names = zoo.names(), datasets.trained_models()
    if prefix != "trained":
        match = _find(zoo.canonical(text), zoo_names)
        if match is not None:
            return ModelSource("zoo", match, f"zoo:{match}", model=zoo.build(match))
    if prefix != "zoo":
        match = _find(text, trained_names)
        if match is not None:
            trained = Path(datasets.trained_model(match))
            return ModelSource("trained", match, f"trained:{match}", model=load_model(trained), path=trained)
    known = zoo_names + trained_names
    close = difflib.get_close_matches(text.lower(), [n.lower() for n in known], n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(repr(_by_lower(c, known)) for c in close)}?" if close else ""
    raise ModelError(f"{text!r} is neither an ONNX file nor a zoo model nor a trained model.{hint} Zoo models: "
                     f"{', '.join(zoo_names)}; trained models: {', '.join(trained_names) or 'none'}")


def _find(text: str, names: list[str]) -> str | None:
    """``text`` among ``names``: exactly, else ignoring case."""
    if text in names:
        return text
    return next((n for n in names if n.lower() == text.lower()), None)


def _by_lower(lowered: str, names: list[str]) -> str:
    return next(n for n in names if n.lower() == lowered)
