"""``serve``: start the KServe v2 inference server (HTTP, gRPC, Prometheus metrics) on engines or a repository."""

from __future__ import annotations

import os
from typing import Any, Sequence

from ..errors import ConfigError

__all__ = ["serve", "read_token"]


def read_token(path: str | os.PathLike[str]) -> str:
    """The bearer token stored in the file at ``path`` (surrounding whitespace removed)."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read auth_token_file={os.fspath(path)!r}: {exc}") from exc


def serve(engines: Sequence[str | os.PathLike[str]] = (), repository: str | os.PathLike[str] | None = None, *,
          config: Any = None, model_config: Any = None) -> Any:
    """Start an :class:`~tensorforge.serve.InferenceServer` and return it once it accepts connections.

    ``engines``: engine files, each served as its file stem (version 1); ``repository``: a
    directory ``DIR/<model>/<version>/model.tfe`` (models there can be loaded and unloaded at
    run time). ``config`` is a :class:`~tensorforge.serve.ServerConfig` (where to listen,
    limits, auth), ``model_config`` a :class:`~tensorforge.serve.ModelConfig` (batching,
    instances) applied to every model unless a repository ``config.json`` overrides it.
    Stop it with ``server.stop()`` (in-flight requests finish first)::

        server = tensorforge.serve(["model.tfe"], config=ServerConfig(http_port=0))
        try:
            ...                                   # clients talk to server.http_url
        finally:
            server.stop()
    """
    from ..serve import InferenceServer, ServerConfig

    if isinstance(engines, (str, os.PathLike)):
        engines = [engines]
    server = InferenceServer(list(engines), repository, config=config or ServerConfig(), model_config=model_config)
    return server.start()
