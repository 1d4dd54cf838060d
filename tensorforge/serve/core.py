"""What the HTTP and gRPC adapters share: model lookup, request checks, submission, metadata, statistics.

The adapters stay thin (decode → :meth:`ServingCore.submit` → encode); every rule about
*what* a valid request is lives here once, so both protocols give the same answer with
the same message. :func:`error_status` maps TensorForge errors onto HTTP status codes
and gRPC status names.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import numpy as np

from ..core.feeds import check_feeds
from ..errors import (
    ConfigError,
    EngineFileError,
    InputError,
    ModelError,
    ModelNotFound,
    ModelUnavailable,
    QueueFullError,
    RequestTimeout,
)
from .config import ServerConfig
from .metrics import ModelMetrics, ServerMetrics, outcome_counts
from .protocol import InferRequest, datatype_of
from .repository import ModelRepository, ModelVersion
from .text import text_request

EXTENSIONS = ["binary_tensor_data", "model_repository", "statistics", "schedule_policy"]
_STATUS: list[tuple[type[BaseException], int, str]] = [
    (InputError, 400, "INVALID_ARGUMENT"), (ConfigError, 400, "INVALID_ARGUMENT"),
    (EngineFileError, 400, "INVALID_ARGUMENT"), (ModelError, 400, "INVALID_ARGUMENT"),
    (ModelNotFound, 404, "NOT_FOUND"), (QueueFullError, 503, "UNAVAILABLE"), (ModelUnavailable, 503, "UNAVAILABLE"),
    (RequestTimeout, 504, "DEADLINE_EXCEEDED"),
]


def error_status(exc: BaseException) -> tuple[int, str]:
    """(HTTP status, gRPC status name) for an exception; anything unexpected is a 500 / INTERNAL."""
    for cls, http, grpc in _STATUS:
        if isinstance(exc, cls):
            return http, grpc
    return 500, "INTERNAL"


def error_text(exc: BaseException) -> str:
    _, name = error_status(exc)
    return str(exc) if name != "INTERNAL" else f"model execution failed: {type(exc).__name__}: {exc}"


class ServingCore:
    """The protocol-independent server: a repository, its metrics, and the request rules."""

    def __init__(self, repository: ModelRepository, metrics: ServerMetrics, config: ServerConfig) -> None:
        from .. import __version__

        self.repository = repository
        self.metrics = metrics
        self.config = config
        self.version = __version__
        self.shutting_down = False
        self._model_metrics: dict[tuple[str, str], ModelMetrics] = {}

    # -- server -----------------------------------------------------------------------------------
    def ready(self) -> bool:
        return not self.shutting_down

    def server_metadata(self) -> dict[str, Any]:
        return {"name": "tensorforge", "version": self.version, "extensions": list(EXTENSIONS)}

    # -- models -----------------------------------------------------------------------------------
    def model(self, name: str, version: str | None = None) -> ModelVersion:
        return self.repository.get(name, version or None)

    def model_ready(self, name: str, version: str | None = None) -> bool:
        try:
            self.check_model_ready(name, version)
        except (ModelNotFound, ModelUnavailable):
            return False
        return True

    def check_model_ready(self, name: str, version: str | None = None) -> ModelVersion:
        """The model version if it is ready to serve; otherwise the reason, as the error the adapters map:
        ModelNotFound (404) for a name the repository does not hold or a version it has not loaded,
        ModelUnavailable (503) for a model it holds but has not loaded (or unloaded), or a stopping server."""
        try:
            mv = self.model(name, version)
        except ModelNotFound as exc:
            if version or name not in self.repository.names():
                raise
            raise ModelUnavailable(f"{exc}; load it with POST /v2/repository/models/{name}/load") from None
        if self.shutting_down:
            raise ModelUnavailable(f"model {name!r} is not ready: the server is shutting down")
        return mv

    def model_metadata(self, mv: ModelVersion) -> dict[str, Any]:
        return {"name": mv.name, "versions": self.repository.versions(mv.name) or [mv.version], "platform": mv.platform,
                "inputs": [_tensor_meta(s, mv.batchable) for s in mv.inputs]
                + ([mv.text.metadata()] if mv.text is not None else []),     # raw text, tokenized here (text.py)
                "outputs": [_tensor_meta(s, mv.batchable) for s in mv.outputs]}

    def model_config(self, mv: ModelVersion) -> dict[str, Any]:
        """Triton-style config JSON (the parts that apply), plus our own settings under ``tensorforge``."""
        b = mv.config.batcher
        return {"name": mv.name, "platform": mv.platform, "backend": mv.platform,
                "max_batch_size": b.max_batch_size if mv.batchable else 0,
                "input": [_tensor_config(s, mv.batchable) for s in mv.inputs],
                "output": [_tensor_config(s, mv.batchable) for s in mv.outputs],
                "dynamic_batching": {"preferred_batch_size": list(b.preferred_batch_sizes),
                                     "max_queue_delay_microseconds": int(b.max_queue_delay_ms * 1000),
                                     "priority_levels": b.priority_levels,
                                     "default_queue_policy": {"max_queue_size": b.max_queue_size}},
                "instance_group": [{"count": b.instances, "kind": "KIND_CPU"}],
                "tensorforge": mv.config.to_dict()}

    # -- inference ---------------------------------------------------------------------------------
    def validate(self, mv: ModelVersion, request: InferRequest) -> None:
        """Check the request against the model: its inputs by the one feed check the Python session uses
        too (:func:`~tensorforge.core.feeds.check_feeds`: names, dtypes, shapes, batch, values, and the
        engine's shape profiles — a length past the profile's max is a 400 naming input, shape and profile,
        never a padded batch the engine refuses), then the outputs it asks for. InputError names the problem."""
        check_feeds(request.inputs, mv.inputs, model=mv.name, check_finite=mv.config.check_finite,
                    max_batch=mv.config.batcher.max_batch_size if mv.batchable else None, profiles=mv.profiles)
        if request.outputs is not None:
            known = [s.name for s in mv.outputs]
            bad = [n for n, _ in request.outputs if n not in known]
            if bad:
                raise InputError(f"model {mv.name!r} has no output(s) {bad}; its outputs are {known}")

    def submit(self, mv: ModelVersion, request: InferRequest) -> "Future[dict[str, np.ndarray]]":
        """Tokenize a ``text`` input (text.py), validate and queue; raises InputError / QueueFullError /
        ModelUnavailable at once."""
        try:
            request = text_request(mv.name, mv.text, mv.inputs, request, mv.config.batcher.max_batch_size)
            self.validate(mv, request)
            levels = mv.config.batcher.priority_levels
            if request.priority > levels:
                raise InputError(f"priority {request.priority} is out of range: model {mv.name!r} has {levels} "
                                 f"level(s), 1 (highest) to {levels}; 0 means the default (1)")
            timeout_ms = request.timeout_us / 1000.0 if request.timeout_us else None
            return mv.batcher.submit(request.inputs, priority=max(request.priority - 1, 0), timeout_ms=timeout_ms)
        except InputError:
            self.bad_request(mv)
            raise

    # -- per-request accounting (adapters call these) -------------------------------------------------
    # The counts go to the model version's batcher, their one store (statistics and Prometheus read them
    # there); the metrics get only the latency, for their histogram.
    def _metrics(self, mv: ModelVersion) -> ModelMetrics:
        key = (mv.name, mv.version)
        m = self._model_metrics.get(key)
        if m is None:
            m = mv.observer if isinstance(mv.observer, ModelMetrics) else self.metrics.observer(mv.name, mv.version)
            self._model_metrics[key] = m
        return m

    def succeeded(self, mv: ModelVersion, latency_s: float) -> None:
        mv.batcher.count_request("served", latency_s)
        self._metrics(mv).succeeded(latency_s)

    def bad_request(self, mv: ModelVersion) -> None:
        mv.batcher.count_request("bad_request")

    def client_gone(self, mv: ModelVersion) -> None:
        """The client went away after its batch had started: the result was computed, then discarded."""
        mv.batcher.count_request("client_gone")

    # -- statistics ---------------------------------------------------------------------------------------
    def statistics(self, name: str | None = None, version: str | None = None) -> dict[str, Any]:
        """Triton's statistics JSON for one model (or all loaded ones), plus a ``tensorforge`` block."""
        if name:
            models = [self.model(name, version)] if version else [
                mv for mv in self.repository.loaded() if mv.name == name]
            if not models:
                self.model(name)       # raises ModelNotFound with the list of loaded models
        else:
            models = self.repository.loaded()
        return {"model_stats": [self._model_stats(mv) for mv in sorted(models, key=lambda m: (m.name, m.version))]}

    def _model_stats(self, mv: ModelVersion) -> dict[str, Any]:
        padding = getattr(getattr(mv, "grouping", None), "padding_stats", None)
        s = mv.batcher.stats()
        outcomes = outcome_counts(s)          # the numbers tensorforge_requests_total shows
        failed = sum(n for outcome, n in outcomes.items() if outcome != "success")
        executed = s["success"] + s["backend_error"]

        def dur(count: int, ns: int) -> dict[str, int]:
            return {"count": count, "ns": ns}

        return {
            "name": mv.name, "version": mv.version, "last_inference": s["last_batch_unix_ms"],
            "inference_count": s["rows"], "execution_count": s["batches"],
            "inference_stats": {
                "success": dur(outcomes["success"], s["served_ns"]), "fail": dur(failed, 0),
                "queue": dur(executed, s["queue_fill_ns"] + s["queue_instance_ns"]),
                "compute_input": dur(s["batches"], 0), "compute_infer": dur(s["batches"], s["compute_ns"]),
                "compute_output": dur(s["batches"], 0), "cache_hit": dur(0, 0), "cache_miss": dur(0, 0)},
            "batch_stats": [{"batch_size": rows, "compute_input": dur(b["count"], 0),
                             "compute_infer": dur(b["count"], b["compute_ns"]), "compute_output": dur(b["count"], 0)}
                            for rows, b in s["batch_sizes"].items()],
            "tensorforge": {k: (outcomes if k == "cancelled" else s)[k] for k in (
                "rejected", "timed_out", "cancelled", "backend_error", "closed", "queue_fill_ns", "queue_instance_ns",
                "queue_depth", "in_flight", "busy_instances", "instances", "bad_request")}
            | ({"padding": padding()} if padding is not None else {}),
        }


def _tensor_meta(spec: Any, batchable: bool) -> dict[str, Any]:
    return {"name": spec.name, "datatype": datatype_of(spec.dtype),
            "shape": [d if isinstance(d, int) else -1 for d in spec.shape]}


def _tensor_config(spec: Any, batchable: bool) -> dict[str, Any]:
    dims = [d if isinstance(d, int) else -1 for d in spec.shape]
    return {"name": spec.name, "data_type": "TYPE_" + datatype_of(spec.dtype).replace("BYTES", "STRING"),
            "dims": dims[1:] if batchable else dims}

