"""``run`` and ``info``: one inference on an engine (or a model built in memory), and what an engine file holds."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

if TYPE_CHECKING:
    from ..engine.manifest import Manifest

__all__ = ["engine_for", "run", "EngineInfo", "info"]


def engine_for(model: Any, *, threads: int | None = None) -> Any:
    """The :class:`~tensorforge.Engine` of ``model``: an Engine, an engine file (``.tfe``) loaded, or
    anything :func:`tensorforge.build` accepts (ONNX file, zoo name, ModelProto) built in memory."""
    from ..engine.build import BuildOptions, build
    from ..engine.source import resolve_source

    src = resolve_source(model)
    return src.engine if src.engine is not None else build(src, options=BuildOptions(threads=threads))[0]


def run(model: Any, inputs: np.ndarray | Mapping[str, np.ndarray], *, threads: int | None = None
        ) -> dict[str, np.ndarray]:
    """Run ``model`` (see :func:`engine_for`) once on ``inputs`` and return its outputs by name.

    ``inputs`` is one array (single-input models) or ``{input name: array}``."""
    return engine_for(model, threads=threads).session(threads=threads).run(inputs)


@dataclass(frozen=True)
class EngineInfo:
    """An engine file's manifest, checked on load, and how this machine differs from its build host."""

    engine: Any                       # the loaded Engine (its inputs, outputs, max batch)
    manifest: Manifest                # typed; ``to_dict()`` gives the file's JSON
    host_differences: list[str]       # empty when this host matches the build host

    def to_dict(self) -> dict[str, Any]:
        return {"manifest": self.manifest.to_dict(), "host_differences": list(self.host_differences)}


def info(path: str | os.PathLike[str]) -> EngineInfo:
    """Load the engine file at ``path`` (format and checksums checked) and describe it."""
    from ..core.host import fingerprint_differences
    from ..engine.manifest import thaw
    from ..engine.runtime import Engine

    engine = Engine.load(path)
    manifest = engine.manifest
    return EngineInfo(engine=engine, manifest=manifest,
                      host_differences=list(fingerprint_differences(thaw(manifest.build.host))))
