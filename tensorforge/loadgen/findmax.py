"""The highest offered load a target sustains within a latency bound, and the latency-budget sweep.

:func:`find_max_qps` searches Server-scenario runs for the largest ``target_qps`` whose
verdict is VALID (percentile latency within the bound, early stopping met, no errors):
it starts near the target's measured saturation throughput, steps by ×1.5 or ×0.5
until one VALID and one INVALID load bracket the answer, then bisects until the bracket
is narrower than ``tolerance`` (5 % by default) of its lower end.

:func:`latency_sweep` answers the whitepaper's Chart 5 question — for each latency
budget, the highest throughput that meets it — for several configurations (batcher
settings or engines). A probe's latencies do not depend on the bound it is judged
against, so every probe run for one budget is re-judged for every other budget; each
extra budget costs only the probes that narrow its own bracket.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

from ..errors import InputError
from .scenarios import RunRecord, ScenarioSettings, measure_capacity, run_scenario
from .targets import Target
from .verdict import ScenarioResult, summarize

__all__ = ["Probe", "FindMaxResult", "find_max_qps", "SweepResult", "latency_sweep", "ProbeCache"]

ProbeFn = Callable[[str], None]


@dataclass(frozen=True)
class Probe:
    target_qps: float
    valid: bool
    percentile_latency_ms: float | None
    throughput_qps: float
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"target_qps": self.target_qps, "valid": self.valid, "percentile_latency_ms": self.percentile_latency_ms,
                "throughput_qps": self.throughput_qps, "reasons": list(self.reasons)}


@dataclass(frozen=True)
class FindMaxResult:
    """The highest VALID offered load found (None if even the lowest probe failed) and every probe."""

    latency_bound_ms: float
    percentile: float
    max_valid_qps: float | None
    lowest_invalid_qps: float | None
    converged: bool
    tolerance: float
    capacity_estimate_qps: float | None
    probes: tuple[Probe, ...]
    best: ScenarioResult | None = field(default=None, repr=False, compare=False)
    results: tuple[ScenarioResult, ...] = field(default=(), repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"latency_bound_ms": self.latency_bound_ms, "percentile": self.percentile,
                "max_valid_qps": self.max_valid_qps, "lowest_invalid_qps": self.lowest_invalid_qps,
                "converged": self.converged, "tolerance": self.tolerance,
                "capacity_estimate_qps": self.capacity_estimate_qps, "probes": [p.to_dict() for p in self.probes],
                "best": self.best.to_dict() if self.best is not None else None}


class ProbeCache:
    """Server runs by offered load; re-judges a stored run against any latency bound without re-running it.

    A run whose only failure is early stopping — its percentile is within the bound, but
    with this many queries over the bound the claim needs more queries (MLPerf's rule) —
    is inconclusive, not INVALID: it is run again at the same load with the query count
    the rule asked for (plus 20 %), if that takes at most ``max_extend_s`` seconds.
    """

    def __init__(self, target: Target, settings: ScenarioSettings, progress: ProbeFn | None = None,
                 max_extend_s: float | None = None) -> None:
        self.target = target
        self.settings = settings
        self.records: dict[float, RunRecord] = {}
        self.progress = progress
        self.max_extend_s = max_extend_s if max_extend_s is not None else max(10.0, 4 * settings.min_duration_s)
        self._description = target.describe()

    def run(self, qps: float, min_query_count: int | None = None) -> RunRecord:
        qps = float(round(qps, 3))
        have = self.records.get(qps)
        if have is None or (min_query_count is not None and have.done_ns.size < min_query_count):
            if self.progress is not None:
                more = f" ({min_query_count} queries)" if min_query_count else ""
                self.progress(f"server at {qps:g} QPS{more}")
            settings = replace(self.settings, target_qps=qps)
            if min_query_count is not None:
                settings = replace(settings, min_query_count=min_query_count)
            self.records[qps] = run_scenario(self.target, settings)
        return self.records[qps]

    def judge(self, qps: float, bound_ms: float, extend: bool = True) -> ScenarioResult:
        qps = float(round(qps, 3))
        result = self._judge(self.run(qps), bound_ms)
        if not extend:
            return result
        es = result.early_stopping
        only_early = [c.name for c in result.checks if not c.passed] == ["early_stopping"]
        if only_early and es is not None and es.min_queries > es.queries:
            want = int(es.min_queries * 1.2) + 1
            if want / qps <= self.max_extend_s:
                result = self._judge(self.run(qps, want), bound_ms)
        return result

    def _judge(self, record: RunRecord, bound_ms: float) -> ScenarioResult:
        rejudged = replace(record, settings=replace(record.settings, latency_bound_ms=bound_ms))
        return summarize(rejudged, self._description)


def _probe(result: ScenarioResult) -> Probe:
    assert result.settings["target_qps"] is not None
    return Probe(float(result.settings["target_qps"]), result.valid, result.percentile_latency_ms,
                 result.throughput_qps, tuple(result.reasons))


def find_max_qps(target: Target, settings: ScenarioSettings, *, tolerance: float = 0.05, max_probes: int = 12,
                 start_qps: float | None = None, capacity_s: float = 1.0, cache: ProbeCache | None = None,
                 progress: ProbeFn | None = None,
                 on_probe: Callable[[Probe], None] | None = None) -> FindMaxResult:
    """Search for the highest VALID ``target_qps`` of the Server scenario (``settings.latency_bound_ms`` required).

    ``on_probe(probe)`` is called after each probe is judged, so a caller can keep every probe as it comes
    (written to disk, a Ctrl-C or a timeout loses none)."""
    if settings.scenario != "server" or settings.latency_bound_ms is None:
        raise InputError("find-max searches the server scenario: give scenario=\"server\" and latency_bound_ms=MS")
    if not 0 < tolerance < 1:
        raise InputError(f"tolerance must be a fraction in (0, 1), got {tolerance}")
    if max_probes < 2:
        raise InputError(f"max_probes must be >= 2, got {max_probes}")
    bound = float(settings.latency_bound_ms)
    cache = cache if cache is not None else ProbeCache(target, settings, progress)
    capacity: float | None = None
    if start_qps is None:
        if progress is not None:
            progress("measuring saturation throughput")
        capacity, _ = measure_capacity(target, 1, capacity_s)
        start_qps = max(1.0, 0.8 * capacity)
    lo: float | None = None
    hi: float | None = None
    # what the cache already knows about this bound brackets the search for free
    for q in sorted(cache.records):
        if cache.judge(q, bound, extend=False).valid:
            lo = q if lo is None or q > lo else lo
        elif hi is None or q < hi:
            hi = q
    if lo is not None and hi is not None and hi <= lo:
        hi = None   # noise: a lower load failed above a higher one that passed; search upward from lo
    results: dict[float, ScenarioResult] = {}
    q = start_qps if lo is None and hi is None else _next(lo, hi)
    probes = 0
    while probes < max_probes:
        if lo is not None and hi is not None and hi - lo <= tolerance * lo:
            break
        q = float(round(q, 3))
        result = cache.judge(q, bound)
        results[q] = result
        probes += 1
        if on_probe is not None:
            on_probe(_probe(result))
        if result.valid:
            lo = q if lo is None else max(lo, q)
        else:
            hi = q if hi is None else min(hi, q)
        if hi is not None and lo is None and q < 1e-3:
            break
        q = _next(lo, hi)
    converged = lo is not None and hi is not None and hi - lo <= tolerance * lo
    all_results = {q: results.get(q) or cache.judge(q, bound, extend=False) for q in sorted(cache.records)}
    best = all_results.get(lo) if lo is not None else None
    return FindMaxResult(latency_bound_ms=bound, percentile=float(settings.resolved().percentile or 0.99),
                         max_valid_qps=lo, lowest_invalid_qps=hi, converged=converged, tolerance=tolerance,
                         capacity_estimate_qps=capacity,
                         probes=tuple(_probe(r) for r in all_results.values()), best=best,
                         results=tuple(all_results.values()))


def _next(lo: float | None, hi: float | None) -> float:
    if lo is None:
        assert hi is not None
        return hi / 2
    if hi is None:
        return lo * 1.5
    return math.sqrt(lo * hi) if lo > 0 else hi / 2


def _prefixed(progress: ProbeFn | None, label: str) -> ProbeFn | None:
    if progress is None:
        return None
    report = progress
    return lambda message: report(f"{label}: {message}")


@dataclass(frozen=True)
class SweepResult:
    """For each latency budget and configuration: the highest VALID offered load (the whitepaper's Chart 5)."""

    budgets_ms: tuple[float, ...]
    configs: tuple[str, ...]
    max_qps: dict[str, dict[float, float | None]]          # config -> budget -> qps
    best: dict[float, tuple[str, float] | None]             # budget -> (config, qps)
    details: dict[str, list[FindMaxResult]] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"budgets_ms": list(self.budgets_ms), "configs": list(self.configs),
                "max_qps": {c: {str(b): v for b, v in per.items()} for c, per in self.max_qps.items()},
                "best": {str(b): (None if v is None else {"config": v[0], "qps": v[1]}) for b, v in self.best.items()},
                "details": {c: [r.to_dict() for r in rs] for c, rs in self.details.items()}}


def latency_sweep(configs: Sequence[tuple[str, Callable[[], Target]]], budgets_ms: Sequence[float],
                  settings: ScenarioSettings, *, tolerance: float = 0.05, max_probes: int = 8,
                  progress: ProbeFn | None = None,
                  on_probe: Callable[[str, float, Probe], None] | None = None) -> SweepResult:
    """Find-max for every budget and every configuration (``(label, make_target)``; each target is closed after).
    ``on_probe(label, budget_ms, probe)`` sees each probe as it is judged."""
    budgets = tuple(sorted(float(b) for b in budgets_ms))
    if not budgets or any(b <= 0 for b in budgets):
        raise InputError(f"latency budgets must be positive milliseconds, got {list(budgets_ms)}")
    if not configs:
        raise InputError("the sweep needs at least one configuration")
    max_qps: dict[str, dict[float, float | None]] = {}
    details: dict[str, list[FindMaxResult]] = {}
    for label, make in configs:
        target = make()
        try:
            base = replace(settings, scenario="server", latency_bound_ms=budgets[0],
                           target_qps=settings.target_qps or 1.0)
            cache = ProbeCache(target, base, _prefixed(progress, label))
            found: list[FindMaxResult] = []
            for b in budgets:
                start = None if not found or found[-1].max_valid_qps is None else found[-1].max_valid_qps
                keep = None if on_probe is None else (lambda p, label=label, b=b: on_probe(label, b, p))
                found.append(find_max_qps(target, replace(base, latency_bound_ms=b), tolerance=tolerance,
                                          max_probes=max_probes, start_qps=start, cache=cache, on_probe=keep))
            max_qps[label] = {b: r.max_valid_qps for b, r in zip(budgets, found)}
            details[label] = found
        finally:
            target.close()
    best: dict[float, tuple[str, float] | None] = {}
    for b in budgets:
        cands = [(per[b], lab) for lab, per in max_qps.items() if per[b] is not None]
        best[b] = None if not cands else (max(cands)[1], float(max(cands)[0] or 0.0))
    return SweepResult(budgets_ms=budgets, configs=tuple(c for c, _ in configs), max_qps=max_qps, best=best,
                       details=details)
