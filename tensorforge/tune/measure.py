"""Measuring candidates: open one, check its outputs against the reference, time it against the incumbent.

A contender — :class:`LocalContender` here, or :class:`.worker.IsolatedContender` in a
process of its own (the default) — answers ``outputs()``, ``warm(s)``, ``run(s)`` (one timed
round, its rate in samples/s), ``p50_ms()`` and ``close()``.

Timing is paired (:func:`tensorforge.core.timing.paired_timing`): each round runs the incumbent and the challenger back
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
from ..core.reference import Comparison, compare
from ..core.streams import StreamPool
from ..core.timing import Timer, paired_timing
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
        # warm already, so one long call may be the whole round
        return self._timer.run_for(self._feeds, seconds, min_iterations=1) * self._opened.samples_per_call

    def p50_ms(self) -> float:
        return self._timer.p50_ms()

    def close(self) -> None:
        self._opened.close()


def check_outputs(contender: Any, reference: list[np.ndarray]) -> Comparison:
    """The candidate's outputs against the reference (:func:`tensorforge.core.reference.compare`), every
    stream's answer checked: the worst stream's comparison. Raises VerificationError on another number
    of outputs or another shape."""
    return max((compare(a, reference) for a in contender.outputs()), key=lambda c: c.max_norm)


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


def duel(challenger: Any, incumbent: Any, *, rounds: int, round_s: float, warmup_s: float,
         min_gain: float, give_up_below: float | None = GIVE_UP_BELOW) -> Duel:
    """Time both in ``rounds`` paired rounds, the order alternating; "faster" only when the challenger
    won every round and its median gain is at least ``min_gain`` and above the rounds' noise.

    A challenger that lost each of the first :data:`~tensorforge.core.timing.GIVE_UP_AFTER` rounds
    below ``give_up_below`` × the incumbent is "slower" at once (``Duel.stopped_early``), so the
    budget goes to candidates that might win. The rounds are :func:`~tensorforge.core.timing.paired_timing`'s."""
    challenger.warm(warmup_s)
    incumbent.warm(warmup_s)
    p = paired_timing(lambda: challenger.run(round_s), lambda: incumbent.run(round_s), rounds,
                      min_gain=min_gain, give_up_below=give_up_below)
    assert p.median is not None and p.noise_pct is not None and p.verdict is not None   # a peer was timed
    return Duel(list(p.ours), list(p.peer), list(p.ratios), p.median, p.noise_pct, p.verdict,
                challenger.p50_ms(), incumbent.p50_ms(), p.stopped_early)
