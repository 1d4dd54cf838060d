"""Loading an engine and running it: :class:`Engine` (the file) and :class:`Session` (a live model).

A session checks every call's inputs against the manifest's specs *before* the backend
sees them, with the same check (and the same messages) as the server:
:func:`~tensorforge.core.feeds.check_feeds`. The backend session is created once and
reused for every call.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..backends.base import SessionConfig
from ..backends.registry import get_backend
from ..core.feeds import check_feeds
from ..core.host import fingerprint_differences
from ..core.profiles import ShapeProfile
from ..core.specs import TensorSpec
from .format import MODEL_PAYLOAD, read_engine
from .manifest import Manifest, thaw

Inputs = "np.ndarray | Mapping[str, np.ndarray]"


class Engine:
    """An engine file in memory: its typed, immutable manifest and optimized ONNX bytes.

    >>> engine = Engine.load("resnet50.tfe")          # doctest: +SKIP
    >>> session = engine.session(threads=2)            # doctest: +SKIP
    """

    def __init__(self, manifest: Manifest, model_bytes: bytes, path: Path | None = None) -> None:
        self._manifest = manifest
        self.model_bytes = model_bytes
        self.path = path
        self.inputs: list[TensorSpec] = list(manifest.inputs)
        self.outputs: list[TensorSpec] = list(manifest.outputs)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, key: bytes | None = None) -> "Engine":
        """Read and check an engine file (see :mod:`.format`); every problem is an EngineFileError.

        ``key``: refuse the file unless it was signed with this key (``write_engine(..., key=)``).
        """
        manifest, payloads = read_engine(path, key=key)
        return cls(manifest, payloads[MODEL_PAYLOAD], Path(path))

    @property
    def manifest(self) -> Manifest:
        """What the file says of itself (read-only: a changed manifest is a new Engine)."""
        return self._manifest

    @property
    def name(self) -> str:
        return self._manifest.model.name

    @property
    def max_batch(self) -> int | None:
        return self._manifest.max_batch

    def session(self, *, threads: int | None = None, backend: str | None = None, device: str | None = None,
                options: Mapping[str, Any] | None = None, check_finite: bool = True,
                warn_host: bool = True) -> "Session":
        """Create a session; defaults come from the manifest's recorded backend settings."""
        recorded = self._manifest.backend
        settings = recorded.settings.session_config()
        config = SessionConfig(
            device=device or settings.device,
            threads=threads if threads is not None else settings.threads,
            options=dict(options) if options is not None else dict(settings.options),
        )
        if warn_host:
            diffs = fingerprint_differences(thaw(self._manifest.build.host))
            if diffs:
                tuned = (self._manifest.build.tuning or {}).get("objective", "latency")
                warnings.warn(
                    f"engine {self.name!r} was built on another host ({'; '.join(diffs)}); it runs, but its "
                    "backend and settings were chosen for that machine — re-tune it here with "
                    f"BuildOptions(tune={tuned!r}) (command line: `tensorforge build MODEL --tune {tuned} "
                    f"-o {self.path.name if self.path else 'model.tfe'}`)",
                    stacklevel=2)
        return Session(self.model_bytes, self.inputs, self.outputs, backend=backend or recorded.name,
                       config=config, max_batch=self.max_batch, check_finite=check_finite,
                       name=self.name, profiles=self._manifest.profiles)


class Session:
    """A runnable engine: ``run(inputs) -> {output name: array}``.

    ``inputs`` is a dict of NumPy arrays by input name, or a single array for a
    single-input engine.
    """

    def __init__(self, model_bytes: bytes, inputs: list[TensorSpec], outputs: list[TensorSpec], *,
                 backend: str = "onnxruntime", config: SessionConfig = SessionConfig(),
                 max_batch: int | None = None, check_finite: bool = True, name: str | None = None,
                 profiles: Sequence[ShapeProfile] = ()) -> None:
        self.inputs = inputs
        self.profiles = tuple(profiles)     # the engine's shape profiles: a feed must fit one
        self.outputs = outputs
        self.backend_name = backend
        self.config = config
        self.max_batch = max_batch
        self.check_finite = check_finite
        self.name = name
        self._output_names = [s.name for s in outputs]
        self._backend_session = get_backend(backend).create_session(model_bytes, config)

    def run(self, inputs: np.ndarray | Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = self.validate(inputs)
        results = self._backend_session.run(feeds)
        return dict(zip(self._output_names, results))

    def validate(self, inputs: np.ndarray | Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Check ``inputs`` against the specs (see :func:`~tensorforge.core.feeds.check_feeds`); return
        the feed dict or raise InputError."""
        return check_feeds(inputs, self.inputs, max_batch=self.max_batch, check_finite=self.check_finite,
                           model=self.name, profiles=self.profiles)


def load(path: str | os.PathLike[str], *, threads: int | None = None, key: bytes | None = None,
         **kwargs: Any) -> Session:
    """Load an engine file and return a ready :class:`Session`.

    >>> import tensorforge, numpy as np                                    # doctest: +SKIP
    >>> session = tensorforge.load("mobilenet_v2.tfe", threads=2)          # doctest: +SKIP
    >>> out = session.run(np.zeros((1, 3, 224, 224), np.float32))          # doctest: +SKIP
    """
    return Engine.load(path, key=key).session(threads=threads, **kwargs)
