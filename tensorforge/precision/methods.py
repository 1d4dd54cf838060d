"""Calibration methods: from a tensor's |x| histogram to the range INT8 will represent.

Every method picks a clipping threshold ``T`` on |x|; the range is then
``(max(min, -T), min(max, T))`` — symmetric for a signed tensor, ``[0, T]`` after a
ReLU, and exactly ``(min, max)`` when nothing is clipped.

* ``minmax``     — no clipping: ``T = max |x|``.
* ``percentile`` — ``T`` is the given percentile of |x| (e.g. 99.99), interpolated
  linearly inside its bin.
* ``entropy``    — TensorRT's default: for each candidate number of kept bins
  ``i`` (from ``levels`` up to all), P = the first ``i`` bins with the clipped outliers
  added to the last; Q = the same bins merged into ``levels`` quantization levels and
  spread back evenly over the bins that were nonzero; ``T = i * width`` for the ``i``
  minimizing KL(P‖Q).
* ``mse``        — ``T`` minimizes the expected squared quantization error: clipped values
  cost ``(|x| - T)²``, the others the uniform rounding error ``s²/12`` with step
  ``s = T / levels``.

``levels`` is the number of positive quantization steps: 127 for signed INT8, 255 for
an unsigned tensor that never goes negative.

``dynamic`` (in :data:`INT8_METHODS`, not :data:`METHODS`) is no threshold at all: it asks for
dynamic INT8 (:mod:`.dynamic`), whose activation ranges are each call's own min/max at run time.
"""

from __future__ import annotations

import numpy as np

from .histogram import AbsHistogram

__all__ = ["METHODS", "INT8_METHODS", "DYNAMIC", "threshold", "tensor_range", "levels_for"]

METHODS = ("minmax", "entropy", "percentile", "mse")
DYNAMIC = "dynamic"          # no calibration: ranges per call (precision/dynamic.py)
INT8_METHODS = METHODS + (DYNAMIC,)


def levels_for(hist: AbsHistogram, unsigned: bool) -> int:
    return 255 if unsigned and hist.min >= 0.0 else 127


def _percentile(counts: np.ndarray, width: float, pct: float) -> float:
    total = counts.sum()
    target = total * pct / 100.0
    cum = np.cumsum(counts)
    i = int(np.searchsorted(cum, target, side="left"))
    i = min(i, counts.size - 1)
    before = cum[i - 1] if i else 0
    inside = counts[i]
    frac = (target - before) / inside if inside else 1.0
    return float((i + min(max(frac, 0.0), 1.0)) * width)


def _entropy(counts: np.ndarray, width: float, levels: int) -> float:
    nz_last = int(np.flatnonzero(counts)[-1]) + 1 if counts.any() else 1
    if nz_last <= levels:        # fewer occupied bins than levels: nothing to gain by clipping
        return nz_last * width
    c = counts[:nz_last].astype(np.float64)
    c[0] = c[1]     # ignore the spike of exact zeros (ReLU outputs, padding): it would dominate P and Q alike
    best_i, best_kl = nz_last, np.inf
    suffix = np.concatenate([np.cumsum(c[::-1])[::-1], [0.0]])      # suffix[i] = sum(c[i:])
    for i in range(levels, nz_last + 1):
        p = c[:i].copy()
        p[-1] += suffix[i]
        edges = (np.arange(levels + 1) * i) // levels
        nonzero = c[:i] > 0
        chunk_sum = np.add.reduceat(c[:i], edges[:-1])
        chunk_nz = np.add.reduceat(nonzero.astype(np.float64), edges[:-1])
        per_bin = np.divide(chunk_sum, chunk_nz, out=np.zeros_like(chunk_sum), where=chunk_nz > 0)
        q = np.repeat(per_bin, np.diff(edges)) * nonzero
        p /= p.sum()
        q_sum = q.sum()
        if q_sum == 0:
            continue
        q /= q_sum
        mask = p > 0
        q_m = np.maximum(q[mask], 1e-12)       # P > 0 where Q == 0 (outliers in an empty last bin)
        kl = float(np.sum(p[mask] * np.log(p[mask] / q_m)))
        if kl <= best_kl + 1e-12:      # ties: the widest range
            best_kl, best_i = kl, i
    return best_i * width


def _mse(counts: np.ndarray, width: float, levels: int) -> float:
    nz_last = int(np.flatnonzero(counts)[-1]) + 1 if counts.any() else 1
    centers = (np.arange(nz_last) + 0.5) * width
    c = counts[:nz_last].astype(np.float64)
    best_t, best_err = nz_last * width, np.inf
    for i in range(1, nz_last + 1):
        t = i * width
        step = t / levels
        clipped = centers > t
        err = np.sum(c[~clipped]) * step * step / 12.0 + np.sum(c[clipped] * (centers[clipped] - t) ** 2)
        if err < best_err:
            best_err, best_t = err, t
    return float(best_t)


def threshold(hist: AbsHistogram, method: str, *, percentile: float = 99.99, unsigned: bool = False) -> float:
    """The clipping threshold on |x| that ``method`` picks for this histogram."""
    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r}; use one of {', '.join(METHODS)}")
    if hist.total == 0:
        raise ValueError("the histogram is empty: no calibration data reached this tensor")
    if method == "minmax" or hist.width == 0.0:
        return hist.abs_max
    if method == "percentile":
        if not 0.0 < percentile <= 100.0:
            raise ValueError(f"percentile must be in (0, 100], got {percentile}")
        t = _percentile(hist.counts, hist.width, percentile)
    elif method == "entropy":
        t = _entropy(hist.counts, hist.width, levels_for(hist, unsigned) + 1)
    else:
        t = _mse(hist.counts, hist.width, levels_for(hist, unsigned))
    return min(t, hist.abs_max)


def tensor_range(hist: AbsHistogram, method: str, *, percentile: float = 99.99,
                 unsigned: bool = False) -> tuple[float, float]:
    """(low, high) of the tensor after clipping at the method's threshold."""
    t = threshold(hist, method, percentile=percentile, unsigned=unsigned)
    return max(hist.min, -t), min(hist.max, t)
