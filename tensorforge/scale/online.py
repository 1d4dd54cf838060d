"""Online serving on Ray Serve: one deployment per engine, TensorForge's batcher inside each replica.

Each replica is the single-machine server minus its listeners: it loads the engine (shipped as
bytes, :mod:`.blob`) into a :class:`~tensorforge.serve.repository.ModelRepository` — instances and
the :class:`~tensorforge.serve.batching.DynamicBatcher` exactly as ``tensorforge serve`` builds
them — and answers HTTP through the server's own ASGI app (:class:`~tensorforge.serve.http.HttpApp`),
mounted as the replica's Ray Serve ingress. So the KServe v2 API is the same one, route for route:
``/v2/models/<name>/infer`` (JSON and the binary tensor extension), metadata, ready, statistics,
and the same 400s naming the problem (``core/feeds.py``'s check, via ``serve/core.py``); the
stock tritonclient talks to the Ray Serve proxy unchanged.

Why our batcher and not Ray Serve's ``@serve.batch``: ours dispatches a lone request on an idle
instance at once (``idle_dispatch``) instead of waiting out the window, runs several instances per
replica, bounds its queue (503 + Retry-After instead of unbounded growth), honours per-request
timeouts and priorities, and merges rows without a Python loop per request. ``@serve.batch``
waits ``batch_wait_timeout_s`` for every batch and runs one batch at a time per replica by default;
``benchmarks/scale_ray.py`` measures the two side by side.

Scaling: ``num_replicas`` fixed, or ``"auto"`` — Ray Serve's autoscaler on ongoing requests per
replica (its queue depth), targeting one full batch per instance in flight.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ConfigError
from .blob import EngineBlob, require_ray

__all__ = ["KServeReplica", "ReplicaSettings", "deploy", "serve_deployment"]


@dataclass(frozen=True)
class ReplicaSettings:
    """What each replica runs: the batcher and instance settings of ``serve/config.py``'s ModelConfig."""

    max_batch_size: int = 8
    batch_wait_timeout_s: float = 0.005          # the batcher's max_queue_delay_ms, in Ray's unit
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_size: int = 256
    instances: int = 1                           # concurrent model instances (threads) per replica
    threads_per_instance: int | None = None      # ORT intra-op threads; None: the replica's CPUs / instances
    default_timeout_ms: float | None = None
    check_finite: bool = True
    extra: dict[str, Any] = field(default_factory=dict)   # any other ModelConfig key, passed through

    def model_config(self) -> dict[str, Any]:
        """The flat ModelConfig JSON a replica loads (plain data: it travels to the replicas as is)."""
        d = asdict(self)
        extra = d.pop("extra")
        d["max_queue_delay_ms"] = d.pop("batch_wait_timeout_s") * 1000.0
        d["preferred_batch_sizes"] = list(d["preferred_batch_sizes"])
        if d["threads_per_instance"] is None:
            del d["threads_per_instance"]
        return {**d, **extra}


class ProxiedApp:
    """The server's ASGI app behind Ray Serve's proxy, minus one remote call per request.

    HttpApp watches ``receive()`` for a disconnect while a request is queued. Behind Ray Serve each
    ``receive()`` is a call to the proxy actor, so that watch costs a long-poll RPC per request. Here
    ``receive()`` after the last body chunk waits locally instead: a client that leaves is still seen,
    because Ray Serve cancels the request's task on disconnect, and the cancellation reaches the
    batcher's future (``asyncio.wrap_future``), which drops the request if it is still queued.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body_done = False

        async def receive_body_only() -> dict[str, Any]:
            nonlocal body_done
            if body_done:
                await asyncio.Event().wait()        # never set: ends only by cancellation
            message: dict[str, Any] = await receive()
            if message.get("type") == "http.request" and not message.get("more_body", False):
                body_done = True
            return message

        await self.app(scope, receive_body_only, send)


class KServeReplica:
    """One Ray Serve replica: the engine in a one-model repository, its batcher, the KServe ASGI app.

    Plain class (no Ray import here): :func:`serve_deployment` wraps it with ``serve.ingress()``
    and ``serve.deployment``; Ray calls ``__serve_build_asgi_app__`` after ``__init__``.
    """

    def __init__(self, name: str, data: bytes, model_config: dict[str, Any], cpus: float | None = None) -> None:
        from ..serve.config import ModelConfig, ServerConfig
        from ..serve.core import ServingCore
        from ..serve.metrics import ServerMetrics
        from ..serve.repository import ModelRepository

        config = dict(model_config)
        if "threads_per_instance" not in config and cpus:
            # the replica's CPU share, not the host's cores: Ray packs several replicas on one node
            config["threads_per_instance"] = max(1, int(cpus) // int(config.get("instances", 1)))
        self._dir = tempfile.mkdtemp(prefix="tf-replica-")
        path = EngineBlob(name, data).materialize(self._dir)
        self.metrics = ServerMetrics(lambda: self.repository.loaded())
        self.repository = ModelRepository([path], base_config=ModelConfig.from_dict(config),
                                          observer_factory=self.metrics.observer)
        self.repository.load_all()
        self.repository.get(name)             # raises with the load's reason if the engine did not load
        # listeners off: the Ray Serve proxy owns the sockets; the core only needs the body limits
        self.core = ServingCore(self.repository, self.metrics,
                                ServerConfig(http_port=None, grpc_port=None, metrics_port=None))
        self.name = name

    def __serve_build_asgi_app__(self) -> Any:
        from ..serve.http import HttpApp

        return ProxiedApp(HttpApp(self.core))

    def check_health(self) -> None:
        """Ray Serve's health probe: fails (and the replica is replaced) when the model is gone."""
        self.core.check_model_ready(self.name)

    def stats(self) -> dict[str, Any]:
        """The batcher's counters (requests, batches, rows, queue depth) for a handle caller or a test."""
        return self.repository.get(self.name).batcher.stats()

    def describe(self) -> dict[str, Any]:
        """Where this replica runs (Ray node, process) and its batcher's counters, for a handle caller."""
        import ray

        return {"node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid(), "stats": self.stats()}

    def __del__(self) -> None:
        repository = getattr(self, "repository", None)
        if repository is not None:
            repository.close(drain=True, timeout_s=5.0)
        folder = getattr(self, "_dir", None)
        if folder:
            shutil.rmtree(folder, ignore_errors=True)


def serve_deployment(engine: "str | os.PathLike[str] | EngineBlob", *, num_replicas: "int | str" = 1,
                     max_batch_size: int = 8, batch_wait_timeout_s: float = 0.005, instances: int = 1,
                     threads_per_instance: int | None = None, max_queue_size: int = 256,
                     preferred_batch_sizes: tuple[int, ...] = (), name: str | None = None,
                     num_cpus: float = 1.0, max_ongoing_requests: int | None = None, max_replicas: int = 4,
                     max_replicas_per_node: int | None = None, settings: ReplicaSettings | None = None) -> Any:
    """A Ray Serve application serving ``engine`` over the KServe v2 HTTP API.

    ``num_replicas``: an int, or ``"auto"`` (1..``max_replicas``, scaled on ongoing requests per
    replica). ``num_cpus``: Ray CPUs per replica (its ORT threads default to that share; 0 reserves none,
    so the replica leaves a node's CPUs to Ray Data jobs and its threads follow ModelConfig's default).
    ``max_ongoing_requests``: requests the proxy lets into one replica at once (default: enough for
    every instance to fill a batch and queue the next). ``max_replicas_per_node``: spread replicas over
    nodes (1: one per node). ``settings`` overrides the batcher arguments.

    Run it with ``ray.serve.run(app, name=..., route_prefix="/")``, or use :func:`deploy`.
    """
    require_ray("serve")
    from ray import serve

    blob = EngineBlob.read(engine, name)
    if settings is None:
        settings = ReplicaSettings(max_batch_size=max_batch_size, batch_wait_timeout_s=batch_wait_timeout_s,
                                   preferred_batch_sizes=tuple(preferred_batch_sizes), max_queue_size=max_queue_size,
                                   instances=instances, threads_per_instance=threads_per_instance)
    if settings.batch_wait_timeout_s < 0:
        raise ConfigError(f"batch_wait_timeout_s must be >= 0, got {settings.batch_wait_timeout_s}")
    if num_cpus < 0:
        raise ConfigError(f"num_cpus must be >= 0 (Ray CPUs per replica; 0 reserves none), got {num_cpus}")
    config = settings.model_config()
    from ..serve.config import ModelConfig

    ModelConfig.from_dict(config)             # bad settings fail here, on the driver, naming the key
    per_replica = settings.max_batch_size * settings.instances
    ongoing = max_ongoing_requests or max(16, 4 * per_replica)
    options: dict[str, Any] = {"name": f"tensorforge-{blob.name}", "max_ongoing_requests": ongoing,
                               "ray_actor_options": {"num_cpus": num_cpus}}
    if num_replicas == "auto":
        options["autoscaling_config"] = {"min_replicas": 1, "max_replicas": max_replicas,
                                         "target_ongoing_requests": per_replica}
    elif isinstance(num_replicas, int) and not isinstance(num_replicas, bool) and num_replicas >= 1:
        options["num_replicas"] = num_replicas
    else:
        raise ConfigError(f"num_replicas must be an int >= 1 or 'auto', got {num_replicas!r}")
    if max_replicas_per_node is not None:
        options["max_replicas_per_node"] = max_replicas_per_node
    deployment: Any = serve.deployment(serve.ingress()(KServeReplica))
    return deployment.options(**options).bind(blob.name, blob.data, config, num_cpus)


def deploy(engine: "str | os.PathLike[str] | EngineBlob", *, app_name: str = "tensorforge",
           http_host: str = "127.0.0.1", http_port: int = 8000, route_prefix: str = "/",
           proxy_location: str | None = None, **kwargs: Any) -> str:
    """Start Ray Serve's proxy (connecting to, or starting, a Ray cluster), run :func:`serve_deployment`
    under ``app_name``, wait until it is healthy; return the proxy's ``host:port`` for KServe clients.

    ``proxy_location``: Ray Serve's (``"EveryNode"``, its default, or ``"HeadOnly"`` — needed when
    several nodes share one machine and so one port)."""
    require_ray("serve")
    from ray import serve

    app = serve_deployment(engine, **kwargs)
    serve.start(proxy_location=proxy_location, http_options={"host": http_host, "port": http_port})
    serve.run(app, name=app_name, route_prefix=route_prefix)
    return f"{http_host}:{http_port}"
