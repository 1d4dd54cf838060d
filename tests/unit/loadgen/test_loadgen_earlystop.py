"""MLPerf early stopping: the binomial odds, the minimum query counts, and LoadGen's procedure step by step."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tensorforge.errors import InputError
from tensorforge.loadgen.earlystop import (
    binomial_cdf,
    min_passing_queries,
    min_queries_for_claim,
    overlatency_odds,
    percentile_estimate,
    server_early_stopping,
)


def _odds_exact(h: int, t: int, p: float) -> float:
    n = h + t
    return sum(math.comb(n, x) * (1 - p) ** x * p ** (n - x) for x in range(t + 1))


def test_binomial_cdf_matches_exact_sums():
    for n in (0, 1, 7, 60, 400):
        for q in (0.01, 0.1, 0.5):
            cdf = binomial_cdf(n, q)
            exact = np.cumsum([math.comb(n, x) * q ** x * (1 - q) ** (n - x) for x in range(n + 1)])
            assert np.allclose(cdf, exact, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("h,t,p", [(63, 1, 0.9), (62, 1, 0.9), (500, 3, 0.99), (40, 0, 0.9), (2000, 25, 0.99)])
def test_overlatency_odds_is_the_binomial_tail(h, t, p):
    assert overlatency_odds(h, t, p) == pytest.approx(_odds_exact(h, t, p), rel=1e-9)


def test_minimum_queries_are_mlperfs():
    # the figures MLPerf's rules quote for p90, p99 and p99.9 claims at 99 % confidence
    assert min_queries_for_claim(0.90) == 64
    assert min_queries_for_claim(0.99) == 662
    assert min_queries_for_claim(0.999) == 6636
    # and they are minimal: one fewer query does not pass
    assert overlatency_odds(63, 1, 0.9) < 0.01 <= overlatency_odds(62, 1, 0.9)


@pytest.mark.parametrize("t", [0, 1, 5, 40, 300])
@pytest.mark.parametrize("p", [0.9, 0.99])
def test_min_passing_queries_is_the_smallest_h(t, p):
    h = min_passing_queries(t, p)
    assert overlatency_odds(h, t, p) < 0.01
    assert h == 0 or overlatency_odds(h - 1, t, p) >= 0.01


def _loadgen_reference(latencies: np.ndarray, p: float) -> int | None:
    """LoadGen's SingleStream procedure as results.cc writes it: raise t until h(t) + t exceeds n."""
    n = latencies.size
    h_min = min_passing_queries(1, p)
    if n < h_min + 1:
        return None
    t = 1
    for i in range(2, n + 1):
        if n < min_passing_queries(i, p) + i:
            t = i - 1
            break
    return int(np.sort(latencies)[n - t])


@pytest.mark.parametrize("n", [63, 64, 65, 100, 300, 662, 663, 1500])
@pytest.mark.parametrize("p", [0.9, 0.99])
def test_percentile_estimate_equals_loadgens_procedure(n, p):
    lat = np.random.default_rng(n).integers(1_000_000, 50_000_000, size=n)
    ours = percentile_estimate(lat, p)
    ref = _loadgen_reference(lat, p)
    assert ours.met == (ref is not None)
    assert ours.estimate_ns == ref
    if ours.met:
        assert ours.estimate_ns >= np.sort(lat)[int(n * p)]      # never optimistic vs the raw percentile
    else:
        assert "needs at least" in ours.message


def test_server_rule_boundary():
    p, bound = 0.99, 10_000_000
    h0 = min_passing_queries(0, p)            # all under the bound: ceil(log 0.01 / log 0.99) = 459
    assert h0 == 459
    assert server_early_stopping(np.full(h0, 5_000_000), bound, p).met
    short = server_early_stopping(np.full(h0 - 1, 5_000_000), bound, p)
    assert not short.met and "1 more queries" in short.message
    # 10 over the bound: needs h(10) + 10 queries in all
    need = min_passing_queries(10, p) + 10
    lat = np.concatenate([np.full(need - 10, 5_000_000), np.full(10, 20_000_000)])
    res = server_early_stopping(lat, bound, p)
    assert res.met and res.overlatency_count == 10 and res.min_queries == need
    assert not server_early_stopping(lat[1:], bound, p).met


def test_bad_parameters_raise():
    with pytest.raises(InputError):
        min_queries_for_claim(99.0)
    with pytest.raises(InputError):
        percentile_estimate([1, 2, 3], 0.9, confidence=1.5)
    with pytest.raises(InputError):
        min_passing_queries(-1, 0.9)
