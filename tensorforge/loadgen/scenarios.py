"""The four MLPerf scenarios: how queries are issued, and the raw timestamps of a run.

* **single-stream** — one query of one sample; the next is issued when the last
  completes (closed loop). Metric: p90 latency.
* **multi-stream** — the same with queries of 8 samples. Metric: p99 per-query latency.
* **server** — queries of one sample at Poisson arrival times drawn up front at
  ``target_qps`` (open loop). Latency counts from each query's *scheduled* send time,
  so a target that falls behind cannot hide its queueing (no coordinated omission);
  a send that leaves later than scheduled is counted and reported. VALID only if the
  chosen percentile (p99) stays within ``latency_bound_ms``.
* **offline** — every sample is issued at once, at t0, in requests of the largest
  batch the target accepts, holding at most ``max_in_flight`` requests outstanding.
  Metric: samples per second.

A run lasts until both ``min_query_count`` queries and ``min_duration_s`` seconds are
reached (LoadGen's rule; defaults: the early-stopping minimum for the percentile — 64
for p90, 662 for p99 — and 5 s, sized for a small machine). Issuing happens in the
calling thread; completions are timestamped in the target's callback with
:func:`time.perf_counter_ns` (CLOCK_MONOTONIC on Linux). Every clock reading and wait
goes through a :class:`~.pacing.Clock` — the real one by default, or the target's own
``clock`` attribute when it has one (a simulated target runs on simulated time). The
verdict is computed by :mod:`.verdict` from the :class:`RunRecord` this module returns.
"""

from __future__ import annotations

import itertools
import math
import queue
import threading
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Mapping

import numpy as np

from ..errors import ConfigError
from .arrivals import ARRIVAL_KINDS, arrival_schedule
from .earlystop import DEFAULT_CONFIDENCE, min_queries_for_claim
from .pacing import MONOTONIC, Clock
from .targets import DoneFn, Target

__all__ = ["SCENARIOS", "ScenarioSettings", "RunRecord", "run_scenario", "measure_capacity"]

SCENARIOS: tuple[str, ...] = ("single-stream", "multi-stream", "server", "offline")
_DEFAULT_PERCENTILE = {"single-stream": 0.90, "multi-stream": 0.99, "server": 0.99, "offline": 0.90}
_NS = 1_000_000_000
ProgressFn = Callable[[float], None]


@dataclass(frozen=True)
class ScenarioSettings:
    """Everything that defines a run; ``None`` fields take the scenario's default (see :meth:`resolved`)."""

    scenario: str = "single-stream"
    target_qps: float | None = None            # server: the offered load
    latency_bound_ms: float | None = None      # server: required; others: optional claim to check
    percentile: float | None = None            # fraction: 0.9 (SS, offline), 0.99 (MS, server)
    samples_per_query: int | None = None       # 1 (SS, server), 8 (MS), target's max batch (offline request)
    min_query_count: int | None = None         # early-stopping minimum for the percentile; offline: 1
    min_duration_s: float = 5.0
    max_duration_s: float | None = None        # SS/MS: stop issuing after this long even if short
    max_query_count: int | None = None
    offline_sample_count: int | None = None    # offline: samples in the one big query
    offline_expected_sps: float | None = None  # offline: sizes the query (default: measured in warm-up)
    arrival: str = "poisson"
    seed: int = 0
    warmup_s: float = 0.5
    confidence: float = DEFAULT_CONFIDENCE
    late_threshold_us: float = 500.0           # a send later than this after its scheduled time is "late"
    drain_timeout_s: float = 60.0              # after the last send, wait this long for responses

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise ConfigError(f"unknown scenario {self.scenario!r}; choose one of {', '.join(SCENARIOS)}")
        if self.scenario == "server":
            if self.target_qps is None:
                raise ConfigError("the server scenario needs an offered load: target_qps=Q (or find_max=True to "
                                  "search it)")
            if self.latency_bound_ms is None:
                raise ConfigError("the server scenario needs a latency bound: latency_bound_ms=MS (e.g. 15)")
        if self.target_qps is not None and not (math.isfinite(self.target_qps) and self.target_qps > 0):
            raise ConfigError(f"`target_qps` must be > 0, got {self.target_qps}")
        if self.latency_bound_ms is not None and not self.latency_bound_ms > 0:
            raise ConfigError(f"`latency_bound_ms` must be > 0, got {self.latency_bound_ms}")
        if self.percentile is not None and not 0.0 < self.percentile < 1.0:
            raise ConfigError(f"`percentile` must be a fraction in (0, 1) such as 0.99, got {self.percentile}")
        for label, value in (("samples_per_query", self.samples_per_query), ("min_query_count", self.min_query_count),
                             ("max_query_count", self.max_query_count),
                             ("offline_sample_count", self.offline_sample_count)):
            if value is not None and value < 1:
                raise ConfigError(f"`{label}` must be >= 1, got {value}")
        if not (self.min_duration_s >= 0 and self.warmup_s >= 0 and self.drain_timeout_s > 0):
            raise ConfigError("`min_duration_s` and `warmup_s` must be >= 0 s, `drain_timeout_s` > 0 s")
        if self.max_duration_s is not None and self.max_duration_s <= 0:
            raise ConfigError(f"`max_duration_s` must be > 0, got {self.max_duration_s}")
        if self.arrival not in ARRIVAL_KINDS:
            raise ConfigError(f"unknown arrival process {self.arrival!r}; choose one of {', '.join(ARRIVAL_KINDS)}")
        if not 0.0 < self.confidence < 1.0:
            raise ConfigError(f"`confidence` must be in (0, 1), got {self.confidence}")

    def resolved(self, max_batch: int | None = None) -> "ScenarioSettings":
        """A copy with every default filled in (``max_batch``: the target's, for Offline requests)."""
        p = self.percentile if self.percentile is not None else _DEFAULT_PERCENTILE[self.scenario]
        spq = self.samples_per_query
        if spq is None:
            spq = {"single-stream": 1, "multi-stream": 8, "server": 1}.get(self.scenario, max_batch or 1)
        mq = self.min_query_count
        if mq is None:
            mq = 1 if self.scenario == "offline" else min_queries_for_claim(p, self.confidence)
        return replace(self, percentile=p, samples_per_query=spq, min_query_count=mq)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunRecord:
    """Raw timestamps of one run, in ``perf_counter_ns`` units; index = query number."""

    settings: ScenarioSettings              # resolved
    start_ns: int
    scheduled_ns: np.ndarray                # when each query was due
    sent_ns: np.ndarray                     # when it actually left
    done_ns: np.ndarray                     # when its (last) response arrived; -1: never
    samples: np.ndarray                     # samples per query
    errors: dict[int, str] = field(default_factory=dict)
    open_loop: bool = False
    warmup: dict[str, Any] = field(default_factory=dict)
    schedule: dict[str, Any] | None = None


def _clock_of(target: Target, clock: Clock | None) -> Clock:
    """The clock a run uses: the one passed, else the target's own (``target.clock``), else the real one."""
    if clock is not None:
        return clock
    own = getattr(target, "clock", None)
    return own if own is not None else MONOTONIC


class _Tracker:
    """Per-query completion bookkeeping shared by the issuing loops (lists: the cheapest stores)."""

    def __init__(self, clock: Clock, size: int = 0) -> None:
        self.now_ns = clock.now_ns
        self.done: list[int] = [-1] * size
        self.errors: dict[int, str] = {}
        self._count = itertools.count(1)
        self.expected = size
        self.all_done = threading.Event()
        self.completions: "queue.SimpleQueue[int]" = queue.SimpleQueue()

    def grow(self, size: int) -> None:
        if size > len(self.done):
            self.done.extend([-1] * (size - len(self.done)))

    def on_done(self, tag: int, error: BaseException | None, outputs: Mapping[str, np.ndarray] | None) -> None:
        self.done[tag] = self.now_ns()
        if error is not None:
            self.errors[tag] = f"{type(error).__name__}: {error}"
        self.completions.put(tag)
        if next(self._count) == self.expected:
            self.all_done.set()

    def next_completion(self, timeout_s: float | None) -> bool:
        """Take one completion, waiting at most ``timeout_s``; False if none came."""
        try:
            if timeout_s is not None and timeout_s <= 0:
                self.completions.get_nowait()
            else:
                self.completions.get(timeout=timeout_s)
        except queue.Empty:
            return False
        return True


class _SplitQuery:
    """One query carried by several requests: reports ``done`` once, when the last part completes."""

    __slots__ = ("tag", "left", "error", "done", "lock")

    def __init__(self, tag: int, parts: int, done: DoneFn) -> None:
        self.tag, self.left, self.done = tag, parts, done
        self.error: BaseException | None = None
        self.lock = threading.Lock()

    def part_done(self, tag: int, error: BaseException | None, outputs: Mapping[str, np.ndarray] | None) -> None:
        with self.lock:
            self.left -= 1
            if error is not None and self.error is None:
                self.error = error
            last = self.left == 0
        if last:
            self.done(self.tag, self.error, None)


def _splitter(target: Target, samples: int, done: DoneFn) -> Callable[[int], None]:
    """Issue a query of ``samples``: one request if the target takes it, else several; ``done`` once for all."""
    if samples <= target.max_batch:
        return lambda tag: target.issue(tag, samples, done)
    sizes = [target.max_batch] * (samples // target.max_batch)
    if samples % target.max_batch:
        sizes.append(samples % target.max_batch)

    def issue(tag: int) -> None:
        query = _SplitQuery(tag, len(sizes), done)
        for size in sizes:
            target.issue(tag, size, query.part_done)

    return issue


def _prepare(target: Target, s: ScenarioSettings) -> None:
    assert s.samples_per_query is not None
    sizes = {min(s.samples_per_query, target.max_batch)}
    if s.samples_per_query > target.max_batch and s.samples_per_query % target.max_batch:
        sizes.add(s.samples_per_query % target.max_batch)
    target.prepare(sizes)


def measure_capacity(target: Target, samples_per_request: int, duration_s: float,
                     window: int | None = None, *, clock: Clock | None = None) -> tuple[float, int]:
    """Saturate the target for ``duration_s`` (at most ``window`` requests outstanding): (samples/s, requests).

    The default window is the target's own estimate of how many requests keep it busy
    (:meth:`Target.saturating_window`): enough to saturate it, few enough that draining
    them at the end (which the measurement includes) stays short.
    """
    clock = _clock_of(target, clock)
    batch = min(samples_per_request, target.max_batch)
    window = max(1, min(window or target.saturating_window(batch), target.max_in_flight))
    target.prepare([batch])
    slots = threading.Semaphore(window)
    lock = threading.Lock()
    state = {"done": 0, "errors": 0}

    def done(tag: int, error: BaseException | None, outputs: Mapping[str, np.ndarray] | None) -> None:
        with lock:
            state["done"] += 1
            state["errors"] += error is not None
        slots.release()

    start = clock.now_ns()
    end = start + int(duration_s * _NS)
    issued = 0
    while clock.now_ns() < end or issued < 2:
        clock.wait(lambda t: slots.acquire(timeout=t), None)
        target.issue(issued, batch, done)
        issued += 1
    for _ in range(window):
        clock.wait(lambda t: slots.acquire(timeout=t), 60.0)
    elapsed = (clock.now_ns() - start) / _NS
    return state["done"] * batch / elapsed if elapsed > 0 else 0.0, issued


def _warmup(target: Target, s: ScenarioSettings, clock: Clock) -> dict[str, Any]:
    """Closed-loop queries for ``warmup_s`` (at least two); Offline measures throughput here instead."""
    assert s.samples_per_query is not None
    if s.scenario == "offline":
        sps, n = measure_capacity(target, s.samples_per_query, max(s.warmup_s, 0.05), clock=clock)
        return {"requests": n, "measured_sps": sps}
    tracker = _Tracker(clock)
    issue = _splitter(target, s.samples_per_query, tracker.on_done)
    end = clock.now_ns() + int(s.warmup_s * _NS)
    n = 0
    while n < 2 or clock.now_ns() < end:
        tracker.grow(n + 1)
        issue(n)
        if not clock.wait(tracker.next_completion, s.drain_timeout_s):
            break
        n += 1
    return {"queries": n, "errors": len(tracker.errors)}


def run_scenario(target: Target, settings: ScenarioSettings, progress: ProgressFn | None = None, *,
                 clock: Clock | None = None) -> RunRecord:
    """Warm up, then run one scenario against ``target``; returns the raw record (see :mod:`.verdict`).

    ``clock``: the time base (default: the target's ``clock`` if it has one, else the real monotonic clock).
    """
    clock = _clock_of(target, clock)
    s = settings.resolved(target.max_batch)
    _prepare(target, s)
    warm = _warmup(target, s, clock) if s.warmup_s > 0 or s.scenario == "offline" else {}
    if s.scenario in ("single-stream", "multi-stream"):
        record = _closed_loop(target, s, progress, clock)
    elif s.scenario == "server":
        record = _server(target, s, progress, clock)
    else:
        record = _offline(target, s, warm.get("measured_sps"), progress, clock)
    record.warmup = warm
    return record


def _stop_closed(s: ScenarioSettings, n: int, last_sent_ns: int, elapsed_ns: int) -> bool:
    """Stop once both minimums are met — LoadGen's duration rule looks at the last query's *issue* time."""
    assert s.min_query_count is not None
    if s.max_query_count is not None and n >= s.max_query_count:
        return True
    if s.max_duration_s is not None and elapsed_ns >= s.max_duration_s * _NS:
        return True
    return n >= s.min_query_count and n > 0 and last_sent_ns >= s.min_duration_s * _NS


def _closed_loop(target: Target, s: ScenarioSettings, progress: ProgressFn | None, clock: Clock) -> RunRecord:
    assert s.samples_per_query is not None and s.min_query_count is not None
    tracker = _Tracker(clock)
    issue = _splitter(target, s.samples_per_query, tracker.on_done)
    sent: list[int] = []
    min_ns = s.min_duration_s * _NS
    start = clock.now_ns()
    n = 0
    last_sent = start
    while not _stop_closed(s, n, last_sent - start, clock.now_ns() - start):
        tracker.grow(n + 1)
        last_sent = clock.now_ns()
        sent.append(last_sent)
        issue(n)
        if not clock.wait(tracker.next_completion, s.drain_timeout_s):
            tracker.errors[n] = f"no response within {s.drain_timeout_s:g} s"
            n += 1
            break
        n += 1
        if progress is not None and n % 32 == 0:
            frac_t = (last_sent - start) / min_ns if min_ns else 1.0
            progress(min(1.0, frac_t, n / s.min_query_count))
    sent_arr = np.asarray(sent, dtype=np.int64)
    return RunRecord(settings=s, start_ns=start, scheduled_ns=sent_arr, sent_ns=sent_arr.copy(),
                     done_ns=np.asarray(tracker.done[:n], dtype=np.int64),
                     samples=np.full(n, s.samples_per_query, dtype=np.int64), errors=tracker.errors)


def _server(target: Target, s: ScenarioSettings, progress: ProgressFn | None, clock: Clock) -> RunRecord:
    assert s.target_qps is not None and s.min_query_count is not None and s.samples_per_query is not None
    schedule = arrival_schedule(s.arrival, s.target_qps, min_count=s.min_query_count,
                                min_duration_s=s.min_duration_s, seed=s.seed, max_count=s.max_query_count)
    offsets = schedule.offsets_ns.tolist()
    n = len(offsets)
    tracker = _Tracker(clock, n)
    issue = _splitter(target, s.samples_per_query, tracker.on_done)
    sent = [0] * n
    lead_ns = 2_000_000   # the first query is due 2 ms after the start: time to enter the loop
    start = clock.now_ns() + lead_ns
    step = max(1, n // 100)
    with clock.pacer() as pacer:
        for i, offset in enumerate(offsets):
            due = start + offset
            sent[i] = pacer.wait_until(due)
            issue(i)
            if progress is not None and i % step == 0:
                progress(i / n)
    finished = clock.wait(tracker.all_done.wait, s.drain_timeout_s)
    done = np.asarray(tracker.done, dtype=np.int64)
    if not finished:
        for i in np.flatnonzero(done < 0).tolist():
            tracker.errors.setdefault(i, f"no response within {s.drain_timeout_s:g} s of the last send")
    return RunRecord(settings=s, start_ns=start, scheduled_ns=np.asarray(offsets, dtype=np.int64) + start,
                     sent_ns=np.asarray(sent, dtype=np.int64), done_ns=done,
                     samples=np.full(n, s.samples_per_query, dtype=np.int64), errors=dict(tracker.errors),
                     open_loop=True, schedule=schedule.to_dict())


def _offline(target: Target, s: ScenarioSettings, measured_sps: float | None,
             progress: ProgressFn | None, clock: Clock) -> RunRecord:
    assert s.samples_per_query is not None and s.min_query_count is not None
    batch = min(s.samples_per_query, target.max_batch)
    total = s.offline_sample_count
    if total is None:
        # LoadGen sizes the one offline query from the expected rate, 10 % over the minimum duration; a rate we
        # measured in a short warm-up (fewer requests outstanding than the run holds) gets a 50 % margin instead.
        expected = s.offline_expected_sps or measured_sps or 100.0
        margin = 1.1 if s.offline_expected_sps else 1.5
        total = max(s.min_query_count * batch, int(math.ceil(expected * s.min_duration_s * margin)), batch)
    sizes = [batch] * (total // batch) + ([total % batch] if total % batch else [])
    target.prepare(set(sizes))
    n = len(sizes)
    tracker = _Tracker(clock, n)
    slots = threading.Semaphore(max(1, target.max_in_flight))

    def done(tag: int, error: BaseException | None, outputs: Mapping[str, np.ndarray] | None) -> None:
        tracker.on_done(tag, error, outputs)
        slots.release()

    sent = [0] * n
    step = max(1, n // 100)
    start = clock.now_ns()
    for i, size in enumerate(sizes):
        clock.wait(lambda t: slots.acquire(timeout=t), None)
        sent[i] = clock.now_ns()
        target.issue(i, size, done)
        if progress is not None and i % step == 0:
            progress(i / n)
    finished = clock.wait(tracker.all_done.wait, s.drain_timeout_s)
    done_arr = np.asarray(tracker.done, dtype=np.int64)
    if not finished:
        for i in np.flatnonzero(done_arr < 0).tolist():
            tracker.errors.setdefault(i, f"no response within {s.drain_timeout_s:g} s of the last send")
    final = replace(s, offline_sample_count=total)
    return RunRecord(settings=final, start_ns=start, scheduled_ns=np.full(n, start, dtype=np.int64),
                     sent_ns=np.asarray(sent, dtype=np.int64), done_ns=done_arr,
                     samples=np.asarray(sizes, dtype=np.int64), errors=dict(tracker.errors), open_loop=True)
