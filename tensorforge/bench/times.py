"""Raw per-request latencies of a bench run, written for other tools (trtexec's ``--exportTimes``).

Two formats, chosen by the file name: ``.csv`` gives one line per timed request with the columns
``precision,batch,streams,index,latency_ms``; any other name gives JSON, a list with one object per
row — ``{"precision", "batch", "streams", "threads", "times_ms": [...]}`` — the latencies in
milliseconds in the order the requests finished (warm-up excluded). The rows must have been measured
with ``BenchOptions(keep_times=True)``.

Example::

    results = bench_precisions("tiny_mlp", ["fp32"], BenchOptions(batches=(1,), iterations=100, keep_times=True))
    write_times("times.csv", results)
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Sequence

from ..errors import InputError
from .options import BenchResult

__all__ = ["times_rows", "write_times"]

CSV_FIELDS = ("precision", "batch", "streams", "index", "latency_ms")


def times_rows(results: BenchResult | Sequence[BenchResult]) -> list[dict[str, Any]]:
    """One dict per bench row: precision, batch, streams, threads and ``times_ms``."""
    items = [results] if isinstance(results, BenchResult) else list(results)
    out = []
    for res in items:
        for r in res.rows:
            if r.times_ms is None:
                raise InputError("these results hold no per-request times: bench with keep_times=True "
                                 "(command line: --export-times FILE)")
            out.append({"precision": res.model.get("precision"), "batch": r.batch, "streams": r.streams,
                        "threads": r.threads, "times_ms": list(r.times_ms)})
    return out


def write_times(path: str | os.PathLike[str], results: BenchResult | Sequence[BenchResult]) -> Path:
    """Write :func:`times_rows` to ``path``: CSV for a ``.csv`` name, else JSON (see the module doc)."""
    rows = times_rows(results)
    target = Path(path)
    if target.suffix.lower() == ".csv":
        with open(target, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(CSV_FIELDS)
            for row in rows:
                for i, ms in enumerate(row["times_ms"]):
                    w.writerow([row["precision"], row["batch"], row["streams"], i, f"{ms:.6f}"])
    else:
        target.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    return target
