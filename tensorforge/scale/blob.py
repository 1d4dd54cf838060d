"""An engine file as it travels to Ray workers, and the check that Ray is installed.

The Engine is data, never code (DESIGN.md): the driver reads the ``.tfe`` file once, checks it
(:meth:`Engine.load` runs every format check and the checksum), and ships its *bytes* to the
replicas and actors, which write them to a private temporary file and load that with the same
checks. Nothing in the engine is pickled, and a worker on another node needs no shared
filesystem: the bytes ride in Ray's object store with the deployment or the actor's arguments.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..engine.runtime import Engine
from ..errors import BackendUnavailable

__all__ = ["EngineBlob", "require_ray"]

_EXTRA_HINT = "install the extra: pip install 'tensorforge[scale]' (it brings ray[serve])"


def require_ray(*parts: str) -> None:
    """Raise BackendUnavailable naming the extra unless ``ray`` (and the given submodules) import."""
    for module in ("ray", *(f"ray.{p}" for p in parts)):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            raise BackendUnavailable(f"tensorforge.scale needs {module!r}, which is not installed; {_EXTRA_HINT}")


@dataclass(frozen=True)
class EngineBlob:
    """An engine file's bytes and its model name (the file stem, as the server names models)."""

    name: str
    data: bytes

    @classmethod
    def read(cls, engine: "str | os.PathLike[str] | EngineBlob", name: str | None = None) -> "EngineBlob":
        """Read and check an engine file (EngineFileError names any problem) on the driver, before any
        worker starts, so a bad file fails here and not once per replica."""
        if isinstance(engine, EngineBlob):
            return engine if name is None or name == engine.name else EngineBlob(name, engine.data)
        path = Path(engine)
        Engine.load(path)
        return cls(name or path.stem, path.read_bytes())

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def materialize(self, directory: "str | os.PathLike[str] | None" = None) -> Path:
        """Write the bytes to ``<directory>/<name>.tfe`` (default: a fresh private temp dir) and return it."""
        folder = Path(directory) if directory is not None else Path(tempfile.mkdtemp(prefix="tf-scale-"))
        path = folder / f"{self.name}.tfe"
        path.write_bytes(self.data)
        return path

    def load(self) -> Engine:
        """The Engine, from a private temporary copy (loaded with every check of Engine.load)."""
        return Engine.load(self.materialize())

