"""The noise gate of ``bench --strict``: which rows were too noisy to trust.

Two figures of each row's per-request latencies (:func:`tensorforge.core.stats.noise`): the
coefficient of variation (``cv_pct``: standard deviation over mean, in %) and the spread of the
medians of five consecutive windows (``spread_pct``: drift during the run, in %). A row fails when
either is above its limit; a limit of None is not checked. The baseline's rows are not judged.

Example::

    reasons = noisy_rows(results, max_cv_pct=10, max_spread_pct=10)
    if reasons: print(reasons[0])
"""

from __future__ import annotations

from typing import Sequence

from ..errors import ConfigError
from .options import BenchResult

__all__ = ["noisy_rows"]


def noisy_rows(results: BenchResult | Sequence[BenchResult], *, max_cv_pct: float | None = 10.0,
               max_spread_pct: float | None = 10.0) -> list[str]:
    """One line per row over a limit, naming the row, the figure and the limit (empty: all within)."""
    for name, value in (("max_cv_pct", max_cv_pct), ("max_spread_pct", max_spread_pct)):
        if value is not None and not value >= 0:
            raise ConfigError(f"`{name}` is a percentage >= 0 (e.g. 10), got {value}")
    items = [results] if isinstance(results, BenchResult) else list(results)
    several = len(items) > 1
    reasons = []
    for res in items:
        for r in res.rows:
            where = (f"{res.model.get('precision')} " if several else "") + f"batch {r.batch}" + (
                f", {r.streams} streams" if r.streams > 1 else "")
            cv, spread = float(r.engine.noise["cv_pct"]), float(r.engine.noise["spread_pct"])
            if max_cv_pct is not None and cv > max_cv_pct:
                reasons.append(f"{where}: latency CV {cv:.1f}% > {max_cv_pct:g}%")
            if max_spread_pct is not None and spread > max_spread_pct:
                reasons.append(f"{where}: window medians spread {spread:.1f}% > {max_spread_pct:g}%")
    return reasons
