"""Timing shared by ``bench``, the tuner and ``precision``: a :class:`Timer` per contender, and
:func:`paired_timing`, the one way two contenders are compared.

Paired timing: each round runs both contenders back to back, the order alternating (ours
first in even rounds, the peer first in odd ones), so drift of the machine hits both alike
and cancels in the round's ratio of rates; the median of those per-round ratios is the
speedup, half their range the noise it is judged against.

A timed call may issue several requests at once — one wave of a multi-stream
:class:`~tensorforge.core.streams.StreamPool` issues one per stream — so a Timer counts
``requests_per_call`` requests per call: rates are requests per second, and two contenders
with different stream counts still compare fairly at the same batch size.

The clock is injectable (``Timer(fn, clock=...)``, integer nanoseconds), so tests can time
with a fake clock instead of the wall clock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .stats import latency_stats, noise, percentile

__all__ = ["Clock", "Measurement", "Paired", "Timer", "paired_timing", "GIVE_UP_AFTER"]

Clock = Callable[[], int]        # monotonic nanoseconds, like time.perf_counter_ns

GIVE_UP_AFTER = 2                # rounds after which a challenger far behind may be stopped


@dataclass(frozen=True)
class Measurement:
    iterations: int
    wall_s: float
    throughput_sps: float
    latency: dict[str, float | int]
    noise: dict[str, Any]


class Timer:
    """Accumulates one contender's samples across rounds, and each round's throughput.

    ``samples`` holds the duration of each call (ns); ``round_rates`` the requests per second
    of each round (``requests_per_call`` requests per call, 1 unless ``fn`` runs several streams).
    """

    def __init__(self, fn: Callable[[Mapping[str, np.ndarray]], Any], requests_per_call: int = 1, *,
                 clock: Clock = time.perf_counter_ns) -> None:
        if requests_per_call < 1:
            raise ValueError(f"requests_per_call must be >= 1, got {requests_per_call}")
        self.fn = fn
        self.requests_per_call = requests_per_call
        self.clock = clock
        self.samples: list[int] = []
        self.wall_ns = 0
        self.round_rates: list[float] = []      # requests per second in each round

    def run_for(self, feeds: Mapping[str, np.ndarray], seconds: float, min_iterations: int) -> float:
        """One timed round: call ``fn`` for ``seconds`` and at least ``min_iterations`` times; its rate."""
        fn, samples, clock = self.fn, self.samples, self.clock
        start = clock()
        deadline = start + int(seconds * 1e9)
        n = 0
        while n < min_iterations or clock() < deadline:
            t = clock()
            fn(feeds)
            samples.append(clock() - t)
            n += 1
        elapsed = max(clock() - start, 1)       # a coarse clock can read no time passing
        self.wall_ns += elapsed
        rate = n * self.requests_per_call * 1e9 / elapsed
        self.round_rates.append(rate)
        return rate

    def warm(self, feeds: Mapping[str, np.ndarray], seconds: float) -> None:
        # At least two calls whatever the time: the first allocates, the second settles the memory plan.
        self.fn(feeds)
        self.fn(feeds)
        deadline = self.clock() + int(seconds * 1e9)
        while self.clock() < deadline:
            self.fn(feeds)

    def p50_ms(self) -> float:
        """Median call duration in ms (by the one percentile definition); NaN before any call."""
        return percentile(self.samples, 0.5) / 1e6 if self.samples else float("nan")

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


@dataclass(frozen=True)
class Paired:
    """Rates of the paired rounds and what they say.

    ``ratios`` are ours / peer per round; ``median`` their median (the speedup); ``noise_pct``
    half their range in percent; ``verdict`` "faster", "slower" or "same" (None without a peer).
    """

    ours: tuple[float, ...]
    peer: tuple[float, ...]
    ratios: tuple[float, ...]
    median: float | None
    noise_pct: float | None
    verdict: str | None
    stopped_early: bool = False


def paired_timing(ours: Callable[[], float], peer: Callable[[], float] | None, rounds: int, *,
                  min_gain: float | None = None, give_up_below: float | None = None) -> Paired:
    """Run ``rounds`` paired rounds and judge ours against the peer.

    ``ours()`` and ``peer()`` each run one timed round and return its rate (higher is faster,
    e.g. samples/s). Even rounds run ours first, odd rounds the peer first. Without a peer the
    rounds time ours alone (``median``, ``noise_pct`` and ``verdict`` are None).

    Verdict: "faster" when ours won every round — and, when ``min_gain`` is given, its median
    gain is at least ``min_gain`` and above the noise (``median - 1 >= max(min_gain,
    noise_pct / 100)``); "slower" when ours lost every round; else "same". With
    ``give_up_below``, ours losing each of the first :data:`GIVE_UP_AFTER` rounds by more than
    that ratio is "slower" at once (``stopped_early``), so no more time goes to it.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    a: list[float] = []
    b: list[float] = []
    stopped = False
    for r in range(rounds):
        if peer is not None and r % 2:
            b.append(peer())
        a.append(ours())
        if peer is not None and not r % 2:
            b.append(peer())
        if (peer is not None and give_up_below is not None and r + 1 == GIVE_UP_AFTER and r + 1 < rounds
                and max(x / y for x, y in zip(a, b)) < give_up_below):
            stopped = True
            break
    if peer is None:
        return Paired(tuple(a), (), (), None, None, None)
    ratios = np.array(a) / np.array(b)
    median = float(np.median(ratios))
    noise_pct = float((ratios.max() - ratios.min()) / 2 * 100)
    gain_ok = min_gain is None or median - 1.0 >= max(min_gain, noise_pct / 100)
    if stopped:
        verdict = "slower"
    elif ratios.min() > 1.0 and gain_ok:
        verdict = "faster"
    elif ratios.max() < 1.0:
        verdict = "slower"
    else:
        verdict = "same"
    return Paired(tuple(a), tuple(b), tuple(float(x) for x in ratios), median, noise_pct, verdict, stopped)
