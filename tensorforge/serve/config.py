"""Server and per-model settings: frozen dataclasses, read from and written to plain JSON.

A model's config file (``DIR/<model>/config.json`` in a repository, or the ``config``
parameter of a repository *load* request) is one flat JSON object; every key is optional::

    {"max_batch_size": 8, "max_queue_delay_ms": 10, "preferred_batch_sizes": [4, 8],
     "max_queue_size": 256, "instances": 2, "instance_kind": "thread", "threads_per_instance": 1,
     "default_timeout_ms": null, "slo_ms": null, "priority_levels": 2, "version_policy": "latest",
     "check_finite": true}

``slo_ms`` is the model's latency objective: the deadline of a request that sets no timeout of
its own. The batcher plans each batch against the deadlines (``serve/scheduling.py``, rules
4-5): it dispatches early when waiting cannot help, and sheds with 503 a request that can no
longer make its deadline, before computing it.

A sequence model served with padding (serve/padding.py) also takes ``"sequence_buckets"`` (length
bucket edges, e.g. ``[16, 32, 64, 128]``) and ``"max_padding_waste"`` (0..1, the most of a batch
that may be padding; 0.5 by default, powers of two).

``version_policy`` is ``"latest"`` (the highest numeric version only, the default),
``"all"``, or a list of version numbers. Unknown keys are refused with the list of known
ones, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from ..core.streams import threads_per_worker
from ..errors import ConfigError
from .batching import BatcherConfig

INSTANCE_KINDS = ("thread", "process")
HTTP_IMPLS = ("uvicorn", "wire")
_MODEL_KEYS = ("instance_kind", "threads_per_instance", "version_policy", "check_finite", "sequence_buckets",
               "max_padding_waste")


@dataclass(frozen=True)
class ModelConfig:
    """How one model is served: its batcher, its instances, which versions."""

    batcher: BatcherConfig = field(default_factory=BatcherConfig)
    instance_kind: str = "thread"                 # "thread" (one process, ORT releases the GIL) or "process"
    threads_per_instance: int | None = None       # ORT intra-op threads per instance; None: threads_per_worker
    version_policy: str | tuple[int, ...] = "latest"
    check_finite: bool = True                     # refuse NaN/Inf inputs with 400 (per request, before batching)
    sequence_buckets: tuple[int, ...] | None = None   # length bucket edges of a padded sequence model (padding.py)
    max_padding_waste: float | None = None        # cap on a batch's padded share; None: 0.5 without buckets

    def __post_init__(self) -> None:
        if self.sequence_buckets is not None:
            buckets = self.sequence_buckets
            if not isinstance(buckets, (list, tuple)) or not buckets or not all(
                    isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in buckets):
                raise ConfigError(f"sequence_buckets must be a list of lengths >= 1, e.g. [16, 32, 64, 128], "
                                  f"got {buckets!r}")
            object.__setattr__(self, "sequence_buckets", tuple(sorted(set(buckets))))
        if self.max_padding_waste is not None and not (
                isinstance(self.max_padding_waste, (int, float)) and 0 <= self.max_padding_waste <= 1):
            raise ConfigError(f"max_padding_waste must be a fraction 0..1 of padded positions (1: no cap), "
                              f"got {self.max_padding_waste!r}")
        if self.instance_kind not in INSTANCE_KINDS:
            raise ConfigError(f"instance_kind must be one of {list(INSTANCE_KINDS)}, got {self.instance_kind!r}")
        if self.threads_per_instance is not None and self.threads_per_instance < 1:
            raise ConfigError(f"threads_per_instance must be >= 1, got {self.threads_per_instance}")
        policy = self.version_policy
        if isinstance(policy, (list, tuple)):
            if not policy or not all(isinstance(v, int) and v >= 1 for v in policy):
                raise ConfigError(f"version_policy as a list must hold version numbers >= 1, got {list(policy)}")
            object.__setattr__(self, "version_policy", tuple(sorted(set(policy))))
        elif policy not in ("latest", "all"):
            raise ConfigError(f"version_policy must be 'latest', 'all' or a list of versions, got {policy!r}")

    def threads(self) -> int:
        """ORT intra-op threads for each instance: set, or this machine's cores shared among the instances."""
        if self.threads_per_instance is not None:
            return self.threads_per_instance
        return threads_per_worker(self.batcher.instances)

    def to_dict(self) -> dict[str, Any]:
        d = self.batcher.to_dict()
        d.update(instance_kind=self.instance_kind, threads_per_instance=self.threads_per_instance,
                 version_policy=list(self.version_policy) if isinstance(self.version_policy, tuple)
                 else self.version_policy, check_finite=self.check_finite,
                 sequence_buckets=list(self.sequence_buckets) if self.sequence_buckets is not None else None,
                 max_padding_waste=self.max_padding_waste)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base: "ModelConfig | None" = None) -> "ModelConfig":
        """Settings in ``data`` over ``base`` (or the defaults); unknown keys raise ConfigError."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"a model config must be a JSON object, got {type(data).__name__}")
        base = base or cls()
        batcher_keys = set(BatcherConfig.__dataclass_fields__)
        unknown = sorted(set(data) - batcher_keys - set(_MODEL_KEYS))
        if unknown:
            known = sorted(batcher_keys | set(_MODEL_KEYS))
            raise ConfigError(f"unknown model config key(s) {unknown}; known: {known}")
        batcher = {**base.batcher.to_dict(), **{k: v for k, v in data.items() if k in batcher_keys}}
        model = {k: data[k] for k in _MODEL_KEYS if k in data}
        if isinstance(model.get("version_policy"), list):
            model["version_policy"] = tuple(model["version_policy"])
        try:
            return replace(base, batcher=BatcherConfig.from_dict(batcher), **model)
        except TypeError as exc:
            raise ConfigError(f"bad model config {dict(data)}: {exc}") from exc

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "config", base: "ModelConfig | None" = None) -> "ModelConfig":
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ConfigError(f"{source}: not valid JSON ({type(exc).__name__}: {exc})") from None
        try:
            return cls.from_dict(data, base)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from exc

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], base: "ModelConfig | None" = None) -> "ModelConfig":
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the model config ({exc})") from exc
        return cls.from_json(text, str(path), base)


@dataclass(frozen=True)
class ServerConfig:
    """Where and how the server listens. Port 0 picks a free port; ``None`` turns that endpoint off."""

    host: str = "127.0.0.1"
    http_port: int | None = 8000
    grpc_port: int | None = 8001
    metrics_port: int | None = 8002
    auth_token: str | None = None           # when set, every call but health needs "Authorization: Bearer <token>"
    max_request_bytes: int = 64 * 2**20     # larger request bodies get 413 / RESOURCE_EXHAUSTED
    max_inflight_bytes: int | None = None   # HTTP request body bytes held at once, server-wide (then 503);
                                            # None: 8 x max_request_bytes
    drain_timeout_s: float = 30.0           # on stop/SIGTERM: how long in-flight requests may take to finish
    retry_after_s: int = 1                  # Retry-After on 503 (queue full)
    header_timeout_s: float = 30.0          # from a request's first byte to the end of its head (then 408, close)
    body_timeout_s: float = 120.0           # from the end of the head to the last body byte (then 408, close)
    keepalive_s: float = 60.0               # an idle connection (no request under way) closes after this
    max_connections: int = 1024             # open HTTP connections; one more gets 503 and is closed
    http_impl: str = "uvicorn"              # "uvicorn" (uvicorn_http.py) or "wire": our own HTTP/1.1 protocol
                                            # (wire.py), which reads binary tensor bodies without copies
    event_loop: str = "auto"                # "uvloop" | "asyncio" | "auto" (uvloop when installed)

    def __post_init__(self) -> None:
        for name in ("http_port", "grpc_port", "metrics_port"):
            port = getattr(self, name)
            if port is not None and not 0 <= port <= 65535:
                raise ConfigError(f"{name} must be 0..65535 (0 = any free port) or None (off), got {port}")
        if self.max_request_bytes < 1024:
            raise ConfigError(f"max_request_bytes must be >= 1024, got {self.max_request_bytes}")
        if self.max_inflight_bytes is not None and self.max_inflight_bytes < self.max_request_bytes:
            raise ConfigError(f"max_inflight_bytes ({self.max_inflight_bytes}) must be >= max_request_bytes "
                              f"({self.max_request_bytes}), or one largest request could never be served")
        if self.auth_token is not None and not self.auth_token.strip():
            raise ConfigError("auth_token is empty; pass a real token or none")
        if self.http_impl not in HTTP_IMPLS:
            raise ConfigError(f"http_impl must be one of {list(HTTP_IMPLS)}, got {self.http_impl!r}")
        if self.max_connections < 1:
            raise ConfigError(f"max_connections must be >= 1, got {self.max_connections}")
        if self.event_loop not in ("auto", "asyncio", "uvloop"):
            raise ConfigError(f"event_loop must be 'auto', 'asyncio' or 'uvloop', got {self.event_loop!r}")
        if self.drain_timeout_s < 0:
            raise ConfigError(f"drain_timeout_s must be >= 0, got {self.drain_timeout_s}")
        for name in ("header_timeout_s", "body_timeout_s", "keepalive_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0 seconds, got {getattr(self, name)}")

    def inflight_bytes(self) -> int:
        """The server-wide budget of request body bytes held at once."""
        return self.max_inflight_bytes if self.max_inflight_bytes is not None else 8 * self.max_request_bytes

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "http_port": self.http_port, "grpc_port": self.grpc_port,
                "metrics_port": self.metrics_port, "auth": self.auth_token is not None,
                "max_request_bytes": self.max_request_bytes, "max_inflight_bytes": self.inflight_bytes(),
                "drain_timeout_s": self.drain_timeout_s,
                "retry_after_s": self.retry_after_s, "header_timeout_s": self.header_timeout_s,
                "body_timeout_s": self.body_timeout_s, "keepalive_s": self.keepalive_s,
                "max_connections": self.max_connections, "http_impl": self.http_impl, "event_loop": self.event_loop}
