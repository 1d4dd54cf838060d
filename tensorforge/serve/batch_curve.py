"""How long a batch of ``n`` rows takes to compute: the curve the deadline-aware scheduler plans with.

A :class:`BatchCurve` holds one estimate per measured batch size (seconds), starts from
points given or measured when the model is loaded (:meth:`BatchCurve.measure`), and
refreshes them from the live batch timings with an exponentially weighted moving average
per batch size (:meth:`BatchCurve.observe`). Sizes never measured are interpolated
linearly between their neighbours, and extrapolated along the nearest segment (one point
alone: time proportional to rows). Pure and clock-free but for :meth:`measure`, which
runs the model; not thread-safe (the batcher calls it under its lock).

>>> curve = BatchCurve({1: 0.004, 8: 0.020})
>>> round(curve.compute_s(4) * 1000, 3)       # between the points: linear
10.857
>>> curve.observe(8, 0.030); round(curve.compute_s(8), 4)    # EWMA, alpha 0.2
0.022
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..core.specs import TensorSpec, random_inputs
from ..errors import ConfigError

DEFAULT_ALPHA = 0.2    # weight of one new batch timing in its size's moving average


class BatchCurve:
    """Batch size → compute seconds: measured points, EWMA-refreshed, interpolated in between."""

    def __init__(self, points: Mapping[int, float] | None = None, alpha: float = DEFAULT_ALPHA) -> None:
        if not 0 < alpha <= 1:
            raise ConfigError(f"alpha must be in (0, 1] (the weight of each new timing), got {alpha}")
        self.alpha = alpha
        self._points: dict[int, float] = {}
        self._sizes: list[int] = []
        for rows, seconds in (points or {}).items():
            self._check(rows, seconds)
            self._points[int(rows)] = float(seconds)
        self._sizes = sorted(self._points)
        self.observed = 0              # live timings folded in so far

    @staticmethod
    def _check(rows: int, seconds: float) -> None:
        if int(rows) < 1:
            raise ConfigError(f"a batch curve point needs rows >= 1, got {rows}")
        if not np.isfinite(seconds) or seconds < 0:
            raise ConfigError(f"a batch curve point needs a finite compute time >= 0 s, got {seconds} for {rows} rows")

    @property
    def known(self) -> bool:
        """Whether any point is known (else every estimate is 0: nothing to plan with yet)."""
        return bool(self._sizes)

    def points(self) -> dict[int, float]:
        """The current estimate of each measured size, in seconds, smallest size first."""
        return {n: self._points[n] for n in self._sizes}

    def observe(self, rows: int, seconds: float) -> None:
        """Fold one live batch timing into its size's moving average (a new size starts at the timing)."""
        if rows < 1 or not np.isfinite(seconds) or seconds < 0:
            return                      # a broken timing never poisons the plan
        old = self._points.get(rows)
        if old is None:
            self._points[rows] = seconds
            self._sizes = sorted(self._points)
        else:
            self._points[rows] = old + self.alpha * (seconds - old)
        self.observed += 1

    def compute_s(self, rows: int) -> float:
        """Estimated seconds to compute a batch of ``rows`` (0.0 while no point is known)."""
        sizes = self._sizes
        if not sizes:
            return 0.0
        p = self._points
        if rows in p:
            return p[rows]
        if len(sizes) == 1:
            return p[sizes[0]] * rows / sizes[0]
        if rows < sizes[0]:
            a, b = sizes[0], sizes[1]
        elif rows > sizes[-1]:
            a, b = sizes[-2], sizes[-1]
        else:
            i = next(i for i, n in enumerate(sizes) if n > rows)
            a, b = sizes[i - 1], sizes[i]
        slope = (p[b] - p[a]) / (b - a)
        return max(0.0, p[a] + slope * (rows - a))

    def throughput_gain(self, max_rows: int) -> float | None:
        """Samples/s at ``max_rows`` ÷ samples/s at 1 row (the most batching can add); None if unknown."""
        one, most = self.compute_s(1), self.compute_s(max_rows)
        if one <= 0 or most <= 0:
            return None
        return (max_rows / most) / (1.0 / one)

    def to_dict(self) -> dict[str, Any]:
        return {"points_ms": {str(n): round(s * 1000.0, 4) for n, s in self.points().items()},
                "observed": self.observed, "alpha": self.alpha}

    @classmethod
    def measure(cls, execute: Callable[[dict[str, np.ndarray]], Any], sample: Mapping[str, np.ndarray],
                sizes: Sequence[int], repeats: int = 3, alpha: float = DEFAULT_ALPHA,
                clock: Callable[[], float] = time.perf_counter) -> "BatchCurve":
        """Time ``execute`` on ``sample`` tiled to each batch size (one warm-up, then the median of ``repeats``).

        ``sample`` holds one request's inputs (any rows); its first row is repeated to each size.
        """
        if not sizes or any(int(n) < 1 for n in sizes):
            raise ConfigError(f"sizes must be batch sizes >= 1, got {list(sizes)}")
        if repeats < 1:
            raise ConfigError(f"repeats must be >= 1, got {repeats}")
        points: dict[int, float] = {}
        for n in sorted({int(s) for s in sizes}):
            feeds = {k: np.repeat(np.asarray(v)[:1], n, axis=0) for k, v in sample.items()}
            execute(feeds)
            times = []
            for _ in range(repeats):
                t0 = clock()
                execute(feeds)
                times.append(clock() - t0)
            points[n] = float(np.median(times))
        return cls(points, alpha=alpha)


def curve_sizes(max_batch_size: int) -> list[int]:
    """The batch sizes timed at load: 1, the max, and powers of two between (interpolation does the rest)."""
    sizes = {1, max_batch_size}
    n = 2
    while n < max_batch_size:
        sizes.add(n)
        n *= 4
    return sorted(sizes)


def measure_at_load(execute: Callable[[dict[str, np.ndarray]], Any], specs: Sequence[TensorSpec],
                    max_batch_size: int, repeats: int = 3) -> BatchCurve:
    """The curve of a model just loaded: random inputs of its input specs, timed at :func:`curve_sizes`.

    The model owner passes it to the batcher (``DynamicBatcher(..., curve=measure_at_load(instance.run,
    engine.inputs, config.max_batch_size))``) so deadlines are planned from the first request on.
    """
    return BatchCurve.measure(execute, random_inputs(specs, 1, seed=0), curve_sizes(max_batch_size), repeats)
