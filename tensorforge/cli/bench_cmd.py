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
        "inferences on random inputs (or --input's real data) and report throughput (samples/s), latency percentiles "
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
        "size and stream count. With --baseline, ONNX Runtime runs the same streams and threads.") + "\n\n" + para(
        "--concurrency 1,2,4,8 is a load sweep instead (perf_analyzer's --concurrency-range): N requests in "
        "flight on one session whose threads stay as --threads (or the backend's default) at every level, one "
        "row per level with its throughput and latency percentiles (the 'streams' column and JSON field hold "
        "the level). --iterations N times exactly N calls per row instead of --duration seconds (trtexec's "
        "--iterations); --export-times FILE writes every timed request's latency; --strict exits 1 when a row "
        "is too noisy to trust; --input replaces the random inputs by real data; --backend builds the model for "
        "another backend first, in the same process.") + "\n\n" + para(
        "Sequence models (BERT-like, inputs [batch, length]): --lengths 16,64,128 measures every batch size at "
        "every length, one row each, with random token ids (every position real, no padding); the table gains a "
        "'length' and a 'tokens/s' column (samples/s × length), --json/--csv rows 'seq_len' and 'tokens_per_s'. "
        "Each length must lie inside the engine's shape profile: for a zoo name or ONNX file give that profile "
        "with --shapes (e.g. input_ids:1x8,4x64,8x128); an engine file keeps the profiles it was built "
        "with.") + "\n\n" + para(
        "Exit codes: 0 done; 1 --strict and a row over --max-cv / --max-spread (one line says which); 2 a bad "
        "argument, before any measuring (one line)."),
        epilog="examples:\n  tensorforge bench                          (mobilenet_v2, batches 1,2,4,8,64,128)\n"
               "  tensorforge bench resnet50 --batch 1,8 --baseline\n"
               "  tensorforge bench resnet50 --batch 1,8 --precision fp32,fp16,int8 --baseline\n"
               "  tensorforge bench model.tfe --batch 1 --duration 10 --json out.json\n"
               "  tensorforge bench resnet50 --batch 1 --streams 1,2,4   (throughput vs concurrent streams)\n"
               "  tensorforge bench tiny_mlp --batch 1 --concurrency 1,2,4,8 --json sweep.json\n"
               "  tensorforge bench mnist_cnn --backend openvino --batch 1,8 --iterations 500 "
               "--export-times times.csv\n"
               "  tensorforge bench model.tfe --batch 1 --iterations 2000 --strict --max-cv 5   (CI gate)\n"
               "  tensorforge bench mnist_cnn --batch 8 --input digits.npz      (real inputs, rows taken in turn)\n"
               "  tensorforge bench resnet50 --batch 1 --input images/          (jpg/png resized to the input)\n"
               "  tensorforge bench bert_tiny --shapes input_ids:1x8,4x64,8x128 --batch 1,4 --lengths 16,64,128\n"
               "                                             (samples/s and tokens/s per batch × length)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", default=DEFAULT_MODEL,
                   help=f"engine file (.tfe), ONNX file or zoo name (default: {DEFAULT_MODEL})")
    p.add_argument("--batch", default="1,2,4,8,64,128", help="comma-separated batch sizes (default: 1,2,4,8,64,128)")
    p.add_argument("--duration", type=float,
                   help="timed seconds per row: per batch size (and stream count) (default: 2; not with "
                        "--iterations)")
    p.add_argument("--iterations", type=int, metavar="N",
                   help="time exactly N calls per row after the warm-up, instead of a --duration (with --streams or "
                        "--concurrency C, each call is one wave of C requests, so a row holds N×C requests)")
    p.add_argument("--warmup", type=float, default=0.5, help="warm-up seconds per row (default: 0.5)")
    p.add_argument("--min-iterations", type=int, default=5, help="at least this many timed calls (default: 5)")
    p.add_argument("--threads", type=int,
                   help="intra-op threads for engine and baseline, shared by all streams of a session (default: "
                        "the backend's; with --streams N, physical cores / N)")
    p.add_argument("--streams", default="1", metavar="N[,N...]",
                   help="concurrent streams on one shared-weights session, comma-separated to compare, e.g. 1,2,4 "
                        "(default: 1)")
    p.add_argument("--concurrency", metavar="N[,N...]",
                   help="load sweep: N requests in flight on one session, its threads fixed (--threads or the "
                        "backend's default) at every level, e.g. 1,2,4,8; one row per level (not with --streams)")
    p.add_argument("--backend", metavar="NAME",
                   help="build the ONNX file or zoo model for this backend first, in this process, at the default "
                        "settings (see `tensorforge backends`; default: onnxruntime). An engine file keeps the "
                        "backend it was built for")
    p.add_argument("--input", metavar="FILE|DIR",
                   help="real inputs instead of random ones: FILE.npy (one-input model; rows on axis 0), FILE.npz "
                        "(one array per input, named after it) or a folder of images (jpg/png/…, converted to the "
                        "model's channels, resized to its H×W, scaled to [0,1], laid out as its input; no mean/std "
                        "— give arrays for that). Checked against the model's inputs first; calls take the rows "
                        "in turn, wrapping around")
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
    p.add_argument("--lengths", metavar="L[,L...]",
                   help="sequence models only: comma-separated sequence lengths to measure at each batch size, e.g. "
                        "16,64,128; one row per batch and length, with tokens/s = samples/s × length. Every length "
                        "must be inside the shape profile (--shapes for a zoo name or ONNX file, the recorded one "
                        "for an engine file); default: one length, the profile's OPT")
    p.add_argument("--json", metavar="FILE", help="write every figure and setting as JSON")
    p.add_argument("--csv", metavar="FILE", help="write one row per batch size as CSV")
    p.add_argument("--export-times", metavar="FILE",
                   help="write every timed request's latency in ms, warm-up excluded: FILE.csv gives CSV lines "
                        "precision,batch,streams,index,latency_ms; any other name gives JSON, a list of "
                        "{precision, batch, streams, threads, times_ms: [...]} (one per row)")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 (one line says which row and why) when a row's latencies are too noisy: CV over "
                        "--max-cv or window-median spread over --max-spread")
    p.add_argument("--max-cv", type=float, metavar="PCT",
                   help="with --strict: most coefficient of variation of the latencies (std/mean), in percent "
                        "(default: 10)")
    p.add_argument("--max-spread", type=float, metavar="PCT",
                   help="with --strict: most spread between the medians of 5 consecutive windows of the run "
                        "(drift), in percent (default: 10)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..bench.precisions import bench_precisions
    from ..bench.runner import BenchOptions, batches_from_text, lengths_from_text, streams_from_text
    from ..bench.strict import noisy_rows
    from ..errors import InputError
    from ..report.bench import write_bench_csv, write_bench_json
    from ._checks import check_bench_args, library_progress

    check_bench_args(args)        # flag combinations and limits: one line, exit 2, before anything runs
    precisions = [x.strip() for x in args.precision.split(",") if x.strip()] or ["fp32"]
    concurrency = streams_from_text(args.concurrency, "--concurrency") if args.concurrency else None
    options = BenchOptions(batches=batches_from_text(args.batch),
                           duration_s=args.duration if args.duration is not None else 2.0, warmup_s=args.warmup,
                           min_iterations=args.min_iterations, threads=args.threads, baseline=args.baseline,
                           calibration=args.calib, streams=concurrency or streams_from_text(args.streams),
                           shapes=args.shapes, iterations=args.iterations, keep_times=bool(args.export_times),
                           split_threads=concurrency is None, backend=args.backend, input_data=args.input,
                           seq_lengths=lengths_from_text(args.lengths) if args.lengths else ())
    # one line per row (batch, precision) when piped, a bar on a terminal; calibration batches too
    try:
        with library_progress(f"bench {args.model}") as step:
            results = bench_precisions(args.model, precisions, options, progress=lambda label, f: step(label, f))
    except InputError as exc:       # the library names `seq_lengths`; this command calls it --lengths
        if "`seq_lengths`" not in str(exc):
            raise
        raise InputError(str(exc).replace("`seq_lengths`", "--lengths")) from exc
    print_table(results)
    if concurrency:
        console.print("concurrency: the 'streams' column is the number of requests in flight; the session's threads "
                      "are the same at every level")
    if args.json:
        write_bench_json(args.json, results)
    if args.csv:
        write_bench_csv(args.csv, results)
    if args.export_times:
        from ..bench.times import write_times

        console.print(f"per-request times: {write_times(args.export_times, results)}")
    if args.strict:
        reasons = noisy_rows(results, max_cv_pct=10.0 if args.max_cv is None else args.max_cv,
                             max_spread_pct=10.0 if args.max_spread is None else args.max_spread)
        if reasons:
            import sys

            more = f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""
            print(f"error: --strict: too noisy to trust: {reasons[0]}{more}; close other programs, raise --duration "
                  "or --iterations, or loosen --max-cv / --max-spread", file=sys.stderr)     # one line, unwrapped
            return 1
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
    if any(row.seq_len is not None for r in results for row in r.rows):
        return          # the lengths are in the table; the other axes at OPT, as its note says
    for r in results:
        for w in dynamic_axis_warnings(r.model.get("inputs", []), "bench_shape_at_batch_1",
                                       "Another length: --shapes NAME:MIN,OPT,MAX (rows run at OPT)"):
            if w not in seen:
                seen.add(w)
                console.print(f"[yellow]warning:[/yellow] {escape(w)}")
