"""Prometheus metrics of the server, per model and version (``prometheus_client``, imported lazily).

Exposed on the metrics port as Prometheus text (``GET /metrics``). Histograms, not
summaries, so they aggregate across servers::

  tensorforge_requests_total{model,version,outcome}   outcome: success | rejected (queue full) | timed_out |
                                                      cancelled (client went away) | backend_error |
                                                      bad_request | unavailable (model stopping) |
                                                      shed (deadline unmeetable, failed before compute)
  tensorforge_request_duration_seconds{model,version} successful requests, receipt → response encoded
  tensorforge_queue_duration_seconds{model,version,phase}
                                                      phase: batch_fill (an instance was free, the batch
                                                      was filling) | instance (all instances were busy)
  tensorforge_compute_duration_seconds{model,version} per batch, merge + model + split
  tensorforge_batch_size{model,version}               rows per executed batch
  tensorforge_batch_fill_ratio{model,version}         rows / max_batch_size per executed batch
  tensorforge_queue_depth, tensorforge_inflight_requests, tensorforge_busy_instances   gauges, read at scrape
  tensorforge_restarts_total{model,version,part}   instance processes / queue-timeout threads restarted
  tensorforge_batches_dispatched_early_total{model,version}   batches sent before their window closed
                                                      because waiting could not help a deadline
  tensorforge_batch_compute_estimate_seconds{model,version,rows}   the live batch curve (rows → compute)
  tensorforge_sequence_tokens_total{model,version,kind}   positions sent to a padded sequence model
                                                      (serve/padding.py), kind: real | padding
  tensorforge_padding_waste_ratio{model,version}      padding / all positions sent so far (gauge)

The request counts are not kept here: ``tensorforge_requests_total`` is read at scrape time from each
loaded model's batcher (:meth:`~tensorforge.serve.batching.DynamicBatcher.stats`, the one store of
counts), the same numbers the statistics endpoint reports (:func:`outcome_counts`), so the two always
agree. A model version's series go when it is unloaded, and start again from 0 if it is loaded again
(a counter reset, which Prometheus' ``rate`` handles). The histograms are fed per batch and per request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator

from .batching import BatchRecord

if TYPE_CHECKING:
    from .repository import ModelVersion

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15,
                     0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128, 256, 512)
FILL_BUCKETS = (0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0)
OUTCOMES = ("success", "rejected", "timed_out", "cancelled", "backend_error", "bad_request", "unavailable", "shed")


def outcome_counts(stats: dict[str, Any]) -> dict[str, int]:
    """Requests by outcome (:data:`OUTCOMES`) from a batcher's ``stats()``: success is a response sent;
    cancelled counts the client leaving both before its batch started and after (its result discarded);
    unavailable, the requests still queued when the model was stopped."""
    return {"success": stats["served"], "rejected": stats["rejected"], "timed_out": stats["timed_out"],
            "cancelled": stats["cancelled"] + stats["client_gone"], "backend_error": stats["backend_error"],
            "bad_request": stats["bad_request"], "unavailable": stats["closed"], "shed": stats["shed"]}


class ServerMetrics:
    """The server's registry (its own, so several servers in one process never clash)."""

    def __init__(self, loaded: Callable[[], "list[ModelVersion]"]) -> None:
        from prometheus_client import CollectorRegistry, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["model", "version"]
        self.latency = Histogram("tensorforge_request_duration_seconds", "Successful request latency in the "
                                 "server, from receipt to encoded response", labels, buckets=LATENCY_BUCKETS_S,
                                 registry=self.registry)
        self.queue = Histogram("tensorforge_queue_duration_seconds", "Time a request spent queued, by phase: "
                               "batch_fill (waiting for the batch to fill) or instance (waiting for a free "
                               "instance)", labels + ["phase"], buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.compute = Histogram("tensorforge_compute_duration_seconds", "Time to run one batch (merge, model, "
                                 "split)", labels, buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.batch_size = Histogram("tensorforge_batch_size", "Rows per executed batch", labels,
                                    buckets=BATCH_BUCKETS, registry=self.registry)
        self.fill = Histogram("tensorforge_batch_fill_ratio", "Rows per executed batch / max_batch_size", labels,
                              buckets=FILL_BUCKETS, registry=self.registry)
        self.registry.register(_FromBatchers(loaded))
        self._http: Any = None

    def observer(self, model: str, version: str) -> "ModelMetrics":
        return ModelMetrics(self, model, version)

    def text(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)  # type: ignore[no-any-return]

    def serve(self, host: str, port: int) -> int:
        """Start the metrics HTTP endpoint on its own thread; returns the bound port."""
        from prometheus_client import start_http_server

        from ..errors import ServingError

        try:
            server, _thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:   # a port in use: one ServingError naming the setting, as for HTTP and gRPC
            raise ServingError(f"cannot listen for metrics on {host}:{port} ({exc}); pick another `metrics_port` "
                               "(0 = any free port)") from exc
        self._http = server
        return int(server.server_port)

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None


class ModelMetrics:
    """One model version's histogram children (label lookups done once) — also its batcher's observer."""

    def __init__(self, metrics: ServerMetrics, model: str, version: str) -> None:
        self.model, self.version = model, version
        self._latency = metrics.latency.labels(model, version)
        self._fill_wait = metrics.queue.labels(model, version, "batch_fill")
        self._instance_wait = metrics.queue.labels(model, version, "instance")
        self._compute = metrics.compute.labels(model, version)
        self._batch = metrics.batch_size.labels(model, version)
        self._ratio = metrics.fill.labels(model, version)

    # BatcherObserver
    def batch_done(self, record: BatchRecord) -> None:
        self._compute.observe(record.compute_s)
        self._batch.observe(record.rows)
        self._ratio.observe(record.rows / record.max_batch_size)
        for fill, wait in zip(record.queue_fill_s, record.queue_instance_s):
            self._fill_wait.observe(fill)
            self._instance_wait.observe(wait)

    def succeeded(self, latency_s: float) -> None:
        """A response was sent (the adapter counts it in the batcher; this is its latency)."""
        self._latency.observe(latency_s)


class _FromBatchers:
    """Request counts by outcome, queue depth, in-flight requests and busy instances, read from the
    batchers at scrape time."""

    def __init__(self, loaded: Callable[[], "list[ModelVersion]"]) -> None:
        self._loaded = loaded

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        requests = CounterMetricFamily("tensorforge_requests", "Inference requests by outcome",
                                       labels=["model", "version", "outcome"])
        families = {
            "queue_depth": GaugeMetricFamily("tensorforge_queue_depth", "Requests waiting in the queue",
                                             labels=["model", "version"]),
            "in_flight": GaugeMetricFamily("tensorforge_inflight_requests", "Requests in executing batches",
                                           labels=["model", "version"]),
            "busy_instances": GaugeMetricFamily("tensorforge_busy_instances", "Instances running a batch",
                                                labels=["model", "version"]),
        }
        restarts = CounterMetricFamily("tensorforge_restarts", "Internal parts restarted after they died: "
                                       "an instance's child process, the batcher's queue-timeout thread",
                                       labels=["model", "version", "part"])
        tokens = CounterMetricFamily("tensorforge_sequence_tokens", "Sequence positions sent to a padded "
                                     "sequence model, by kind: real tokens or padding", labels=["model", "version",
                                                                                                "kind"])
        waste = GaugeMetricFamily("tensorforge_padding_waste_ratio", "Padding / all sequence positions sent to "
                                  "the model so far", labels=["model", "version"])
        early = CounterMetricFamily("tensorforge_batches_dispatched_early", "Batches sent before their queue-delay "
                                    "window closed because waiting could not help a deadline",
                                    labels=["model", "version"])
        curve = GaugeMetricFamily("tensorforge_batch_compute_estimate_seconds", "The batch curve the scheduler "
                                  "plans deadlines with: estimated compute seconds per batch size (measured at load, "
                                  "refreshed from live batches)", labels=["model", "version", "rows"])
        for mv in self._loaded():
            padding = getattr(getattr(mv, "grouping", None), "padding_stats", None)
            if padding is not None:
                p = padding()
                tokens.add_metric([mv.name, mv.version, "real"], p["real_tokens"])
                tokens.add_metric([mv.name, mv.version, "padding"], p["padding_tokens"])
                waste.add_metric([mv.name, mv.version], p["waste_ratio"])
            stats = mv.batcher.stats()
            early.add_metric([mv.name, mv.version], stats["dispatched_early"])
            for rows, ms in stats["batch_curve"]["points_ms"].items():
                curve.add_metric([mv.name, mv.version, rows], ms / 1000.0)
            for outcome, count in outcome_counts(stats).items():
                requests.add_metric([mv.name, mv.version, outcome], count)
            for key, family in families.items():
                family.add_metric([mv.name, mv.version], stats[key])
            restarts.add_metric([mv.name, mv.version, "queue_timeout_thread"], stats["thread_restarts"])
            restarts.add_metric([mv.name, mv.version, "instance_process"],
                                sum(getattr(i, "restarts", 0) for i in mv.instances))
        yield requests
        yield from families.values()
        yield restarts
        yield early
        yield curve
        yield tokens
        yield waste
