"""Bench one model at several precisions side by side: one :func:`~tensorforge.bench.runner.bench` per precision.

Each precision is built from the same source (ONNX file or zoo name) and measured with the
same options, in turn, in one process, so the rows compare like for like. Serialization of
the results (JSON with the ``tensorforge.bench-precisions/1`` schema, CSV, the table) lives
in :mod:`tensorforge.report.bench`.

Example::

    results = bench_precisions("resnet50", ("fp32", "fp16", "int8"), BenchOptions(batches=(1, 8)))
    write_bench_json("out.json", results)
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

from ..errors import ConfigError
from .runner import BenchOptions, BenchResult, ProgressFn, bench

__all__ = ["bench_precisions"]


def bench_precisions(target: Any, precisions: Sequence[str] = ("fp32",), options: BenchOptions = BenchOptions(),
                     progress: ProgressFn | None = None) -> list[BenchResult]:
    """One :class:`BenchResult` per entry of ``precisions``, in that order.

    ``options.precision`` is replaced by each precision in turn; every combination is
    validated before anything runs, so a bad precision fails at once, not after the
    first one's measurements. ``progress(label, fraction)`` sees the overall fraction and
    labels prefixed with the precision (``"int8: batch 8"``)."""
    if isinstance(precisions, str):
        precisions = (precisions,)
    if not precisions:
        raise ConfigError("precisions= is empty: give at least one of fp32, fp16, bf16, int8")
    per_precision = [replace(options, precision=p) for p in precisions]    # validates each first
    results = []
    for i, opts in enumerate(per_precision):
        def step(label: str, fraction: float, i: int = i, p: str = opts.precision) -> None:
            if progress is not None:
                progress(f"{p}: {label}", (i + fraction) / len(per_precision))

        results.append(bench(target, opts, progress=step))
    return results
