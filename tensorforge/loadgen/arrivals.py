"""Arrival schedules for open-loop load: Poisson (exponential gaps) or constant rate, seeded.

A schedule is the list of send times, in integer nanoseconds after the run's start,
drawn *before* the run begins: the issuing loop then only waits and sends, and the
same seed gives the same schedule on every machine (NumPy's PCG64 stream).

MLPerf's Server scenario models users as a Poisson process: gaps between queries are
independent and exponentially distributed with mean ``1 / rate`` (coefficient of
variation 1). ``constant`` spaces queries evenly (CV 0), which is useful to tell a
target's own jitter from the arrival process's burstiness.

Example::

    >>> s = arrival_schedule("poisson", 100.0, min_count=10, min_duration_s=1.0, seed=1)
    >>> len(s.offsets_ns) >= 10 and s.offsets_ns[-1] >= 1_000_000_000
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..errors import InputError

__all__ = ["ArrivalKind", "Schedule", "arrival_schedule", "poisson_gaps_s", "ARRIVAL_KINDS"]

ArrivalKind = Literal["poisson", "constant"]
ARRIVAL_KINDS: tuple[str, ...] = ("poisson", "constant")
_NS = 1_000_000_000


@dataclass(frozen=True)
class Schedule:
    """Send times of an open-loop run, in ns after its start (non-decreasing, int64)."""

    kind: str
    rate_qps: float
    seed: int
    offsets_ns: np.ndarray = field(repr=False, compare=False)

    @property
    def count(self) -> int:
        return int(self.offsets_ns.size)

    @property
    def span_s(self) -> float:
        return float(self.offsets_ns[-1]) / _NS if self.offsets_ns.size else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "rate_qps": self.rate_qps, "seed": self.seed, "count": self.count,
                "span_s": self.span_s}


def _check_rate(rate_qps: float) -> None:
    if not (isinstance(rate_qps, (int, float)) and math.isfinite(rate_qps) and rate_qps > 0):
        raise InputError(f"the arrival rate must be a positive number of queries per second, got {rate_qps!r} "
                         "(e.g. target_qps=100)")


def poisson_gaps_s(rate_qps: float, count: int, seed: int) -> np.ndarray:
    """``count`` exponential inter-arrival gaps in seconds with mean ``1 / rate_qps``."""
    _check_rate(rate_qps)
    if count < 0:
        raise InputError(f"count must be >= 0, got {count}")
    rng = np.random.Generator(np.random.PCG64(seed))
    return rng.exponential(1.0 / rate_qps, size=count)


def arrival_schedule(kind: str, rate_qps: float, *, min_count: int, min_duration_s: float, seed: int = 0,
                     max_count: int | None = None) -> Schedule:
    """Draw send times until there are at least ``min_count`` and the last is at or after ``min_duration_s``.

    This is how MLPerf LoadGen sizes a Server run: enough queries to cover the minimum
    duration at the target rate, and never fewer than the minimum query count.
    ``max_count`` caps the total (the run is then reported as short of its minimums).
    """
    _check_rate(rate_qps)
    if kind not in ARRIVAL_KINDS:
        raise InputError(f"unknown arrival process {kind!r}; choose one of {', '.join(ARRIVAL_KINDS)}")
    if min_count < 1:
        raise InputError(f"min_count must be >= 1, got {min_count}")
    if not (min_duration_s >= 0 and math.isfinite(min_duration_s)):
        raise InputError(f"min_duration_s must be a finite number of seconds >= 0, got {min_duration_s}")
    needed = max(min_count, int(math.ceil(rate_qps * min_duration_s)) + 1)
    if max_count is not None:
        needed = min(needed, max_count)
    if kind == "constant":
        needed = max(min_count, int(math.ceil(rate_qps * min_duration_s)))
        if max_count is not None:
            needed = min(needed, max_count)
        offsets = np.arange(1, needed + 1, dtype=np.float64) / rate_qps
        if max_count is None or needed < max_count:
            while offsets[-1] < min_duration_s:  # float rounding at the boundary
                offsets = np.append(offsets, (offsets.size + 1) / rate_qps)
    else:
        rng = np.random.Generator(np.random.PCG64(seed))
        offsets = np.cumsum(rng.exponential(1.0 / rate_qps, size=needed))
        # The draw is random: top up (same stream, so still reproducible) until the span is covered.
        while offsets[-1] < min_duration_s and (max_count is None or offsets.size < max_count):
            more = np.cumsum(rng.exponential(1.0 / rate_qps, size=max(16, needed // 8))) + offsets[-1]
            offsets = np.concatenate([offsets, more])
            if max_count is not None:
                offsets = offsets[:max_count]
        # Trim the top-up to the first query at or past the minimum duration (keeping min_count).
        past = int(np.searchsorted(offsets, min_duration_s, side="left")) + 1
        offsets = offsets[:max(min_count if max_count is None else min(min_count, max_count), past)]
    return Schedule(kind=kind, rate_qps=float(rate_qps), seed=int(seed),
                    offsets_ns=np.round(offsets * _NS).astype(np.int64))
