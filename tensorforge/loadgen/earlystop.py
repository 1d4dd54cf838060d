"""MLPerf's early-stopping rule: how many queries a percentile-latency claim needs, and what it may claim.

MLPerf LoadGen (``loadgen/early_stopping.cc`` and ``results.cc``) treats each query as
an independent trial that is "overlatency" with probability ``1 - p`` when the true
``p``-th percentile equals the claimed latency. Having seen ``t`` overlatency queries
among ``h + t``, the claim is accepted at confidence ``c`` (0.99) only if such a result
would be unlikely were the claim false::

    odds(h, t, p) = P[Binomial(h + t, 1 - p) <= t]  <  1 - c

``min_passing_queries(t, p, c)`` is the smallest ``h`` that satisfies it. The rule is
applied per scenario exactly as LoadGen does:

* **SingleStream / MultiStream** (a claim about a percentile of the run's own
  latencies): the run needs at least ``min_passing_queries(1, p, c) + 1`` queries —
  64 for p90, 662 for p99, 6,636 for p99.9. The reported figure is the
  early-stopping estimate: with the largest ``t`` for which ``h(t) + t <= n``, the
  ``(n - t)``-th smallest latency (0-based), i.e. the ``t - 1`` highest are discarded.
* **Server** (a claim that the ``p``-th percentile is within the latency bound): with
  ``t`` queries over the bound out of ``n``, the run passes if ``n >= h(t) + t``;
  otherwise it "would need at least h(t) + t - n more queries, all under latency".

The binomial CDF is computed exactly (in log space) with NumPy, so no SciPy is needed.

    >>> min_queries_for_claim(0.90), min_queries_for_claim(0.99)
    (64, 662)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import InputError

__all__ = ["DEFAULT_CONFIDENCE", "overlatency_odds", "min_passing_queries", "min_queries_for_claim",
           "EarlyStopResult", "percentile_estimate", "server_early_stopping", "binomial_cdf"]

DEFAULT_CONFIDENCE = 0.99


def _check(p: float, confidence: float) -> None:
    if not 0.0 < p < 1.0:
        raise InputError(f"a latency percentile must be a fraction in (0, 1), got {p} (p90 is 0.90)")
    if not 0.0 < confidence < 1.0:
        raise InputError(f"early-stopping confidence must be in (0, 1), got {confidence} (MLPerf uses 0.99)")


def binomial_cdf(n: int, q: float, t_max: int | None = None) -> np.ndarray:
    """``P[Binomial(n, q) <= t]`` for ``t = 0 .. t_max`` (default ``n``), exact up to float rounding.

    The pmf is built in log space by the ratio recurrence
    ``pmf(x + 1) / pmf(x) = (n - x) / (x + 1) * q / (1 - q)``, so ``n`` in the millions is cheap.
    """
    if n < 0:
        raise InputError(f"n must be >= 0, got {n}")
    if not 0.0 < q < 1.0:
        raise InputError(f"q must be in (0, 1), got {q}")
    t_max = n if t_max is None else max(0, min(int(t_max), n))
    x = np.arange(t_max, dtype=np.float64)
    steps = np.log(n - x) - np.log(x + 1.0) + (math.log(q) - math.log1p(-q))
    logpmf = n * math.log1p(-q) + np.concatenate([[0.0], np.cumsum(steps)])
    return np.minimum(np.cumsum(np.exp(logpmf)), 1.0)


def overlatency_odds(h: int, t: int, p: float) -> float:
    """Probability of ``t`` or fewer overlatency queries among ``h + t`` if the true percentile is the claim."""
    if h < 0 or t < 0:
        raise InputError(f"h and t must be >= 0, got h={h}, t={t}")
    return float(binomial_cdf(h + t, 1.0 - p, t)[t])


def min_passing_queries(t: int, p: float, confidence: float = DEFAULT_CONFIDENCE) -> int:
    """The smallest ``h`` with ``overlatency_odds(h, t, p) < 1 - confidence`` (LoadGen's ``find_min_passing``)."""
    _check(p, confidence)
    if t < 0:
        raise InputError(f"the overlatency count must be >= 0, got {t}")
    limit = 1.0 - confidence
    # odds() decreases as h grows: bracket by doubling from a slope-based guess, then bisect.
    lo = 0
    hi = max(1, int(math.ceil(math.log(limit) / math.log(p))) + int(t * p / (1.0 - p)))
    while overlatency_odds(hi, t, p) >= limit:
        lo, hi = hi, hi * 2
    while lo < hi:
        mid = (lo + hi) // 2
        if overlatency_odds(mid, t, p) < limit:
            hi = mid
        else:
            lo = mid + 1
    return lo


def min_queries_for_claim(p: float, confidence: float = DEFAULT_CONFIDENCE) -> int:
    """Queries a SingleStream/MultiStream run needs before any ``p``-th percentile claim (64 for p90)."""
    return min_passing_queries(1, p, confidence) + 1


@dataclass(frozen=True)
class EarlyStopResult:
    """What the early-stopping rule concluded about one run."""

    met: bool
    percentile: float              # as a fraction, 0.99
    confidence: float
    queries: int
    min_queries: int               # queries this run needed (for Server: given its overlatency count)
    overlatency_count: int | None  # Server: queries over the bound; SS/MS: None
    discarded_highest: int | None  # SS/MS: how many of the highest latencies the estimate skips
    estimate_ns: int | None        # SS/MS: the early-stopping percentile estimate
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile_estimate(latencies_ns: Sequence[int] | np.ndarray, p: float,
                        confidence: float = DEFAULT_CONFIDENCE) -> EarlyStopResult:
    """SingleStream/MultiStream: the early-stopping estimate of the ``p``-th percentile latency."""
    _check(p, confidence)
    lat = np.sort(np.asarray(latencies_ns, dtype=np.int64))
    n = int(lat.size)
    need = min_queries_for_claim(p, confidence)
    label = f"p{_pct(p)}"
    if n < need:
        return EarlyStopResult(False, p, confidence, n, need, None, None, None,
                               f"only {n} queries; a {label} claim needs at least {need} for early stopping")
    # Largest t >= 1 with h(t) + t <= n  <=>  P[Bin(n, 1-p) <= t] < 1 - c (odds fall as h grows).
    cdf = binomial_cdf(n, 1.0 - p)
    t = max(1, int(np.searchsorted(cdf, 1.0 - confidence, side="left")) - 1)
    while t > 1 and cdf[t] >= 1.0 - confidence:  # float ties at the boundary
        t -= 1
    estimate = int(lat[n - t])
    return EarlyStopResult(True, p, confidence, n, need, None, t - 1, estimate,
                           f"processed {n} queries (at least {need} needed); discarding the {t - 1} highest, "
                           f"the early-stopping {label} estimate is {estimate / 1e6:.3f} ms")


def server_early_stopping(latencies_ns: Sequence[int] | np.ndarray, bound_ns: int, p: float,
                          confidence: float = DEFAULT_CONFIDENCE) -> EarlyStopResult:
    """Server: does a run with these latencies support "p-th percentile <= bound" at this confidence?"""
    _check(p, confidence)
    lat = np.asarray(latencies_ns, dtype=np.int64)
    n = int(lat.size)
    t = int(np.count_nonzero(lat > bound_ns))
    h = min_passing_queries(t, p, confidence)
    need = h + t
    if n >= need:
        msg = (f"run successful: {t} of {n} queries over {bound_ns / 1e6:g} ms; "
               f"at least {need} queries were needed")
        return EarlyStopResult(True, p, confidence, n, need, t, None, None, msg)
    msg = (f"{t} of {n} queries over {bound_ns / 1e6:g} ms; would need at least {need - n} more queries, "
           "the run being successful only if every additional query were under the bound")
    return EarlyStopResult(False, p, confidence, n, need, t, None, None, msg)


def _pct(p: float) -> str:
    return f"{p * 100:.10g}"
