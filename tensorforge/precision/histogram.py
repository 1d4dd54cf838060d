"""A mergeable histogram of |x| for one tensor, built batch by batch during calibration.

The bins cover ``[0, num_bins * width)``. The width is set by the first batch (its max
|x| spans all bins); when a later batch holds a larger value, the range doubles by
merging adjacent bin pairs — an exact re-binning, so no count is ever smeared across
bins by interpolation. The exact min and max of x are kept beside the bins (the
``minmax`` method and the sign of the tensor need them).

Example::

    h = AbsHistogram(num_bins=2048)
    for batch in batches:
        h.update(batch)
    h.counts, h.width, h.min, h.max
"""

from __future__ import annotations

import numpy as np

__all__ = ["AbsHistogram"]


class AbsHistogram:
    def __init__(self, num_bins: int = 2048) -> None:
        if num_bins < 2 or num_bins % 2:
            raise ValueError(f"num_bins must be an even number >= 2, got {num_bins}")
        self.num_bins = num_bins
        self.counts = np.zeros(num_bins, dtype=np.int64)
        self.width = 0.0            # 0 until a nonzero value is seen (all zeros so far sit in bin 0)
        self.min = float("inf")
        self.max = float("-inf")
        self.total = 0

    @property
    def abs_max(self) -> float:
        return max(abs(self.min), abs(self.max)) if self.total else 0.0

    @property
    def top(self) -> float:
        """Upper edge of the last bin."""
        return self.width * self.num_bins

    def update(self, x: np.ndarray) -> None:
        flat = np.asarray(x).reshape(-1)
        if flat.size == 0:
            return
        if flat.dtype.kind != "f":
            flat = flat.astype(np.float32)
        lo, hi = float(flat.min()), float(flat.max())
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError("calibration saw NaN or Inf in a tensor; clean the calibration data")
        self.min, self.max = min(self.min, lo), max(self.max, hi)
        self.total += int(flat.size)
        a = np.abs(flat)
        amax = max(abs(lo), abs(hi))
        if amax == 0.0:
            self.counts[0] += flat.size
            return
        if self.width == 0.0:
            self.width = amax / self.num_bins
        while amax > self.top:
            self._double()
        idx = np.minimum((a / self.width).astype(np.int64), self.num_bins - 1)
        self.counts += np.bincount(idx, minlength=self.num_bins)

    def _double(self) -> None:
        self.counts = np.concatenate([self.counts.reshape(-1, 2).sum(axis=1),
                                      np.zeros(self.num_bins // 2, dtype=np.int64)])
        self.width *= 2.0

    @classmethod
    def from_state(cls, num_bins: int, counts: np.ndarray, width: float, minimum: float,
                   maximum: float) -> "AbsHistogram":
        """A histogram with this exact state (as a histogram file stores it); ``total`` is the counts' sum."""
        h = cls(num_bins)
        if counts.shape != (num_bins,):
            raise ValueError(f"counts has shape {counts.shape}; a {num_bins}-bin histogram needs ({num_bins},)")
        h.counts = np.array(counts, dtype=np.int64)       # a writable copy: update() adds to it in place
        h.width, h.min, h.max = float(width), float(minimum), float(maximum)
        h.total = int(h.counts.sum())
        return h

    def to_dict(self) -> dict[str, object]:
        return {"num_bins": self.num_bins, "width": self.width, "min": self.min, "max": self.max,
                "total": self.total, "counts": self.counts.tolist()}
