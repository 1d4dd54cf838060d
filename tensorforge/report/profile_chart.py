"""The per-layer profile as a chart: the top layers by time, one horizontal bar each, coloured by precision.

Slowest layer on top; each bar is labelled with its time and share of the layer time; rows
the profiler could not map to a payload node are hatched. The title states the engine,
backend and batch, the subtitle how much of the run the layers account for. matplotlib is
imported only when a chart is drawn (the "Agg" backend: no display needed).

>>> write_profile_chart(result, "profile.png", top=15)       # doctest: +SKIP
PosixPath('profile.png')
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError

if TYPE_CHECKING:
    from ..bench.profile import ProfileResult

# one colour per precision, stable across charts (colour-blind-safe Okabe-Ito hues)
PRECISION_COLORS = {"int8": "#009E73", "fp32": "#0072B2", "fp16": "#E69F00", "bf16": "#CC79A7",
                    "int32": "#56B4E9", "int64": "#56B4E9", "bool": "#999999", "fp64": "#D55E00"}
_OTHER = "#999999"
_LABEL_CHARS = 44


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _short(text: str, width: int = _LABEL_CHARS) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def write_profile_chart(result: "ProfileResult", path: str | os.PathLike[str], *, top: int = 15) -> Path:
    """Draw the ``top`` slowest layers of ``result`` as a PNG at ``path``; return the path."""
    if top < 1:
        raise InputError(f"top must be >= 1, got {top}")
    rows = list(result.top(top))
    if not rows:
        raise InputError(f"nothing to chart: the profile of {result.engine!r} has no timed layer")
    plt = _pyplot()
    height = 1.6 + 0.36 * len(rows)
    fig, ax = plt.subplots(figsize=(10, height), dpi=120)
    labels = [_short(r.name) + ("  (unmapped)" if not r.mapped else "") + f"\n{_short(r.kernel, 30)}"
              for r in rows]
    y = list(range(len(rows)))[::-1]                 # slowest on top
    bars = ax.barh(y, [r.time_ms for r in rows], color=[PRECISION_COLORS.get(r.precision, _OTHER) for r in rows],
                   edgecolor="white", height=0.72)
    for bar, row in zip(bars, rows):
        if not row.mapped:
            bar.set_hatch("//")
            bar.set_edgecolor("#444444")
    widest = max(r.time_ms for r in rows)
    for yi, row in zip(y, rows):
        ax.text(row.time_ms + widest * 0.01, yi, f"{row.time_ms:.3g} ms · {row.share_pct:.1f} %", va="center",
                fontsize=8)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlim(0, widest * 1.22)
    ax.set_xlabel(f"time per run (ms, {result.statistic} of {result.runs} profiled runs)")
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    shown = len(rows)
    ax.set_title(f"{result.engine} ({result.engine_precision}) · {result.backend} · batch {result.batch} — "
                 f"top {shown} of {len(result.layers)} layers\nlayers {result.layers_total_ms:.3g} ms of a "
                 f"{result.run_ms:.3g} ms run ({result.coverage_pct:.0f} %)", fontsize=10)
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=PRECISION_COLORS.get(p, _OTHER), label=f"{p} {share:.1f} % of layer time")
               for p, share in result.precision_summary.items()]
    if any(not r.mapped for r in rows):
        handles.append(Patch(facecolor="white", edgecolor="#444444", hatch="//", label="no payload node"))
    ax.legend(handles=handles, fontsize=8, loc="lower right")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(out)
    finally:
        plt.close(fig)
    return out
