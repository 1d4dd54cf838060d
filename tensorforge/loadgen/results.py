"""Writing a load test's results: JSON, an HDR latency histogram file, and plots.

* JSON — every setting and figure (``ScenarioResult.to_dict`` and friends), plus the
  latency histogram in HdrHistogram's compressed base64 form (``HISTFAAA…``), which any
  HdrHistogram library can decode.
* ``.hgrm`` — HdrHistogram's percentile-distribution text (values in ms), the format
  the HdrHistogram plotter (hdrhistogram.github.io/HdrHistogram/plotFiles.html) reads.
  Latencies are recorded in µs with 3 significant digits (0.1 % resolution).
* PNG — latency percentiles against offered load (the throughput–latency curve), and
  for a latency-budget sweep the highest throughput per budget. matplotlib is imported
  here only, with the non-interactive Agg backend.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ..errors import InputError

if TYPE_CHECKING:
    from .findmax import SweepResult
    from .verdict import ScenarioResult

__all__ = ["write_json", "hdr_histogram", "write_hgrm", "plot_load_curve", "plot_sweep"]

_HIGHEST_US = 3_600_000_000     # one hour, in µs


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=_default) + "\n", encoding="utf-8")
    return path


def _default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def hdr_histogram(latencies_ns: np.ndarray | Sequence[int]) -> Any:
    """An ``hdrh`` histogram of the latencies, recorded in µs (3 significant digits)."""
    from hdrh.histogram import HdrHistogram

    hist = HdrHistogram(1, _HIGHEST_US, 3)
    us = np.clip(np.rint(np.asarray(latencies_ns, dtype=np.float64) / 1e3), 1, _HIGHEST_US).astype(np.int64)
    values, counts = np.unique(us, return_counts=True)
    for v, c in zip(values.tolist(), counts.tolist()):
        hist.record_value(v, c)
    return hist


def write_hgrm(path: str | os.PathLike[str], latencies_ns: np.ndarray | Sequence[int]) -> tuple[Path, str]:
    """Write the percentile distribution (ms) to ``path``; return it and the encoded histogram for the JSON."""
    if len(latencies_ns) == 0:
        raise InputError("no latencies to write: the run completed no query")
    hist = hdr_histogram(latencies_ns)
    buf = io.BytesIO()
    hist.output_percentile_distribution(buf, 1000.0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    encoded = hist.encode()
    return path, encoded.decode("ascii") if isinstance(encoded, bytes) else str(encoded)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_load_curve(path: str | os.PathLike[str], series: Mapping[str, Sequence["ScenarioResult"]], *,
                    title: str = "latency vs offered load") -> Path:
    """Latency percentiles against offered load, one point per run, one colour per configuration.

    One configuration: p50, p90 and p99 lines; several: p99 solid and p50 dashed per
    configuration. INVALID runs are drawn hollow; latency bounds are grey dashed lines.
    """
    curves = {label: sorted((r for r in runs if r.latency is not None), key=_load) for label, runs in series.items()}
    curves = {label: runs for label, runs in curves.items() if runs}
    if not curves:
        raise InputError("nothing to plot: no run completed a query")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=120)
    single = len(curves) == 1
    keys = (("p50_ms", "p50", "-"), ("p90_ms", "p90", "-"), ("p99_ms", "p99", "-")) if single else \
        (("p99_ms", "p99", "-"), ("p50_ms", "p50", "--"))
    first: list["ScenarioResult"] = []
    for label, runs in curves.items():
        first = first or runs
        x = [_load(r) for r in runs]
        color = None
        for key, name, style in keys:
            y = [getattr(r.latency, key) for r in runs]
            (line,) = ax.plot(x, y, marker="o", linestyle=style, color=None if single else color,
                              label=name if single else f"{label} {name}")
            color = line.get_color()
            bad = [(xi, yi) for xi, yi, r in zip(x, y, runs) if not r.valid]
            if bad:
                ax.scatter(*zip(*bad), s=70, facecolors="white", edgecolors=color, zorder=3)
    bounds = sorted({float(r.settings["latency_bound_ms"]) for runs in curves.values() for r in runs
                     if r.settings.get("latency_bound_ms") is not None})
    for b in bounds:
        ax.axhline(b, color="grey", linestyle="--", linewidth=1)
        ax.annotate(f"bound {b:g} ms", (_load(first[0]), b), textcoords="offset points", xytext=(2, 3), fontsize=8)
    ax.set_xlabel("offered load (queries/s)" if first[0].scenario == "server" else "throughput (samples/s)")
    ax.set_ylabel("latency (ms)")
    ax.set_yscale("log")
    from matplotlib.ticker import FormatStrFormatter

    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.set_title(title + "  (hollow: INVALID)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, plt, path)


def _load(r: "ScenarioResult") -> float:
    if r.scenario == "server" and r.settings.get("target_qps"):
        return float(r.settings["target_qps"])
    return float(r.throughput_sps)


def plot_sweep(path: str | os.PathLike[str], sweep: "SweepResult", *,
               title: str = "highest throughput within each latency budget") -> Path:
    """The whitepaper's Chart 5 view: one line per configuration, max VALID QPS against the budget."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=120)
    for label in sweep.configs:
        per = sweep.max_qps[label]
        ax.plot(list(sweep.budgets_ms), [per[b] if per[b] is not None else np.nan for b in sweep.budgets_ms],
                marker="o", label=label)
    ax.set_xlabel("latency budget (ms)")
    ax.set_ylabel("highest valid offered load (queries/s)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, plt, path)


def _save(fig: Any, plt: Any, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(report: Any, outdir: str | os.PathLike[str], *, plot: bool = False) -> dict[str, str]:
    """Write ``results.json``, one ``.hgrm`` per run and (with ``plot``) the PNGs; return the paths by role."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    data = report.to_dict()
    files: dict[str, str] = {}
    for ci, config in enumerate(report.configs):
        for ri, run in enumerate(config.runs):
            if run.latencies_ns.size == 0:
                continue
            load = run.settings.get("target_qps")
            stem = f"latency-c{ci}-{run.scenario}" + (f"-{load:g}qps" if load and run.scenario == "server" else "")
            path, encoded = write_hgrm(outdir / f"{stem}-{ri}.hgrm", run.latencies_ns)
            data["configs"][ci]["runs"][ri]["hdr_histogram"] = {"file": str(path), "encoded": encoded,
                                                                "unit": "us", "significant_digits": 3}
            files[f"hgrm:{config.label}:{ri}"] = str(path)
    if plot:
        series = {c.label: list(c.runs) for c in report.configs if c.runs}
        if series:
            files["plot"] = str(plot_load_curve(outdir / "latency_vs_load.png", series))
        if report.sweep is not None:
            files["sweep_plot"] = str(plot_sweep(outdir / "latency_budget_sweep.png", report.sweep))
    data["files"] = files
    files["json"] = str(write_json(outdir / "results.json", data))
    return files
