"""The HTML report's plots, drawn with matplotlib (Agg) to inline SVG text: no files, no network.

Each function returns a :class:`Plot` — its name, how many data points it draws (the page puts that
in ``data-points``, so a test can check a rendered plot has data), and the ``<svg>`` element. The XML
prolog, DOCTYPE and metadata matplotlib writes are dropped (the page must name no URL to fetch), and
each figure's element ids get their own prefix so several SVGs in one page never share an id.
:func:`available` says whether matplotlib is installed; without it the page shows tables only.
"""

from __future__ import annotations

import importlib.util
import io
import itertools
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .profile_chart import PRECISION_COLORS

__all__ = ["Plot", "available", "line_plot", "bar_plot", "front_plot"]

_SALT = itertools.count()
_PROLOG = re.compile(r"^.*?(?=<svg)", re.S)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)


@dataclass(frozen=True)
class Plot:
    name: str
    points: int
    svg: str


def available() -> bool:
    """True when matplotlib can be imported (it comes with the ``loadgen`` extra)."""
    return importlib.util.find_spec("matplotlib") is not None


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _svg(fig: Any, plt: Any) -> str:
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": f"tf-report-{next(_SALT)}", "svg.fonttype": "path"}):
        fig.tight_layout()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    plt.close(fig)
    svg = _METADATA.sub("", _PROLOG.sub("", buf.getvalue(), count=1))
    prefix = f"tf{next(_SALT)}-"          # matplotlib reuses ids (figure_1, glyph names) in every figure
    svg = re.sub(r'\bid="', f'id="{prefix}', svg)
    svg = re.sub(r'href="#', f'href="#{prefix}', svg)
    return re.sub(r"url\(#", f"url(#{prefix}", svg)


def line_plot(name: str, series: Mapping[str, Sequence[tuple[float, float]]], *, xlabel: str, ylabel: str,
              title: str = "", log_x: bool = False, log_y: bool = False,
              hlines: Sequence[tuple[float, str]] = (), hollow: Mapping[str, Sequence[bool]] | None = None) -> Plot:
    """One line with markers per series; ``hlines`` (y, label) as grey dashed lines (a latency bound);
    ``hollow[label][i]`` draws point i of that series as an open circle (an INVALID run)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=100)
    count = 0
    for label, pts in series.items():
        pts = sorted(pts)
        if not pts:
            continue
        count += len(pts)
        (line,) = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        open_pts = [p for p, h in zip(pts, (hollow or {}).get(label, ())) if h]
        if open_pts:
            ax.scatter(*zip(*open_pts), s=70, facecolors="white", edgecolors=line.get_color(), zorder=3)
    for y, text in hlines:
        ax.axhline(y, color="grey", linestyle="--", linewidth=1)
        ax.annotate(text, (0.01, y), xycoords=("axes fraction", "data"), textcoords="offset points",
                    xytext=(0, 3), fontsize=8)
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    if log_x:                                # batch sizes: ticks at the batches measured
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({p[0] for pts in series.values() for p in pts}))
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    if log_y:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ys = [p[1] for pts in series.values() for p in pts if p[1] > 0] + [y for y, _ in hlines if y > 0]
        narrow = bool(ys) and max(ys) < 20 * min(ys)        # within about a decade: label the minor ticks too
        ax.yaxis.set_minor_formatter(FormatStrFormatter("%g") if narrow else NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if len(series) > 1 or hlines:
        ax.legend(fontsize=7, loc="best")
    return Plot(name, count, _svg(fig, plt))


def bar_plot(name: str, labels: Sequence[str], values: Sequence[float], *, xlabel: str, title: str = "",
             colors: Sequence[str] | None = None, notes: Sequence[str] | None = None) -> Plot:
    """Horizontal bars, the first label on top; ``colors`` may name precisions (the profile chart's hues)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.32 * len(labels)), dpi=100)
    y = list(range(len(labels)))[::-1]
    hues = [PRECISION_COLORS.get(c, c) for c in colors] if colors else None
    ax.barh(y, values, color=hues, height=0.7)
    widest = max(values, default=0.0) or 1.0
    for yi, v, note in zip(y, values, notes or [""] * len(values)):
        ax.text(v + widest * 0.01, yi, note or f"{v:.3g}", va="center", fontsize=7)
    ax.set_yticks(y)
    ax.set_yticklabels([t if len(t) <= 48 else t[:47] + "…" for t in labels], fontsize=7)
    ax.set_xlim(0, widest * 1.3)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)
    return Plot(name, len(values), _svg(fig, plt))


def front_plot(name: str, optimization: Mapping[str, Any], *, title: str = "") -> Plot:
    """Speed against accuracy loss of every scored candidate of an ``--optimize`` search, the Pareto
    front as a line and the chosen one as a star (as :func:`.pareto.plot_front`, to SVG)."""
    plt = _pyplot()
    points = [p for p in optimization.get("points", []) if p.get("speedup") is not None and p.get("loss") is not None]
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=100)
    for p in points:
        color = PRECISION_COLORS.get(str(p["precision"]).split("+")[0], "#999999")
        inside = p.get("within_budget") is not False
        ax.scatter(p["speedup"], p["loss"], s=36, color=color if inside else "none", edgecolors=color, zorder=3,
                   label=p["precision"])
    on_front = set(optimization.get("front", []))
    front = sorted((p for p in points if f"{p['name']} @{p['backend']}" in on_front), key=lambda p: p["speedup"])
    if front:
        ax.plot([p["speedup"] for p in front], [p["loss"] for p in front], "-", color="black", lw=1, label="front")
    chosen = optimization.get("chosen") or {}
    if chosen.get("speedup") is not None and chosen.get("loss") is not None:
        ax.scatter(chosen["speedup"], chosen["loss"], marker="*", s=220, color="gold", edgecolors="black", zorder=4,
                   label=f"chosen: {chosen.get('name')} @{chosen.get('backend')}")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=7, loc="best")
    ax.set_xlabel("speed × ONNX Runtime FP32 (defaults)")
    ax.set_ylabel(str(optimization.get("loss_metric", "accuracy loss")))
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    return Plot(name, len(points), _svg(fig, plt))
