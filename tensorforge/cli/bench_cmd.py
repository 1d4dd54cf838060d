"""``tensorforge bench [MODEL]`` — the whitepaper's performance table for this machine."""

from __future__ import annotations

import argparse

from ..core.precisions import PRECISIONS
from ._fmt import console, para

HELP = "measure throughput, latency percentiles, memory and power at several batch sizes"
DEFAULT_MODEL = "mobilenet_v2"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help=HELP, description=para(
        "Benchmark like trtexec/giexec: for each batch size, warm up, then run back-to-back "
        "inferences on random inputs and report throughput (samples/s), latency percentiles "
        "(ms), peak memory, and power / perf-per-watt / joules-per-sample when a power sensor "
        "exists (RAPL on Linux CPUs, NVML on NVIDIA GPUs; otherwise 'n/a' with the reason). "
        "--baseline also runs bare ONNX Runtime on the original model in the same run, "
        "alternating with the engine, and prints the speedup.") + "\n\n" + para(
        "A stream is one thread sending requests back to back; --streams N runs N of them at "
        "once on ONE session of the engine, so the weights are loaded once and shared (each "
        "stream only adds its own activations). Unless --threads is given, the cores are split: "
        "the session gets physical cores / N intra-op threads (at least 1), so N narrow "
        "requests run side by side instead of one wide one. The row's throughput counts the "
        "samples of all streams over the wall time; its latencies are per request. Streams "
        "help when one request cannot keep every core busy (small batches, small models), "
        "usually at some cost in latency: --streams 1,2,4 measures each, one row per batch "
        "size and stream count. With --baseline, ONNX Runtime runs the same streams and threads."),
        epilog="examples:\n  tensorforge bench                          (mobilenet_v2, batches 1,2,4,8,64,128)\n"
               "  tensorforge bench resnet50 --batch 1,8 --baseline\n"
               "  tensorforge bench resnet50 --batch 1,8 --precision fp32,fp16,int8 --baseline\n"
               "  tensorforge bench model.tfe --batch 1 --duration 10 --json out.json\n"
               "  tensorforge bench resnet50 --batch 1 --streams 1,2,4   (throughput vs concurrent streams)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", default=DEFAULT_MODEL,
                   help=f"engine file (.tfe), ONNX file or zoo name (default: {DEFAULT_MODEL})")
    p.add_argument("--batch", default="1,2,4,8,64,128", help="comma-separated batch sizes (default: 1,2,4,8,64,128)")
    p.add_argument("--duration", type=float, default=2.0,
                   help="timed seconds per row: per batch size (and stream count) (default: 2)")
    p.add_argument("--warmup", type=float, default=0.5, help="warm-up seconds per row (default: 0.5)")
    p.add_argument("--min-iterations", type=int, default=5, help="at least this many timed calls (default: 5)")
    p.add_argument("--threads", type=int,
                   help="intra-op threads for engine and baseline, shared by all streams of a session (default: "
                        "the backend's; with --streams N, physical cores / N)")
    p.add_argument("--streams", default="1", metavar="N[,N...]",
                   help="concurrent streams on one shared-weights session, comma-separated to compare, e.g. 1,2,4 "
                        "(default: 1)")
    p.add_argument("--baseline", action="store_true",
                   help="also measure bare ONNX Runtime on the original model, same inputs, same run")
    p.add_argument("--precision", default="fp32",
                   help="comma-separated precisions to build and measure side by side, from "
                        f"{','.join(PRECISIONS)} "
                        "(default: fp32); one row per precision and batch size")
    p.add_argument("--calib", metavar="DATA",
                   help="INT8 calibration data (see `tensorforge build --help`); default: random inputs, which "
                        "is fine for speed but says nothing of accuracy (use `tensorforge accuracy` for that)")
    p.add_argument("--shapes", action="append", metavar="NAME:MIN,OPT,MAX",
                   help="for models with dynamic non-batch axes (a sequence length): the shape profile to build "
                        "with, as in `tensorforge build --shapes`; the rows run at (the first profile's) OPT, e.g. "
                        "input_ids:1x16,1x64,8x128 (default: the model's own profile; the length used is printed)")
    p.add_argument("--json", metavar="FILE", help="write every figure and setting as JSON")
    p.add_argument("--csv", metavar="FILE", help="write one row per batch size as CSV")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..bench.precisions import bench_precisions
    from ..bench.runner import BenchOptions, batches_from_text, streams_from_text
    from ..report.bench import write_bench_csv, write_bench_json
    from ._checks import library_progress

    precisions = [x.strip() for x in args.precision.split(",") if x.strip()] or ["fp32"]
    options = BenchOptions(batches=batches_from_text(args.batch), duration_s=args.duration, warmup_s=args.warmup,
                           min_iterations=args.min_iterations, threads=args.threads, baseline=args.baseline,
                           calibration=args.calib, streams=streams_from_text(args.streams),
                           shapes=args.shapes)
    # one line per row (batch, precision) when piped, a bar on a terminal; calibration batches too
    with library_progress(f"bench {args.model}") as step:
        results = bench_precisions(args.model, precisions, options, progress=lambda label, f: step(label, f))
    print_table(results)
    if args.json:
        write_bench_json(args.json, results)
    if args.csv:
        write_bench_csv(args.csv, results)
    return 0


def print_table(results) -> None:  # type: ignore[no-untyped-def]
    """Draw :func:`tensorforge.report.bench.bench_table` with rich: the table, its footnotes, its warnings
    (Python parameter names in them rewritten to this command's flags)."""
    from rich.table import Table

    from ..report.bench import bench_table
    from .main import command_flags, to_flags

    text = bench_table(results)
    table = Table(title=text.title)
    for c in text.columns:
        table.add_column(c, justify="right")
    for row in text.rows:
        table.add_row(*row)
    console.print(table)
    for note in text.notes:
        console.print(note)
    flags = command_flags("bench")
    for w in text.warnings:
        console.print(f"[yellow]warning:[/yellow] {to_flags(w, flags)}")
    # sequence models: say on the terminal which length was measured, not only in --json
    from rich.markup import escape

    from ._fmt import dynamic_axis_warnings

    seen: set[str] = set()
    for r in results:
        for w in dynamic_axis_warnings(r.model.get("inputs", []), "bench_shape_at_batch_1",
                                       "Another length: --shapes NAME:MIN,OPT,MAX (rows run at OPT)"):
            if w not in seen:
                seen.add(w)
                console.print(f"[yellow]warning:[/yellow] {escape(w)}")
