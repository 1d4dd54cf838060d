"""Measuring candidates: open one, check its outputs against the reference, time it against the incumbent.

A contender — :class:`LocalContender` here, or :class:`.worker.IsolatedContender` in a
process of its own (the default) — answers ``outputs()``, ``warm(s)``, ``run(s)`` (one timed
round, its rate in samples/s), ``p50_ms()`` and ``close()``.

Timing is paired (``bench.timing``): each round runs the incumbent and the challenger back
to back, in alternating order, so drift of the machine hits both alike and cancels in the
round's ratio. Rates are compared in samples per second, so a candidate that runs two
streams is credited with both streams' samples.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ..backends.registry import get_backend
from ..bench.timing import Timer
from ..engine.streams import StreamPool
from .space import Candidate


@dataclass
class Opened:
    """A candidate ready to time: its session, the callable the timer runs, samples per call."""

    candidate: Candidate
    session: Any
    call: Any
    samples_per_call: int
    setup_s: float
    pool: StreamPool | None = None

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
        self.session = self.call = self.pool = None


def open_candidate(candidate: Candidate, model_bytes: bytes, device: str, batch: int) -> Opened:
    """Create the candidate's session (timed); raises the backend's typed errors when it cannot."""
    t = time.perf_counter()
    session = get_backend(candidate.backend).create_session(model_bytes, candidate.session_config(device))
    setup_s = time.perf_counter() - t
    if candidate.streams > 1:
        pool = StreamPool(session.run, candidate.streams)
        return Opened(candidate, session, pool, batch * candidate.streams, setup_s, pool)
    return Opened(candidate, session, session.run, batch, setup_s)


def output_error(got: list[np.ndarray], want: list[np.ndarray]) -> float:
    """Worst max |got − want| / max |want| over the outputs (inf on a shape or integer mismatch)."""
    if len(got) != len(want):
        return float("inf")
    worst = 0.0
    for g, w in zip(got, want):
        g, w = np.asarray(g), np.asarray(w)
        if g.shape != w.shape:
            return float("inf")
        if w.dtype.kind not in "fc":
            if not np.array_equal(g, w):
                return float("inf")
            continue
        g64, w64 = g.astype(np.float64), w.astype(np.float64)
        if not np.isfinite(g64).all() and not np.array_equal(np.isfinite(g64), np.isfinite(w64)):
            return float("inf")
        finite = np.isfinite(w64)
        diff = float(np.max(np.abs(g64[finite] - w64[finite]), initial=0.0))
        scale = float(np.max(np.abs(w64[finite]), initial=0.0)) or 1.0
        worst = max(worst, diff / scale)
    return worst


class LocalContender:
    """A candidate opened in this process (``TuneOptions(isolate=False)``)."""

    def __init__(self, candidate: Candidate, model_bytes: bytes, device: str, batch: int,
                 feeds: Mapping[str, np.ndarray]) -> None:
        self.candidate = candidate
        self._opened = open_candidate(candidate, model_bytes, device, batch)
        self.setup_s = self._opened.setup_s
        self._feeds = feeds
        self._timer = Timer(self._opened.call)

    def outputs(self) -> list[list[np.ndarray]]:
        out = self._opened.call(self._feeds)
        return [list(a) for a in out] if self._opened.pool is not None else [list(out)]

    def warm(self, seconds: float) -> None:
        self._timer.warm(self._feeds, seconds)

    def run(self, seconds: float) -> float:
        """One timed round; its rate in samples per second."""
        self._timer.run_for(self._feeds, seconds, min_iterations=1)   # warm already; a long call is a round
        return self._timer.round_rates[-1] * self._opened.samples_per_call

    def p50_ms(self) -> float:
        return _p50_ms(self._timer.samples)

    def close(self) -> None:
        self._opened.close()


def check_outputs(contender: Any, reference: list[np.ndarray]) -> float:
    """The candidate's error against the reference, every stream's answer checked."""
    return max(output_error(a, reference) for a in contender.outputs())


@dataclass(frozen=True)
class Duel:
    """A paired comparison: per-round rates in samples/s, and what they say."""

    challenger_rates: list[float]
    incumbent_rates: list[float]
    ratios: list[float]
    median_ratio: float
    noise_pct: float          # half the range of the per-round ratios, in percent
    verdict: str              # "faster" | "slower" | "same"
    challenger_p50_ms: float
    incumbent_p50_ms: float
    stopped_early: bool = False


GIVE_UP_BELOW = 0.85      # a challenger this far behind in each of the first rounds stops there
GIVE_UP_AFTER = 2


def duel(challenger: Any, incumbent: Any, *, rounds: int, round_s: float, warmup_s: float,
         min_gain: float, give_up_below: float | None = GIVE_UP_BELOW) -> Duel:
    """Time both in ``rounds`` paired rounds, the order alternating; "faster" only when the challenger
    won every round and its median gain is at least ``min_gain`` and above the rounds' noise.

    A challenger that lost each of the first :data:`GIVE_UP_AFTER` rounds below ``give_up_below``
    × the incumbent is "slower" at once (``Duel.stopped_early``), so the budget goes to candidates
    that might win (the 22 it stopped in the final benchmark run sat at 0.28–0.83×)."""
    challenger.warm(warmup_s)
    incumbent.warm(warmup_s)
    ra: list[float] = []
    rb: list[float] = []
    stopped = False
    for r in range(rounds):
        if r % 2 == 0:
            ra.append(challenger.run(round_s))
            rb.append(incumbent.run(round_s))
        else:
            rb.append(incumbent.run(round_s))
            ra.append(challenger.run(round_s))
        if (give_up_below is not None and r + 1 == GIVE_UP_AFTER and r + 1 < rounds
                and max(a / b for a, b in zip(ra, rb)) < give_up_below):
            stopped = True
            break
    ratios = np.array(ra) / np.array(rb)
    median = float(np.median(ratios))
    noise_pct = float((ratios.max() - ratios.min()) / 2 * 100)
    if stopped:
        verdict = "slower"
    elif ratios.min() > 1.0 and median - 1.0 >= max(min_gain, noise_pct / 100):
        verdict = "faster"
    elif ratios.max() < 1.0:
        verdict = "slower"
    else:
        verdict = "same"
    return Duel(ra, rb, [float(x) for x in ratios], median, noise_pct, verdict,
                challenger.p50_ms(), incumbent.p50_ms(), stopped)


def _p50_ms(samples_ns: list[int]) -> float:
    return float(np.median(samples_ns)) / 1e6 if samples_ns else float("nan")
