"""Paired timing shared by ``bench`` and the tuner: a :class:`Timer` per contender, rounds run
back to back, and :func:`paired_speedup` judging one contender against another by the
per-round ratios (the machine's drift cancels within a round).

A timed call may issue several requests at once — one wave of a multi-stream
:class:`~tensorforge.engine.streams.StreamPool` issues one per stream — so a Timer counts
``requests_per_call`` requests per call: rates are requests per second, and two contenders
with different stream counts still compare fairly at the same batch size."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

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
    """Accumulates one contender's samples across rounds, and each round's throughput.

    ``samples`` holds the duration of each call; ``round_rates`` the requests per second of
    each round (``requests_per_call`` requests per call, 1 unless ``fn`` runs several streams).
    """

    def __init__(self, fn: Callable[[Mapping[str, np.ndarray]], Any], requests_per_call: int = 1) -> None:
        if requests_per_call < 1:
            raise ValueError(f"requests_per_call must be >= 1, got {requests_per_call}")
        self.fn = fn
        self.requests_per_call = requests_per_call
        self.samples: list[int] = []
        self.wall_ns = 0
        self.round_rates: list[float] = []      # requests per second in each round

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
        self.round_rates.append(n * self.requests_per_call * 1e9 / elapsed)

    def warm(self, feeds: Mapping[str, np.ndarray], seconds: float) -> None:
        # At least two calls whatever the time: the first allocates, the second settles the memory plan.
        self.fn(feeds)
        self.fn(feeds)
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            self.fn(feeds)

    def measurement(self, batch: int, threshold_pct: float,
                    request_latencies_ns: Sequence[int] | None = None) -> Measurement:
        """Throughput in samples/s over the timed wall time; latency and noise from each call's
        duration, or from ``request_latencies_ns`` (one per request, e.g. a StreamPool's) when given.
        ``iterations`` counts requests."""
        requests = len(self.samples) * self.requests_per_call
        latencies = self.samples if request_latencies_ns is None else request_latencies_ns
        wall_s = self.wall_ns / 1e9
        return Measurement(iterations=requests, wall_s=round(wall_s, 4), throughput_sps=batch * requests / wall_s,
                           latency=latency_stats(latencies).to_dict(),
                           noise=noise(latencies, threshold_pct=threshold_pct).to_dict())


def paired_speedup(ours: Timer, peer: Timer) -> tuple[float, float, str]:
    """(median per-round speedup, half-range of the per-round speedups in %, verdict).

    Rounds are paired (each round runs both contenders back to back), so drift of the
    machine cancels in each round's ratio; the spread of those ratios is the noise the
    verdict is judged against: "faster"/"slower" only when every round agrees. Rates are
    requests per second, so at one batch size the ratio is one of samples/s, whatever each
    contender's stream count.
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
