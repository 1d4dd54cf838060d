"""Latency statistics, the one percentile definition, and run-to-run noise — shared by every layer.

Timings come in as integer nanoseconds (what :func:`time.perf_counter_ns` gives); the
summaries go out in milliseconds.

**Percentile definition** (:func:`percentile`): MLPerf LoadGen's — of ``n`` latencies sorted
ascending, the ``p``-quantile is the value at 0-based index ``min(n - 1, floor(n * p))``.
It is used for every reported latency percentile (``bench``'s :class:`LatencyStats`, the
load generator's summaries, the tuner's p50), so "p99" means one thing everywhere, and our
load-test figures match the official LoadGen's on the same data. It is always one of the
measured latencies (never an interpolation between two), so a reported p99 is a latency
that really happened. Note it is not numpy's default ``'linear'`` method: for 4 samples
``[1, 2, 3, 4]`` ms the p50 is 3 ms (index ``floor(4 * 0.5) = 2``), not 2.5 ms.

Example::

    >>> s = latency_stats([1_000_000, 2_000_000, 3_000_000, 4_000_000])
    >>> s.p50_ms, s.max_ms
    (3.0, 4.0)
    >>> noise([1_000_000] * 10).noisy
    False
    >>> ratio_within_noise(9.0, 10.0, noise_pct=5.0)   # 9 ms vs 10 ms: 10 % quicker
    'faster'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

__all__ = ["LatencyStats", "latency_stats", "Noise", "noise", "percentile", "percentile_index",
           "ratio_within_noise", "REPORTED_PERCENTILES"]

_NS_PER_MS = 1e6


def _as_ms(samples_ns: Sequence[int] | np.ndarray) -> np.ndarray:
    """Validate timings in nanoseconds and return them as a 1-D float64 array in ms."""
    arr = np.asarray(samples_ns)
    if arr.ndim != 1:
        raise ValueError(
            f"latency samples must be a flat sequence of nanoseconds; got an array of shape "
            f"{arr.shape} — pass one timing per run, e.g. arr.ravel()"
        )
    if arr.size == 0:
        raise ValueError("no latency samples: run at least one timed iteration")
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"latency samples must be numbers of nanoseconds, got dtype {arr.dtype}")
    ms = arr.astype(np.float64) / _NS_PER_MS
    if not np.all(np.isfinite(ms)):
        raise ValueError("latency samples contain NaN or infinity; every timing must be a finite duration")
    if np.any(ms < 0):
        raise ValueError(
            f"latency samples contain a negative duration ({float(ms.min()) * _NS_PER_MS:.0f} ns); "
            "time with a monotonic clock such as time.perf_counter_ns()"
        )
    return ms


REPORTED_PERCENTILES = (0.50, 0.90, 0.95, 0.97, 0.99, 0.999)


@dataclass(frozen=True)
class LatencyStats:
    """The one latency summary (bench's per-call latencies, the load generator's per-query ones), in
    milliseconds: the :data:`REPORTED_PERCENTILES` by :func:`percentile`; ``std_ms`` is the
    population std (ddof=0)."""

    count: int
    min_ms: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p97_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    std_ms: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def percentile_index(n: int, p: float) -> int:
    """0-based index of the ``p``-quantile (``p`` a fraction in [0, 1]) among ``n`` sorted values.

    ``min(n - 1, floor(n * p))``, LoadGen's rule (see the module doc).

    >>> percentile_index(4, 0.5), percentile_index(100, 0.99), percentile_index(10, 1.0)
    (2, 99, 9)
    """
    if n < 1:
        raise ValueError("no values: a percentile needs at least one")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"a percentile is a fraction in [0, 1] (p99 is 0.99), got {p}")
    return min(n - 1, int(n * p))


def percentile(values: Sequence[float] | np.ndarray, p: float, *, presorted: bool = False) -> Any:
    """The ``p``-quantile of ``values`` by the one definition (module doc): one of the values, same type.

    ``presorted=True`` skips the sort when ``values`` are already ascending.

    >>> percentile([40, 10, 30, 20], 0.5), percentile([40, 10, 30, 20], 0.99)
    (30, 40)
    """
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"percentile needs a flat sequence of values, got shape {arr.shape}")
    if not presorted:
        arr = np.sort(arr)
    return arr[percentile_index(int(arr.size), p)].item()


def latency_stats(samples_ns: Sequence[int] | np.ndarray) -> LatencyStats:
    """Summarise per-iteration latencies given in nanoseconds.

    Percentiles by :func:`percentile` (LoadGen's definition). Raises :class:`ValueError` for an
    empty, non-flat, non-finite or negative input.

    >>> latency_stats([5_000_000]).p99_ms
    5.0
    """
    ms = np.sort(_as_ms(samples_ns))
    p50, p90, p95, p97, p99, p999 = (float(percentile(ms, p, presorted=True)) for p in REPORTED_PERCENTILES)
    lo, hi = float(ms[0]), float(ms[-1])
    # The mean of floats can land a rounding error outside [min, max]; clamp it back.
    mean = min(max(float(ms.mean()), lo), hi)
    return LatencyStats(
        count=int(ms.size),
        min_ms=lo,
        mean_ms=mean,
        p50_ms=p50,
        p90_ms=p90,
        p95_ms=p95,
        p97_ms=p97,
        p99_ms=p99,
        p999_ms=p999,
        max_ms=hi,
        std_ms=float(ms.std(ddof=0)),
    )


@dataclass(frozen=True)
class Noise:
    """How steady a run was: medians of consecutive equal-count windows, and the CV.

    A run whose window medians drift apart by more than ``threshold_pct`` (thermal
    throttling, a noisy neighbour, a frequency change) is flagged ``noisy`` so the
    report can say so instead of presenting the mean as the truth.
    """

    windows: int
    window_medians_ms: tuple[float, ...]
    spread_pct: float
    cv_pct: float
    noisy: bool
    threshold_pct: float

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["window_medians_ms"] = list(self.window_medians_ms)
        return d


def noise(
    samples_ns: Sequence[int] | np.ndarray, *, windows: int = 5, threshold_pct: float = 10.0
) -> Noise:
    """Split the run, in order, into ``windows`` equal-count windows and compare their medians.

    The window medians are numpy medians (the mean of the two middle values for an even count):
    a centre for the drift check, not a reported latency percentile.

    ``spread_pct = (max - min) / median(window medians) * 100``; ``cv_pct`` is the
    population standard deviation of all samples over their mean, in percent. Windows
    hold ``len // windows`` or one more sample (``np.array_split``). With fewer samples
    than ``windows``, each sample is its own window (``windows = len(samples)``). A run
    that is all zeros has 0 spread and 0 CV.

    >>> noise([10_000_000] * 5 + [20_000_000] * 5, windows=2).spread_pct
    66.66666666666666
    """
    if windows < 1:
        raise ValueError(f"windows must be >= 1, got {windows}")
    if not (threshold_pct >= 0 and np.isfinite(threshold_pct)):
        raise ValueError(f"threshold_pct must be a finite percentage >= 0, got {threshold_pct}")
    ms = _as_ms(samples_ns)
    n_windows = min(windows, int(ms.size))
    medians = tuple(float(np.median(w)) for w in np.array_split(ms, n_windows))
    centre = float(np.median(medians))
    spread = (max(medians) - min(medians)) / centre * 100.0 if centre > 0 else 0.0
    mean = float(ms.mean())
    cv = float(ms.std(ddof=0)) / mean * 100.0 if mean > 0 else 0.0
    return Noise(
        windows=n_windows,
        window_medians_ms=medians,
        spread_pct=float(spread),
        cv_pct=cv,
        noisy=bool(spread > threshold_pct),
        threshold_pct=float(threshold_pct),
    )


def ratio_within_noise(
    ours: float, peer: float, noise_pct: float, *, higher_is_better: bool = False
) -> Literal["faster", "slower", "same"]:
    """Compare our measurement with a peer's, calling differences inside the noise "same".

    By default both values are times (latency, lower is better); pass
    ``higher_is_better=True`` for throughputs. With ``ratio = ours / peer`` the result is
    ``"same"`` when ``|ratio - 1| * 100 <= noise_pct``, otherwise ``"faster"`` or
    ``"slower"``.

    >>> ratio_within_noise(100.0, 104.0, noise_pct=5.0)
    'same'
    >>> ratio_within_noise(120.0, 100.0, noise_pct=5.0, higher_is_better=True)
    'faster'
    """
    for label, value in (("ours", ours), ("peer", peer)):
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{label} must be a positive finite measurement, got {value}")
    if not (np.isfinite(noise_pct) and noise_pct >= 0):
        raise ValueError(f"noise_pct must be a finite percentage >= 0, got {noise_pct}")
    ratio = ours / peer
    # The 1e-9 slack keeps a difference exactly on the boundary (10.5 vs 10 at 5 %) "same"
    # despite binary rounding of the ratio.
    if abs(ratio - 1.0) * 100.0 <= noise_pct + 1e-9:
        return "same"
    ours_larger = ratio > 1.0
    return "faster" if ours_larger == higher_is_better else "slower"
