"""Tests for tensorforge.bench.stats: hand-computed values, numpy as reference, properties."""

from __future__ import annotations

import doctest
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tensorforge.bench import stats
from tensorforge.bench.stats import latency_stats, noise, ratio_within_noise

MS = 1_000_000  # nanoseconds per millisecond


def test_hand_computed_percentiles_on_four_samples() -> None:
    s = latency_stats([1 * MS, 2 * MS, 3 * MS, 4 * MS])
    # linear: position = q/100 * (n-1) = q * 0.03 over sorted [1, 2, 3, 4]
    assert s.count == 4
    assert s.min_ms == 1.0 and s.max_ms == 4.0
    assert s.mean_ms == 2.5
    assert s.p50_ms == pytest.approx(2.5)   # pos 1.5
    assert s.p90_ms == pytest.approx(3.7)   # pos 2.7
    assert s.p95_ms == pytest.approx(3.85)  # pos 2.85
    assert s.p99_ms == pytest.approx(3.97)  # pos 2.97
    assert s.std_ms == pytest.approx(np.sqrt(1.25))  # population std of 1..4


def test_hand_computed_on_unsorted_odd_count() -> None:
    s = latency_stats([5 * MS, 1 * MS, 3 * MS])
    assert s.p50_ms == 3.0
    assert s.p90_ms == pytest.approx(4.6)  # pos 1.8 over [1, 3, 5]
    assert s.mean_ms == 3.0


def test_single_sample() -> None:
    s = latency_stats(np.array([1_500_000], dtype=np.int64))
    assert (s.min_ms, s.p50_ms, s.p99_ms, s.max_ms, s.std_ms) == (1.5, 1.5, 1.5, 1.5, 0.0)


def test_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    ns = rng.lognormal(mean=15, sigma=0.3, size=1001).astype(np.int64)
    s = latency_stats(ns)
    ms = ns / 1e6
    for q, got in [(50, s.p50_ms), (90, s.p90_ms), (95, s.p95_ms), (99, s.p99_ms)]:
        assert got == pytest.approx(np.percentile(ms, q), rel=1e-12)
    assert s.mean_ms == pytest.approx(ms.mean(), rel=1e-12)
    assert s.std_ms == pytest.approx(ms.std(), rel=1e-12)


def test_to_dict_is_json() -> None:
    d = latency_stats([MS, 2 * MS]).to_dict()
    assert set(d) == {"count", "min_ms", "mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms", "std_ms"}
    assert json.loads(json.dumps(d)) == d
    assert isinstance(d["count"], int) and isinstance(d["p50_ms"], float)


@pytest.mark.parametrize("bad", [[], np.array([], dtype=np.int64)])
def test_empty_raises(bad) -> None:
    with pytest.raises(ValueError, match="no latency samples"):
        latency_stats(bad)
    with pytest.raises(ValueError):
        noise(bad)


@pytest.mark.parametrize("bad", [[1, -5], [1.0, float("nan")], [[1, 2], [3, 4]]])
def test_invalid_samples_raise(bad) -> None:
    with pytest.raises(ValueError):
        latency_stats(bad)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=300))
def test_property_order(samples: list[int]) -> None:
    s = latency_stats(samples)
    assert s.min_ms <= s.p50_ms <= s.p90_ms <= s.p95_ms <= s.p99_ms <= s.max_ms
    assert s.min_ms <= s.mean_ms <= s.max_ms
    assert s.std_ms >= 0
    assert s.count == len(samples)


def test_noise_constant_series() -> None:
    n = noise([3 * MS] * 100)
    assert n.windows == 5
    assert n.window_medians_ms == (3.0,) * 5
    assert n.spread_pct == 0.0 and n.cv_pct == 0.0
    assert n.noisy is False and n.threshold_pct == 10.0


def test_noise_slow_second_half_is_noisy() -> None:
    n = noise([10 * MS] * 50 + [13 * MS] * 50, windows=4)
    assert n.window_medians_ms == (10.0, 10.0, 13.0, 13.0)
    assert n.spread_pct == pytest.approx(3 / 11.5 * 100)
    assert n.noisy is True


def test_noise_threshold_and_cv() -> None:
    n = noise([10 * MS] * 50 + [10_500_000] * 50, windows=2, threshold_pct=10.0)
    assert n.spread_pct == pytest.approx(0.5 / 10.25 * 100)
    assert n.noisy is False
    assert n.cv_pct == pytest.approx(0.25 / 10.25 * 100)


def test_noise_fewer_samples_than_windows() -> None:
    n = noise([1 * MS, 2 * MS, 3 * MS], windows=5)
    assert n.windows == 3
    assert n.window_medians_ms == (1.0, 2.0, 3.0)
    assert json.loads(json.dumps(n.to_dict()))["window_medians_ms"] == [1.0, 2.0, 3.0]


def test_noise_all_zero_and_bad_args() -> None:
    assert noise([0, 0, 0]).spread_pct == 0.0
    with pytest.raises(ValueError):
        noise([1, 2], windows=0)
    with pytest.raises(ValueError):
        noise([1, 2], threshold_pct=-1)


@pytest.mark.parametrize(
    ("ours", "peer", "pct", "kw", "expected"),
    [
        (9.0, 10.0, 5.0, {}, "faster"),       # lower latency
        (11.0, 10.0, 5.0, {}, "slower"),
        (10.4, 10.0, 5.0, {}, "same"),
        (10.5, 10.0, 5.0, {}, "same"),        # exactly on the boundary counts as same
        (10.0, 10.0, 0.0, {}, "same"),
        (120.0, 100.0, 5.0, {"higher_is_better": True}, "faster"),  # throughput
        (80.0, 100.0, 5.0, {"higher_is_better": True}, "slower"),
    ],
)
def test_ratio_within_noise(ours, peer, pct, kw, expected) -> None:
    assert ratio_within_noise(ours, peer, pct, **kw) == expected


@pytest.mark.parametrize("args", [(0.0, 1.0, 5.0), (1.0, -1.0, 5.0), (1.0, 1.0, -1.0), (float("nan"), 1.0, 1.0)])
def test_ratio_within_noise_rejects_bad_values(args) -> None:
    with pytest.raises(ValueError):
        ratio_within_noise(*args)


def test_docstring_examples() -> None:
    failures, _ = doctest.testmod(stats)
    assert failures == 0
