"""Measuring candidates: open one, check its outputs against the reference, time it against the incumbent.

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


def check_outputs(opened: Opened, feeds: Mapping[str, np.ndarray], reference: list[np.ndarray]) -> float:
    """The candidate's error against the reference, every stream's answer checked."""
    outputs = opened.call(feeds)
    answers = outputs if opened.pool is not None else [outputs]
    return max(output_error(list(a), reference) for a in answers)


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


def duel(challenger: Opened, incumbent: Opened, feeds: Mapping[str, np.ndarray], *, rounds: int,
         round_s: float, warmup_s: float, min_gain: float) -> Duel:
    """Time both in ``rounds`` paired rounds; "faster" only when the challenger won every round and
    its median gain is at least ``min_gain`` and above the rounds' noise."""
    a, b = Timer(challenger.call), Timer(incumbent.call)
    a.warm(feeds, warmup_s)
    b.warm(feeds, warmup_s)
    for r in range(rounds):
        order = (a, b) if r % 2 == 0 else (b, a)
        for timer in order:
            timer.run_for(feeds, round_s, min_iterations=2)
    ra = [x * challenger.samples_per_call for x in a.round_rates]
    rb = [x * incumbent.samples_per_call for x in b.round_rates]
    ratios = np.array(ra) / np.array(rb)
    median = float(np.median(ratios))
    noise_pct = float((ratios.max() - ratios.min()) / 2 * 100)
    if ratios.min() > 1.0 and median - 1.0 >= max(min_gain, noise_pct / 100):
        verdict = "faster"
    elif ratios.max() < 1.0:
        verdict = "slower"
    else:
        verdict = "same"
    return Duel(ra, rb, [float(x) for x in ratios], median, noise_pct, verdict,
                _p50_ms(a.samples), _p50_ms(b.samples))


def _p50_ms(samples_ns: list[int]) -> float:
    return float(np.median(samples_ns)) / 1e6 if samples_ns else float("nan")
