"""The serialized forms of bench results: JSON, CSV and the rows of the printed table.

One home for the schema of ``tensorforge.bench`` results, whoever writes them (the command
line, a script, a notebook):

* JSON — one result is its own dict (schema ``tensorforge.bench/1``); results at several
  precisions of one model are wrapped as ``{"schema": "tensorforge.bench-precisions/1",
  "results": [...]}``;
* CSV — one line per (precision, batch, streams) row, columns :data:`CSV_FIELDS` (plus
  :data:`LENGTH_FIELDS` when sequence lengths were swept);
* table — :func:`bench_table` gives the title, column names, text cells and footnotes of
  the whitepaper-style table; a front end only draws them.

Functions take one :class:`~tensorforge.bench.runner.BenchResult` or a sequence of them.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence, Union

from ..errors import InputError
from .units import human_bytes

if TYPE_CHECKING:
    from ..bench.runner import BenchResult

__all__ = ["PRECISIONS_SCHEMA", "CSV_FIELDS", "BenchTable", "bench_json", "csv_rows", "write_bench_json",
           "write_bench_csv", "bench_table", "LENGTH_FIELDS", "csv_fields"]

PRECISIONS_SCHEMA = "tensorforge.bench-precisions/1"     # several precisions of one model, one result each
CSV_FIELDS = ("precision", "batch", "throughput_sps", "min_ms", "mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms",
              "max_ms", "iterations", "noise_spread_pct", "peak_rss_bytes", "power_w", "perf_per_watt",
              "energy_j_per_sample", "baseline_throughput_sps", "speedup_vs_baseline", "speedup_noise_pct", "streams",
              "threads")

LENGTH_FIELDS = ("seq_len", "tokens_per_s")     # appended only when a run swept sequence lengths

Results = Union["BenchResult", Sequence["BenchResult"]]


def _as_list(results: Results) -> list["BenchResult"]:
    items = list(results) if isinstance(results, (list, tuple)) else [results]
    if not items:
        raise InputError("no bench results to report: give one BenchResult or a list of them")
    return items  # type: ignore[return-value]


def bench_json(results: Results) -> dict[str, Any]:
    """The JSON document of one result (its own schema) or of several precisions (wrapped)."""
    items = _as_list(results)
    if len(items) == 1:
        return items[0].to_dict()
    return {"schema": PRECISIONS_SCHEMA, "results": [r.to_dict() for r in items]}


def write_bench_json(path: str | os.PathLike[str], results: Results) -> Path:
    """Write :func:`bench_json` to ``path`` (indented; values JSON cannot hold are written as text)."""
    out = Path(path)
    with open(out, "w", encoding="utf-8") as fh:
        json.dump(bench_json(results), fh, indent=2, default=str)
        fh.write("\n")
    return out


def _swept(items: list["BenchResult"]) -> bool:
    return any(r.seq_len is not None for res in items for r in res.rows)


def csv_fields(results: Results) -> tuple[str, ...]:
    """The CSV header: :data:`CSV_FIELDS`, plus :data:`LENGTH_FIELDS` when sequence lengths were swept."""
    return CSV_FIELDS + (LENGTH_FIELDS if _swept(_as_list(results)) else ())


def csv_rows(results: Results) -> list[list[Any]]:
    """One list of values per measured row, in the order of :func:`csv_fields` (header not included)."""
    rows = []
    items = _as_list(results)
    swept = _swept(items)
    for res in items:
        precision = res.model["precision"]
        for r in res.rows:
            lat = r.engine.latency
            rows.append([precision, r.batch, r.engine.throughput_sps, lat["min_ms"], lat["mean_ms"], lat["p50_ms"],
                         lat["p90_ms"], lat["p95_ms"], lat["p99_ms"], lat["max_ms"], r.engine.iterations,
                         r.engine.noise["spread_pct"], r.peak_rss_bytes, r.power_w, r.perf_per_watt,
                         r.energy_j_per_sample, r.baseline.throughput_sps if r.baseline else None,
                         r.speedup_vs_baseline, r.speedup_noise_pct, r.streams, r.threads]
                        + ([r.seq_len, r.tokens_per_s] if swept else []))
    return rows


def write_bench_csv(path: str | os.PathLike[str], results: Results) -> Path:
    """Write the header and :func:`csv_rows` to ``path``."""
    out = Path(path)
    with open(out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(csv_fields(results))
        writer.writerows(csv_rows(results))
    return out


@dataclass(frozen=True)
class BenchTable:
    """The bench table as text: what to draw, not how (the CLI draws it with rich)."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)       # footnotes, printed under the table
    warnings: list[str] = field(default_factory=list)    # one line each, deduplicated


def _num(x: float | None, fmt: str = "{:.2f}") -> str:
    return "n/a" if x is None else fmt.format(x)


def bench_table(results: Results) -> BenchTable:
    """Title, columns, cells and footnotes of the whitepaper table for one or several precisions.

    A precision column appears only for several results, a streams column only when some
    run used streams other than 1, the ORT and speedup columns only with a baseline."""
    items = _as_list(results)
    first = items[0]
    host = first.host
    several = len(items) > 1
    with_streams = any(tuple(res.options.get("streams", (1,))) != (1,) for res in items)
    with_lengths = _swept(items)       # sequence lengths swept: a length and a tokens/s column
    precision = "" if several else f"{first.model['precision'].upper()} · "
    title = (f"{first.model['name']} · {precision}{first.model['backend']} · "
             f"{host['cpu_model']} ({host['logical_cores']} cores)")
    columns = (["precision"] if several else []) + ["batch"] + (["length"] if with_lengths else []) + (
        ["streams"] if with_streams else []) + ["perf (samples/s)"] + (["tokens/s"] if with_lengths else []) + [
        "power (W)", "perf/W", "latency mean (ms)", "min", "p50", "p90", "p95", "p99",
        "max", "peak RSS", "noise %"]
    has_base = any(r.baseline for res in items for r in res.rows)
    if has_base:
        columns += ["ORT (samples/s)", "speedup"]
    pairs = [(res.model["precision"], r) for res in items for r in res.rows]
    cells = []
    for prec, r in pairs:
        lat = r.engine.latency
        row = ([prec.upper()] if several else []) + [str(r.batch)] + ([str(r.seq_len)] if with_lengths else []) + (
            [str(r.streams)] if with_streams else []) + [f"{r.engine.throughput_sps:,.1f}"] + (
            [_num(r.tokens_per_s, "{:,.0f}")] if with_lengths else []) + [_num(r.power_w), _num(r.perf_per_watt),
            f"{lat['mean_ms']:.2f}", f"{lat['min_ms']:.2f}", f"{lat['p50_ms']:.2f}", f"{lat['p90_ms']:.2f}",
            f"{lat['p95_ms']:.2f}", f"{lat['p99_ms']:.2f}", f"{lat['max_ms']:.2f}",
            human_bytes(r.peak_rss_bytes), f"{r.engine.noise['spread_pct']:.1f}"]
        if has_base:
            if r.baseline:
                speedup = f"{r.speedup_vs_baseline:.3f}× ±{r.speedup_noise_pct:.1f}% ({r.verdict_vs_baseline})"
                row += [f"{r.baseline.throughput_sps:,.1f}", speedup]
            else:
                row += ["n/a", "n/a"]
        cells.append(row)
    notes = []
    if all(r.power_w is None for _, r in pairs):
        notes.append(f"power: n/a — {first.power_source}")
    if has_base and several:
        notes.append("speedup: against bare ONNX Runtime on the original FP32 model, in the same run")
    if with_lengths:
        notes.append("length: sequence length of random token ids, every position real (no padding); "
                     "tokens/s = samples/s × length")
    if with_streams:
        notes.append("streams: concurrent requests on one session (weights shared); perf counts all streams, "
                     "latency is per request" + ("; ORT runs the same streams" if has_base else ""))
    warnings = list(dict.fromkeys((f"{res.model['precision']}: " if several else "") + w
                                  for res in items for w in res.warnings))
    return BenchTable(title=title, columns=columns, rows=cells, notes=notes, warnings=warnings)
