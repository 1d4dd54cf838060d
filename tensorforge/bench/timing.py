"""Paired timing shared by ``bench`` and the tuner: a :class:`Timer` per contender, rounds run
back to back, and :func:`paired_speedup` judging one contender against another by the
per-round ratios (the machine's drift cancels within a round)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from .stats import latency_stats, noise


@dataclass(frozen=True)
class Measurement:
    iterations: int
    wall_s: float
    throughput_sps: float
    latency: dict[str, float | int]
    noise: dict[str, Any]


class Timer:
    """Accumulates one contender's samples across rounds, and each round's throughput."""

    def __init__(self, fn: Callable[[Mapping[str, np.ndarray]], Any]) -> None:
        self.fn = fn
        self.samples: list[int] = []
        self.wall_ns = 0
        self.round_rates: list[float] = []      # calls per second in each round

    def run_for(self, feeds: Mapping[str, np.ndarray], seconds: float, min_iterations: int) -> None:
        fn, samples, clock = self.fn, self.samples, time.perf_counter_ns
        start = clock()
        deadline = start + int(seconds * 1e9)
        n = 0
        while n < min_iterations or clock() < deadline:
            t = clock()
            fn(feeds)
            samples.append(clock() - t)
            n += 1
        elapsed = clock() - start
        self.wall_ns += elapsed
        self.round_rates.append(n * 1e9 / elapsed)

    def warm(self, feeds: Mapping[str, np.ndarray], seconds: float) -> None:
        # At least two calls whatever the time: the first allocates, the second settles the memory plan.
        self.fn(feeds)
        self.fn(feeds)
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            self.fn(feeds)

    def measurement(self, batch: int, threshold_pct: float) -> Measurement:
        stats = latency_stats(self.samples)
        wall_s = self.wall_ns / 1e9
        return Measurement(iterations=len(self.samples), wall_s=round(wall_s, 4),
                           throughput_sps=batch * len(self.samples) / wall_s,
                           latency=stats.to_dict(), noise=noise(self.samples, threshold_pct=threshold_pct).to_dict())


def paired_speedup(ours: Timer, peer: Timer) -> tuple[float, float, str]:
    """(median per-round speedup, half-range of the per-round speedups in %, verdict).

    Rounds are paired (each round runs both contenders back to back), so drift of the
    machine cancels in each round's ratio; the spread of those ratios is the noise the
    verdict is judged against: "faster"/"slower" only when every round agrees.
    """
    ratios = np.array(ours.round_rates) / np.array(peer.round_rates)
    median = float(np.median(ratios))
    half_range_pct = float((ratios.max() - ratios.min()) / 2 * 100)
    if ratios.min() > 1.0:
        verdict = "faster"
    elif ratios.max() < 1.0:
        verdict = "slower"
    else:
        verdict = "same"
    return median, half_range_pct, verdict
