"""Tests for tensorforge.core.stats: the percentile definition on hand-computed examples, properties."""

from __future__ import annotations

import doctest
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tensorforge.core import stats
from tensorforge.core.stats import latency_stats, noise, percentile, percentile_index, ratio_within_noise

MS = 1_000_000  # nanoseconds per millisecond


def test_hand_computed_percentiles_on_four_samples() -> None:
    # LoadGen's definition: sorted [1, 2, 3, 4], the p-quantile at index min(3, floor(4 * p))
    s = latency_stats([1 * MS, 2 * MS, 3 * MS, 4 * MS])
    assert s.count == 4
    assert s.min_ms == 1.0 and s.max_ms == 4.0
    assert s.mean_ms == 2.5
    assert s.p50_ms == 3.0     # floor(2.0)  = 2 -> 3 (numpy's 'linear' would say 2.5)
    assert s.p90_ms == 4.0     # floor(3.6)  = 3 -> 4
    assert s.p95_ms == 4.0     # floor(3.8)  = 3 -> 4
    assert s.p99_ms == 4.0     # floor(3.96) = 3 -> 4
    assert s.p97_ms == 4.0 and s.p999_ms == 4.0
    assert s.std_ms == pytest.approx(np.sqrt(1.25))  # population std of 1..4


def test_hand_computed_on_unsorted_odd_count() -> None:
    s = latency_stats([5 * MS, 1 * MS, 3 * MS])
    assert s.p50_ms == 3.0     # sorted [1, 3, 5]: floor(1.5) = 1 -> 3
    assert s.p90_ms == 5.0     # floor(2.7) = 2 -> 5
    assert s.mean_ms == 3.0


def test_percentile_definition_on_ten_values() -> None:
    values = [70, 10, 100, 40, 20, 90, 30, 60, 80, 50]          # sorted: 10, 20, ..., 100
    assert percentile(values, 0.0) == 10
    assert percentile(values, 0.5) == 60                         # index floor(5.0) = 5
    assert percentile(values, 0.9) == 100                        # index floor(9.0) = 9
    assert percentile(values, 0.89) == 90                        # index floor(8.9) = 8
    assert percentile(values, 1.0) == 100                        # clamped to the last
    assert percentile(sorted(values), 0.25, presorted=True) == 30   # index floor(2.5) = 2
    assert [percentile_index(1000, p) for p in (0.5, 0.9, 0.99, 0.999)] == [500, 900, 990, 999]


def test_percentile_is_always_a_sample() -> None:
    rng = np.random.default_rng(0)
    ns = rng.lognormal(mean=15, sigma=0.3, size=1001).astype(np.int64)
    s = latency_stats(ns)
    ms = set((ns / 1e6).tolist())
    assert {s.p50_ms, s.p90_ms, s.p95_ms, s.p99_ms} <= ms
    assert s.p99_ms == np.sort(ns)[990] / 1e6 and s.p999_ms == np.sort(ns)[999] / 1e6
    assert s.mean_ms == pytest.approx((ns / 1e6).mean(), rel=1e-12)
    assert s.std_ms == pytest.approx((ns / 1e6).std(), rel=1e-12)


@pytest.mark.parametrize("bad", [-0.01, 1.01, float("nan")])
def test_percentile_rejects_bad_fractions(bad) -> None:
    with pytest.raises(ValueError, match="fraction"):
        percentile([1, 2, 3], bad)
    with pytest.raises(ValueError, match="at least one"):
        percentile([], 0.5)


def test_single_sample() -> None:
    s = latency_stats(np.array([1_500_000], dtype=np.int64))
    assert (s.min_ms, s.p50_ms, s.p99_ms, s.max_ms, s.std_ms) == (1.5, 1.5, 1.5, 1.5, 0.0)


def test_to_dict_is_json() -> None:
    d = latency_stats([MS, 2 * MS]).to_dict()
    assert set(d) == {"count", "min_ms", "mean_ms", "p50_ms", "p90_ms", "p95_ms", "p97_ms", "p99_ms", "p999_ms",
                      "max_ms", "std_ms"}
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
    assert s.min_ms <= s.p50_ms <= s.p90_ms <= s.p95_ms <= s.p97_ms <= s.p99_ms <= s.p999_ms <= s.max_ms
    assert s.min_ms <= s.mean_ms <= s.max_ms
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
