"""``serve``: start the KServe v2 inference server (HTTP, gRPC, Prometheus metrics) on engines or a repository."""

from __future__ import annotations

import os
from typing import Any, Sequence

from ..errors import ConfigError

__all__ = ["serve", "serve_on_ray", "read_token"]


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


def serve_on_ray(engine: str | os.PathLike[str], *, address: str | None = None, replicas: int | str = 1,
                 http_host: str = "127.0.0.1", http_port: int = 8000, proxy_location: str | None = None,
                 model_config: Any = None, app_name: str = "tensorforge", num_cpus: float = 1.0) -> str:
    """Deploy ``engine`` on Ray Serve (:func:`tensorforge.scale.deploy`): the same KServe v2 HTTP API, our
    batcher in every replica; return the proxy's ``host:port`` once the application is healthy.

    ``address``: the Ray cluster to join (``host:port``, ``"auto"``; default: a running one, else a new local
    one). ``replicas``: an int, or ``"auto"`` (Ray Serve's autoscaler on ongoing requests per replica, its
    queue depth). ``model_config``: a :class:`~tensorforge.serve.ModelConfig` whose batcher and instance
    settings every replica runs. Stop it with ``ray.serve.delete(app_name)``.
    """
    from ..scale.blob import require_ray

    require_ray("serve")
    if not (replicas == "auto" or (isinstance(replicas, int) and not isinstance(replicas, bool) and replicas >= 1)):
        raise ConfigError(f"`replicas` must be a whole number >= 1 or 'auto', got {replicas!r}")
    from ..scale.online import ReplicaSettings, deploy
    from ..serve import ModelConfig

    mc = model_config or ModelConfig()
    b = mc.batcher
    settings = ReplicaSettings(max_batch_size=b.max_batch_size, batch_wait_timeout_s=b.max_queue_delay_ms / 1000.0,
                               preferred_batch_sizes=tuple(b.preferred_batch_sizes), max_queue_size=b.max_queue_size,
                               instances=b.instances, threads_per_instance=mc.threads_per_instance,
                               default_timeout_ms=b.default_timeout_ms, check_finite=mc.check_finite,
                               extra={"priority_levels": b.priority_levels, "idle_dispatch": b.idle_dispatch})
    import ray

    if not ray.is_initialized():
        import logging

        ray.init(address=address, logging_level=logging.ERROR)
    return deploy(engine, app_name=app_name, http_host=http_host, http_port=http_port,
                  proxy_location=proxy_location, num_replicas=replicas, num_cpus=num_cpus, settings=settings)
