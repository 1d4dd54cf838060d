"""From a run's raw timestamps to its figures and its VALID/INVALID verdict, the way MLPerf LoadGen decides.

Per-query latency is ``done - scheduled``: for closed-loop scenarios the scheduled time
is the send time; for Server it is the Poisson arrival time (no coordinated omission);
for Offline it is t0, when every sample was issued. Percentiles are
:func:`tensorforge.core.stats.percentile`'s — LoadGen's definition, the ``floor(n * p)``-th
smallest of ``n`` latencies (0-based) — so ours and LoadGen's agree on the same data;
failed queries are counted, never timed.

The checks, all of which must pass for VALID:

* ``min_queries`` — at least ``min_query_count`` queries (Offline: samples);
* ``min_duration`` — SS/MS: the last query was issued at or after ``min_duration_s``;
  Server: the last query was *scheduled* at or after it; Offline: the run (t0 → last
  response) lasted at least that long;
* ``early_stopping`` — SS/MS/Server: MLPerf's binomial rule (:mod:`.earlystop`);
* ``latency_bound`` — Server: the chosen percentile is within the bound; SS/MS when a
  bound is given: the early-stopping estimate is within it;
* ``errors`` — every query answered without error.

Late sends (open loop, more than ``late_threshold_us`` after schedule) do not flatter the
target — they only add to its latency — so they are reported as a warning, not a failure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..core.stats import LatencyStats, latency_stats, percentile
from .earlystop import EarlyStopResult, percentile_estimate, server_early_stopping
from .scenarios import RunRecord, ScenarioSettings

__all__ = ["Check", "Lateness", "ScenarioResult", "summarize"]

_NS = 1e9
_MS = 1e6


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Lateness:
    """How far actual sends trailed their schedule (open-loop runs), in µs."""

    threshold_us: float
    late_count: int
    late_fraction: float
    p50_us: float
    p99_us: float
    max_us: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ScenarioResult:
    """Every setting and figure of one run, and its verdict. ``latencies_ns`` stays out of ``to_dict``."""

    scenario: str
    settings: dict[str, Any]
    target: dict[str, Any]
    valid: bool
    checks: tuple[Check, ...]
    metric_name: str
    metric_value: float | None
    metric_unit: str
    query_count: int
    sample_count: int
    error_count: int
    duration_s: float
    offered_qps: float | None
    throughput_qps: float
    throughput_sps: float
    latency: LatencyStats | None            # per query; None when no query succeeded
    percentile: float
    percentile_latency_ms: float | None
    early_stopping: EarlyStopResult | None
    lateness: Lateness | None
    warnings: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    latencies_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False, compare=False)

    @property
    def verdict(self) -> str:
        return "VALID" if self.valid else "INVALID"

    @property
    def reasons(self) -> list[str]:
        return [f"{c.name}: {c.detail}" for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "latencies_ns"}
        d["verdict"] = self.verdict
        d["reasons"] = self.reasons
        d["checks"] = [c.to_dict() for c in self.checks]
        d["warnings"] = list(self.warnings)
        for key in ("latency", "early_stopping", "lateness"):
            value = getattr(self, key)
            d[key] = value.to_dict() if value is not None else None
        return d


def summarize(record: RunRecord, target: dict[str, Any]) -> ScenarioResult:
    """Compute the figures, the checks and the verdict of one run."""
    s: ScenarioSettings = record.settings
    assert s.percentile is not None and s.min_query_count is not None
    n = int(record.done_ns.size)
    ok = np.ones(n, dtype=bool)
    if record.errors:
        ok[list(record.errors)] = False
    ok &= record.done_ns >= 0
    latencies = (record.done_ns - record.scheduled_ns)[ok]
    lat = latency_stats(latencies) if latencies.size else None
    samples = int(record.samples.sum())
    last_done = int(record.done_ns[ok].max()) if ok.any() else record.start_ns
    duration_s = max(last_done - record.start_ns, 1) / _NS
    p = s.percentile
    sorted_lat = np.sort(latencies)
    pct_ms = percentile(sorted_lat, p, presorted=True) / _MS if latencies.size else None
    checks: list[Check] = []
    warnings: list[str] = []
    early: EarlyStopResult | None = None
    offered: float | None = None

    # -- minimums ---------------------------------------------------------------------------------
    if s.scenario == "offline":
        need = s.offline_sample_count or 0
        checks.append(Check("min_queries", samples >= max(need, s.min_query_count),
                            f"{samples} samples issued (needed {max(need, s.min_query_count)})"))
        span_s = duration_s
        what = "the run (t0 to the last response)"
    elif s.scenario == "server":
        checks.append(Check("min_queries", n >= s.min_query_count,
                            f"{n} queries (needed {s.min_query_count})"))
        span_s = (int(record.scheduled_ns[-1]) - record.start_ns) / _NS if n else 0.0
        what = "the last query was scheduled at"
    else:
        checks.append(Check("min_queries", n >= s.min_query_count, f"{n} queries (needed {s.min_query_count})"))
        span_s = (int(record.sent_ns[-1]) - record.start_ns) / _NS if n else 0.0
        what = "the last query was issued at"
    checks.append(Check("min_duration", span_s >= s.min_duration_s,
                        f"{what} {span_s:.3f} s (needed {s.min_duration_s:g} s)"))

    # -- early stopping and the latency constraint -------------------------------------------------
    label = f"p{p * 100:.10g}"
    if s.scenario == "server":
        assert s.latency_bound_ms is not None and s.target_qps is not None
        bound_ns = int(round(s.latency_bound_ms * _MS))
        # a failed query can never count as within the bound
        all_lat = np.where(ok, record.done_ns - record.scheduled_ns, np.iinfo(np.int64).max)
        early = server_early_stopping(all_lat, bound_ns, p, s.confidence)
        checks.append(Check("early_stopping", early.met, early.message))
        within = pct_ms is not None and pct_ms * _MS <= bound_ns
        checks.append(Check("latency_bound", within,
                            f"{label} latency {_fmt(pct_ms)} ms {'<=' if within else '>'} bound "
                            f"{s.latency_bound_ms:g} ms" + ("" if within else " — reduce the target QPS")))
        offered = (n - 1) / span_s if n > 1 and span_s > 0 else s.target_qps
    elif s.scenario in ("single-stream", "multi-stream"):
        early = percentile_estimate(latencies, p, s.confidence)
        checks.append(Check("early_stopping", early.met, early.message))
        if s.latency_bound_ms is not None:
            est = early.estimate_ns / _MS if early.estimate_ns is not None else pct_ms
            within = est is not None and est <= s.latency_bound_ms
            checks.append(Check("latency_bound", within,
                                f"{label} estimate {_fmt(est)} ms {'<=' if within else '>'} bound "
                                f"{s.latency_bound_ms:g} ms"))
    elif s.latency_bound_ms is not None:
        warnings.append("offline has no latency constraint; `latency_bound_ms` is ignored")
    errors = n - int(ok.sum())
    checks.append(Check("errors", errors == 0,
                        "every query answered" if errors == 0 else
                        f"{errors} of {n} queries failed, e.g. {next(iter(record.errors.values()), 'no response')}"))

    # -- lateness of sends --------------------------------------------------------------------------
    lateness = None
    if s.scenario == "server" and n:
        late_ns = np.maximum(record.sent_ns - record.scheduled_ns, 0)
        thr = s.late_threshold_us * 1e3
        late = int(np.count_nonzero(late_ns > thr))
        lateness = Lateness(s.late_threshold_us, late, late / n, percentile(late_ns, 0.50) / 1e3,
                            percentile(late_ns, 0.99) / 1e3, float(late_ns.max()) / 1e3)
        if late:
            warnings.append(f"{late} of {n} sends ({late / n:.1%}) left more than {s.late_threshold_us:g} µs after "
                            f"their scheduled time (max {lateness.max_us / 1e3:.2f} ms): the generator or the "
                            "machine was busy (an in-process target using every core delays the generator's "
                            "wake-ups; leave it a core with `threads`, or load a server on another machine); "
                            "latencies still count from the schedule, so this only penalises the target")

    # -- the metric ----------------------------------------------------------------------------------
    valid = all(c.passed for c in checks)
    throughput_qps = n / duration_s if n else 0.0
    throughput_sps = samples / duration_s if n else 0.0
    value: float | None
    if s.scenario == "offline":
        name, value, unit = "samples per second", throughput_sps, "samples/s"
    elif s.scenario == "server":
        name, value, unit = "scheduled queries per second", offered, "queries/s"
    else:
        est_ms = early.estimate_ns / _MS if early is not None and early.estimate_ns is not None else None
        name, value, unit = f"{label} latency (early-stopping estimate)", est_ms, "ms"
        if est_ms is None:
            name, value = f"{label} latency", pct_ms
    return ScenarioResult(
        scenario=s.scenario, settings=s.to_dict(), target=target, valid=valid, checks=tuple(checks),
        metric_name=name, metric_value=value, metric_unit=unit, query_count=n, sample_count=samples,
        error_count=errors, duration_s=duration_s, offered_qps=offered, throughput_qps=throughput_qps,
        throughput_sps=throughput_sps, latency=lat, percentile=p, percentile_latency_ms=pct_ms, early_stopping=early,
        lateness=lateness, warnings=tuple(warnings),
        extra={"warmup": record.warmup, "schedule": record.schedule}, latencies_ns=latencies)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"
