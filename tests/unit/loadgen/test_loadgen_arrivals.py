"""Arrival schedules: Poisson statistics (mean, CV, median), seeded reproducibility, sizing rules, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tensorforge.errors import InputError
from tensorforge.loadgen.arrivals import arrival_schedule, poisson_gaps_s


@pytest.mark.parametrize("rate", [10.0, 250.0, 20_000.0])
def test_poisson_gaps_have_exponential_mean_and_cv(rate):
    gaps = poisson_gaps_s(rate, 200_000, seed=3)
    mean, cv = gaps.mean(), gaps.std() / gaps.mean()
    # 200k draws: the sample mean and CV of Exp(rate) are within ~0.5 % (std error 1/sqrt(n) ≈ 0.22 %)
    assert mean == pytest.approx(1.0 / rate, rel=0.01)
    assert cv == pytest.approx(1.0, abs=0.01)
    # the median of an exponential is ln 2 / rate; half the gaps fall below it
    assert np.mean(gaps < math.log(2) / rate) == pytest.approx(0.5, abs=0.005)


def test_poisson_counts_per_window_have_poisson_dispersion():
    s = arrival_schedule("poisson", 1000.0, min_count=1, min_duration_s=100.0, seed=11)
    counts = np.bincount((s.offsets_ns // 100_000_000).astype(np.int64))[:-1]   # 0.1 s windows, last one partial
    # Poisson counts: mean = variance = rate × window = 100
    assert counts.mean() == pytest.approx(100, rel=0.02)
    assert counts.var() / counts.mean() == pytest.approx(1.0, abs=0.15)


def test_same_seed_same_schedule_other_seed_other_schedule():
    a = arrival_schedule("poisson", 500.0, min_count=100, min_duration_s=1.0, seed=7)
    b = arrival_schedule("poisson", 500.0, min_count=100, min_duration_s=1.0, seed=7)
    c = arrival_schedule("poisson", 500.0, min_count=100, min_duration_s=1.0, seed=8)
    assert np.array_equal(a.offsets_ns, b.offsets_ns)
    assert not np.array_equal(a.offsets_ns[:50], c.offsets_ns[:50])
    assert a.offsets_ns.dtype == np.int64


def test_schedule_covers_min_count_and_min_duration():
    short = arrival_schedule("poisson", 100.0, min_count=500, min_duration_s=0.1, seed=1)
    assert short.count == 500
    long = arrival_schedule("poisson", 100.0, min_count=10, min_duration_s=3.0, seed=1)
    assert long.span_s >= 3.0 and long.offsets_ns[-2] < 3e9      # stops at the first query past the minimum
    capped = arrival_schedule("poisson", 100.0, min_count=10, min_duration_s=3.0, seed=1, max_count=50)
    assert capped.count == 50
    d = long.to_dict()
    assert d["kind"] == "poisson" and d["count"] == long.count and d["rate_qps"] == 100.0


def test_constant_schedule_is_evenly_spaced():
    s = arrival_schedule("constant", 200.0, min_count=10, min_duration_s=1.0)
    gaps = np.diff(s.offsets_ns)
    assert s.count == 200 and s.offsets_ns[0] == 5_000_000
    assert np.all(np.abs(gaps - 5_000_000) <= 1)


@given(rate=st.floats(1.0, 50_000.0), seed=st.integers(0, 2**32 - 1), min_count=st.integers(1, 300),
       duration=st.floats(0.0, 0.5))
@settings(max_examples=40, deadline=None)
def test_schedule_properties_hold_for_any_rate(rate, seed, min_count, duration):
    s = arrival_schedule("poisson", rate, min_count=min_count, min_duration_s=duration, seed=seed)
    assert s.count >= min_count
    assert s.offsets_ns[-1] >= round(duration * 1e9) - 1
    assert np.all(np.diff(s.offsets_ns) >= 0) and s.offsets_ns[0] >= 0


@pytest.mark.parametrize("kwargs", [dict(kind="poisson", rate_qps=0.0), dict(kind="poisson", rate_qps=float("nan")),
                                    dict(kind="bursty", rate_qps=10.0)])
def test_bad_schedules_raise_input_error(kwargs):
    with pytest.raises(InputError):
        arrival_schedule(min_count=1, min_duration_s=1.0, **kwargs)
    with pytest.raises(InputError):
        arrival_schedule("poisson", 10.0, min_count=0, min_duration_s=1.0)
