"""The dynamic batcher: requests in, merged batches out to N concurrent instances, rows back to each caller.

It knows nothing of sockets (STYLE §3): ``submit`` takes a dict of NumPy arrays (rows
on axis 0) and returns a ``concurrent.futures.Future`` holding exactly that request's
rows of every output. The policy (which requests form a batch, when) is the pure
:class:`~tensorforge.serve.scheduling.BatchScheduler`; this module adds only the threads
the contract needs — one per instance, each pulling its next batch when it is free, plus
one timeout reaper started on the first request that carries a deadline.

>>> batcher = DynamicBatcher(session.run, BatcherConfig(max_batch_size=8))     # doctest: +SKIP
>>> rows = batcher.submit({"x": x}).result()["y"]                               # doctest: +SKIP

Semantics a caller can rely on:

* the queue holds at most ``max_queue_size`` requests; beyond, ``submit`` raises
  :class:`QueueFullError` at once (nothing grows without bound);
* ``future.cancel()`` before the request's batch starts drops it (a client that went
  away); a request whose timeout passes before its batch starts fails with
  :class:`RequestTimeout` — neither reaches the model; once a batch started it completes;
* an exception in ``execute`` fails that batch's requests only (each future raises it);
* requests are dispatched in submission order within a priority level (level 0 first) and
  grouping key; a request of another key does not hold up a batch (it waits for its own);
* with a deadline (``timeout_ms``, or the config's ``slo_ms`` / ``default_timeout_ms``), the
  batch is planned on a :class:`~tensorforge.serve.batch_curve.BatchCurve` (given, e.g.
  measured at load, and refreshed from every batch): it goes early when waiting cannot help,
  and a request that cannot make its deadline even alone is shed with
  :class:`~tensorforge.errors.DeadlineUnmeetable` (503) before any compute.

Every reading of the time and every timed wait goes through a :class:`BatcherClock`
(default :class:`MonotonicClock`: ``time.perf_counter`` and the condition's own timed
wait), so a test can drive the queue-delay window and the timeouts on a manual clock
and check them exactly. Only ``close``'s join limit and the wall-clock stamp of the last
batch read real time.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np

from ..errors import ConfigError, DeadlineUnmeetable, InputError, ModelUnavailable, QueueFullError, RequestTimeout
from .batch_curve import BatchCurve
from .batcher_config import BatcherConfig
from .limits import MAX_TIMEOUT_US
from .merge import Grouping, RowGrouping, request_rows
from .scheduling import BatchScheduler, QueuedRequest, _dead

Execute = Callable[[dict[str, np.ndarray]], Mapping[str, np.ndarray]]


class BatcherClock(Protocol):
    """The batcher's time base: seconds on a monotonic clock, and timed waits on its conditions."""

    def now(self) -> float:
        """The current time in seconds."""

    def wait(self, cond: threading.Condition, timeout_s: float | None) -> None:
        """Wait on ``cond`` (its lock held) until notified or ``timeout_s`` of this clock passes; may wake early."""


class MonotonicClock:
    """The real clock: ``time.perf_counter`` seconds; a wait is the condition's own timed wait."""

    def now(self) -> float:
        return time.perf_counter()

    def wait(self, cond: threading.Condition, timeout_s: float | None) -> None:
        cond.wait(timeout_s)


@dataclass(frozen=True)
class BatchRecord:
    """One executed batch, for metrics: per-request queue times split in two, and the compute time."""

    instance: int
    rows: int
    requests: int
    max_batch_size: int
    compute_s: float
    queue_fill_s: tuple[float, ...]       # per request: waiting for the batch to fill (an instance was free)
    queue_instance_s: tuple[float, ...]   # per request: waiting for a free instance
    error: str | None = None


class BatcherObserver(Protocol):
    """Receives each executed batch for the metrics' distributions (histograms); called from the
    batcher's threads, outside its lock. Counts are not its job: they live in the batcher alone
    (:meth:`DynamicBatcher.stats`), and the server's statistics and Prometheus counters read them there."""

    def batch_done(self, record: BatchRecord) -> None: ...


# The one store of request counts of a model version. The batcher counts what happens in the queue;
# the protocol adapters report, through :meth:`DynamicBatcher.count_request`, what happens around it:
# "served" (the response was encoded; "served_ns" sums receipt → response), "bad_request" (refused by the
# checks, before or instead of the queue) and "client_gone" (the client left after its batch had started).
# "shed": failed before compute, their deadline unmeetable; "dispatched_early": batches sent before their
# window closed because waiting could not help a deadline; "probes": doomed requests run on an idle batcher
# instead of shed, to refresh the batch curve (scheduling.py, rules 4-5).
_COUNTERS = ("submitted", "success", "rejected", "timed_out", "cancelled", "backend_error", "closed", "batches",
             "rows", "queue_fill_ns", "queue_instance_ns", "compute_ns", "served", "served_ns", "bad_request",
             "client_gone", "thread_restarts", "shed", "dispatched_early", "probes")
ADAPTER_OUTCOMES = ("served", "bad_request", "client_gone")


class DynamicBatcher:
    """Merges concurrent requests into batches and runs them on ``instances`` concurrent executors."""

    def __init__(self, execute: Execute | Sequence[Execute], config: BatcherConfig = BatcherConfig(), *,
                 observer: BatcherObserver | None = None, name: str = "model",
                 clock: BatcherClock | None = None, grouping: Grouping | None = None,
                 curve: BatchCurve | None = None) -> None:
        if callable(execute):
            executes: list[Execute] = [execute] * config.instances
        else:
            executes = list(execute)
            if len(executes) != config.instances:
                raise ConfigError(f"got {len(executes)} execute callables but config.instances is "
                                  f"{config.instances}; pass one callable per instance, or a single shared one")
        self.config = config
        self.name = name
        self._clock: BatcherClock = clock if clock is not None else MonotonicClock()
        self._grouping: Grouping = grouping if grouping is not None else RowGrouping()
        self._observer = observer
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._reap = threading.Condition(self._lock)
        # rows → compute seconds: given (measured at load), else learnt from the live batches
        self._curve = curve if curve is not None else BatchCurve()
        self._sched = BatchScheduler(config.max_batch_size, config.max_queue_delay_ms, config.preferred_batch_sizes,
                                     config.priority_levels, curve=self._curve)
        self._seq = itertools.count()
        self._deadlines: list[tuple[float, int, QueuedRequest]] = []
        self._reaper: threading.Thread | None = None
        self._closing, self._drain = False, True
        self._pending = self._in_flight = self._busy = self._idle = 0     # requests queued / running; instances
        # "all instances busy" clock: seconds with no idle instance, so queue time splits exactly into
        # waiting for a free instance (this clock advanced) and waiting for the batch to fill (it did not)
        self._all_busy_total_s = 0.0
        self._all_busy_since: float | None = self._clock.now()
        self._counts = dict.fromkeys(_COUNTERS, 0)
        self._batch_sizes: dict[int, list[int]] = {}    # rows -> [count, compute_ns]
        self._last_batch_unix_ms = 0
        self._threads = [threading.Thread(target=self._instance_loop, args=(i, fn), daemon=True,
                                          name=f"tf-batcher-{name}-{i}") for i, fn in enumerate(executes)]
        for t in self._threads:
            t.start()

    # -- submission ---------------------------------------------------------------------------
    def submit(self, inputs: Mapping[str, np.ndarray], *, priority: int = 0,
               timeout_ms: float | None = None) -> "Future[dict[str, np.ndarray]]":
        """Queue one request; its future holds exactly its rows of every output."""
        rows = request_rows(inputs)
        if rows > self.config.max_batch_size:
            raise InputError(f"request carries {rows} samples but max_batch_size is {self.config.max_batch_size}; "
                             "split it into smaller requests")
        if not 0 <= priority < self.config.priority_levels:
            raise InputError(f"priority {priority} is outside 0..{self.config.priority_levels - 1} "
                             f"(this model has {self.config.priority_levels} priority level(s); 0 is served first)")
        if timeout_ms is not None and not 0 < timeout_ms <= MAX_TIMEOUT_US / 1000:
            raise InputError(f"timeout_ms must be in (0, {MAX_TIMEOUT_US // 1000}], got {timeout_ms}")
        timeout = timeout_ms if timeout_ms is not None else self.config.default_deadline_ms()
        future: Future[dict[str, np.ndarray]] = Future()
        now = self._clock.now()
        request = QueuedRequest(inputs=inputs, rows=rows, priority=priority, future=future, arrival_s=now,
                                deadline_s=None if timeout is None else now + timeout / 1000.0,
                                signature=self._grouping.key(inputs), seq=next(self._seq))
        future.add_done_callback(self._on_done)
        with self._lock:
            if self._closing:
                raise ModelUnavailable(f"model {self.name!r} is shutting down and accepts no new requests")
            if self._pending >= self.config.max_queue_size:
                self._counts["rejected"] += 1
                rejected = True
            else:
                rejected = False
                self._pending += 1
                self._counts["submitted"] += 1
                request.busy_clock_s = self._busy_clock(now)
                self._sched.push(request)
                if request.deadline_s is not None:
                    self._track_deadline(request)
                self._work.notify()
        if rejected:
            raise QueueFullError(f"model {self.name!r}: queue full ({self.config.max_queue_size} requests waiting); "
                                 "retry shortly, or raise max_queue_size / add instances")
        return future

    def _track_deadline(self, request: QueuedRequest) -> None:
        assert request.deadline_s is not None
        heapq.heappush(self._deadlines, (request.deadline_s, request.seq, request))
        if self._reaper is None:
            self._reaper = threading.Thread(target=self._reaper_loop, daemon=True, name=f"tf-reaper-{self.name}")
            self._reaper.start()
        elif self._deadlines[0][2] is request:
            self._reap.notify()

    def _on_done(self, future: "Future[Any]") -> None:
        if future.cancelled():          # cancel() only succeeds while the request is still queued
            with self._lock:
                self._pending -= 1
                self._counts["cancelled"] += 1

    # -- instance threads ---------------------------------------------------------------------
    def _claim(self, requests: list[QueuedRequest]) -> list[QueuedRequest]:
        """Under the lock: take ownership of still-pending requests (cancelled ones are the canceller's)."""
        owned = [r for r in requests if r.future.set_running_or_notify_cancel()]
        self._pending -= len(owned)
        return owned

    def _instance_loop(self, index: int, execute: Execute) -> None:
        while True:
            expired: list[QueuedRequest] = []
            shed: list[QueuedRequest] = []
            batch: list[QueuedRequest] = []
            with self._lock:
                self._set_idle(+1)
                while True:
                    if self._closing and (not self._drain or self._pending == 0):
                        self._set_idle(-1)
                        self._work.notify_all()
                        return
                    now = self._clock.now()
                    idle = self.config.idle_dispatch and self._busy == 0
                    decision = self._sched.poll(now, flush=self._closing, idle=idle, quiet=self._busy == 0)
                    expired = self._claim(decision.expired)
                    shed = self._claim(decision.shed)
                    batch = self._claim(decision.batch)
                    if batch or expired or shed:
                        break
                    timeout = None if decision.wake_at_s is None else max(0.0, decision.wake_at_s - now)
                    self._clock.wait(self._work, timeout)
                busy_clock = self._busy_clock(now)
                self._set_idle(-1)
                self._counts["timed_out"] += len(expired)
                self._counts["shed"] += len(shed)
                if batch:
                    self._counts["dispatched_early"] += decision.early
                    self._counts["probes"] += decision.probe
                    self._busy += 1
                    self._in_flight += len(batch)
            self._fail_expired(expired)
            self._fail_shed(shed, now)
            if batch:
                self._run(index, execute, batch, now, busy_clock)

    def _set_idle(self, delta: int) -> None:
        now = self._clock.now()
        if delta > 0 and self._idle == 0 and self._all_busy_since is not None:
            self._all_busy_total_s += now - self._all_busy_since
            self._all_busy_since = None
        self._idle += delta
        if self._idle == 0:
            self._all_busy_since = now

    def _busy_clock(self, now: float) -> float:
        since = self._all_busy_since
        return self._all_busy_total_s + (now - since if since is not None else 0.0)

    def _run(self, index: int, execute: Execute, batch: list[QueuedRequest], dispatch: float,
             busy_clock: float) -> None:
        t0 = self._clock.now()
        error: BaseException | None = None
        parts: list[dict[str, np.ndarray]] = []
        try:
            inputs = [r.inputs for r in batch]
            outputs = execute(self._grouping.merge(inputs))
            parts = self._grouping.split(outputs, inputs)
        except Exception as exc:  # a backend failure fails this batch only
            error = exc
        compute = self._clock.now() - t0
        fill, wait = [], []
        for r in batch:
            queued = dispatch - r.arrival_s
            instance_wait = min(max(0.0, busy_clock - r.busy_clock_s), queued)
            wait.append(instance_wait)
            fill.append(queued - instance_wait)
        rows = sum(r.rows for r in batch)
        # Counts and metrics first, results second: whoever sees a result also sees it counted.
        with self._lock:
            self._busy -= 1
            self._in_flight -= len(batch)
            c = self._counts
            c["success" if error is None else "backend_error"] += len(batch)
            c["batches"] += 1
            c["rows"] += rows
            c["queue_fill_ns"] += int(sum(fill) * 1e9)
            c["queue_instance_ns"] += int(sum(wait) * 1e9)
            c["compute_ns"] += int(compute * 1e9)
            entry = self._batch_sizes.setdefault(rows, [0, 0])
            entry[0] += 1
            entry[1] += int(compute * 1e9)
            if error is None:
                self._curve.observe(rows, compute)
            self._last_batch_unix_ms = int(time.time() * 1000)
        if self._observer is not None:
            record = BatchRecord(instance=index, rows=rows, requests=len(batch),
                                 max_batch_size=self.config.max_batch_size, compute_s=compute,
                                 queue_fill_s=tuple(fill), queue_instance_s=tuple(wait),
                                 error=None if error is None else f"{type(error).__name__}: {error}")
            try:
                self._observer.batch_done(record)
            except Exception:  # metrics must never take an instance down
                pass
        if error is None:
            for request, part in zip(batch, parts):
                request.future.set_result(part)
        else:
            for request in batch:
                request.future.set_exception(error)

    def _fail_expired(self, expired: list[QueuedRequest]) -> None:
        for request in expired:
            waited_ms = (self._clock.now() - request.arrival_s) * 1000.0
            request.future.set_exception(RequestTimeout(
                f"model {self.name!r}: request timed out after {waited_ms:.1f} ms in the queue, before any "
                "instance started it; it was dropped (raise the timeout, or add instances)"))

    def _fail_shed(self, shed: list[QueuedRequest], now: float) -> None:
        for request in shed:
            assert request.deadline_s is not None
            with self._lock:
                compute_ms = self._curve.compute_s(request.rows) * 1000.0
            request.future.set_exception(DeadlineUnmeetable(
                f"model {self.name!r}: deadline {(request.deadline_s - request.arrival_s) * 1000.0:.0f} ms cannot be "
                f"met: {(now - request.arrival_s) * 1000.0:.0f} ms queued + {compute_ms:.0f} ms compute; shed before "
                "computing (retry later, relax the timeout / slo_ms, or add instances)"))

    def _reaper_loop(self) -> None:
        """Supervises the reaping: one bad deadline must not leave every later timeout unenforced."""
        while True:
            try:
                return self._reap_until_closed()
            except Exception:
                with self._lock:
                    self._counts["thread_restarts"] += 1
                logging.getLogger(__name__).exception("model %r: the queue-timeout thread failed; restarting it",
                                                      self.name)

    def _reap_until_closed(self) -> None:
        while True:
            with self._lock:
                while True:
                    if self._closing and self._pending == 0:
                        return
                    now = self._clock.now()
                    due = []
                    while self._deadlines and (self._deadlines[0][0] <= now or _dead(self._deadlines[0][2])):
                        request = heapq.heappop(self._deadlines)[2]
                        if not _dead(request):
                            due.append(request)
                    expired = self._claim(due)
                    if expired:
                        self._counts["timed_out"] += len(expired)
                        break
                    timeout = self._deadlines[0][0] - now if self._deadlines else None
                    self._clock.wait(self._reap, None if timeout is None else min(timeout, 3600.0))  # < TIMEOUT_MAX
            self._fail_expired(expired)

    # -- lifecycle and stats --------------------------------------------------------------------
    def close(self, drain: bool = True, timeout_s: float = 30.0) -> None:
        """Stop accepting requests; with ``drain`` run everything queued first (up to ``timeout_s``)."""
        with self._lock:
            self._closing = True
            self._drain = drain
            self._work.notify_all()
            self._reap.notify_all()
        if not drain:
            self._fail_queued()
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in self._threads):
            self._fail_queued()          # the drain ran out of time: fail what is still queued
        if self._reaper is not None:
            with self._lock:
                self._reap.notify_all()
            self._reaper.join(max(0.1, deadline - time.monotonic()))

    def _fail_queued(self) -> None:
        with self._lock:
            victims = self._claim(self._sched.drain())
            self._counts["closed"] += len(victims)
            self._work.notify_all()
            self._reap.notify_all()
        for request in victims:
            request.future.set_exception(ModelUnavailable(
                f"model {self.name!r} was shut down before this request ran; retry on another server"))

    @property
    def closed(self) -> bool:
        return self._closing

    def __enter__(self) -> "DynamicBatcher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(drain=True)

    def count_request(self, outcome: str, latency_s: float = 0.0) -> None:
        """Count what an adapter saw of one request (one of :data:`ADAPTER_OUTCOMES`); ``latency_s``, the
        receipt → response time of a served one."""
        if outcome not in ADAPTER_OUTCOMES:
            raise ValueError(f"unknown request outcome {outcome!r}; use one of {ADAPTER_OUTCOMES}")
        with self._lock:
            self._counts[outcome] += 1
            if outcome == "served":
                self._counts["served_ns"] += int(latency_s * 1e9)

    def stats(self) -> dict[str, Any]:
        """Cumulative counts (requests, batches, rows, ns) and live gauges (queue depth, in flight, busy)."""
        with self._lock:
            out: dict[str, Any] = dict(self._counts)
            out.update(queue_depth=self._pending, in_flight=self._in_flight, busy_instances=self._busy,
                       instances=self.config.instances, last_batch_unix_ms=self._last_batch_unix_ms,
                       batch_sizes={rows: {"count": c, "compute_ns": ns}
                                    for rows, (c, ns) in sorted(self._batch_sizes.items())},
                       batch_curve=self._curve.to_dict())
        return out
