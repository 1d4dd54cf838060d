"""``tensorforge bench [MODEL]`` — the whitepaper's performance table for this machine."""

from __future__ import annotations

import argparse
import csv

from ._fmt import console, err_console, human_bytes, para, write_json

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
                   help="comma-separated precisions to build and measure side by side, from fp32,fp16,bf16,int8 "
                        "(default: fp32); one row per precision and batch size")
    p.add_argument("--calib", metavar="DATA",
                   help="INT8 calibration data (see `tensorforge build --help`); default: random inputs, which "
                        "is fine for speed but says nothing of accuracy (use `tensorforge accuracy` for that)")
    p.add_argument("--json", metavar="FILE", help="write every figure and setting as JSON")
    p.add_argument("--csv", metavar="FILE", help="write one row per batch size as CSV")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ..bench.runner import BenchOptions, batches_from_text, bench, streams_from_text

    precisions = [x.strip() for x in args.precision.split(",") if x.strip()] or ["fp32"]
    batches = batches_from_text(args.batch)
    streams = streams_from_text(args.streams)
    options = [BenchOptions(batches=batches, duration_s=args.duration, warmup_s=args.warmup,
                            min_iterations=args.min_iterations, threads=args.threads, baseline=args.baseline,
                            precision=p, calibration=args.calib, streams=streams)
               for p in precisions]    # validates each first
    results = []
    with Progress(TextColumn("bench {task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True) as bar:
        task = bar.add_task(args.model, total=1.0)
        for i, opts in enumerate(options):
            def progress(label: str, fraction: float, i: int = i, p: str = opts.precision) -> None:
                bar.update(task, completed=(i + fraction) / len(options), description=f"{args.model} {p}: {label}")

            results.append(bench(args.model, opts, progress=progress))
    print_table(results)
    if args.json:
        write_json(args.json, results[0].to_dict() if len(results) == 1 else
                   {"schema": "tensorforge.bench-precisions/1", "results": [r.to_dict() for r in results]})
    if args.csv:
        write_csv(args.csv, results)
    return 0


def _f(x: float | None, fmt: str = "{:.2f}") -> str:
    return "n/a" if x is None else fmt.format(x)


def print_table(results) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    results = results if isinstance(results, list) else [results]
    result = results[0]
    host = result.host
    several = len(results) > 1
    with_streams = any(tuple(res.options.get("streams", (1,))) != (1,) for res in results)
    precision = "" if several else f"{result.model['precision'].upper()} · "
    title = (f"{result.model['name']} · {precision}{result.model['backend']} · "
             f"{host['cpu_model']} ({host['logical_cores']} cores)")
    table = Table(title=title)
    cols = (["precision"] if several else []) + ["batch"] + (["streams"] if with_streams else []) + [
        "perf (samples/s)", "power (W)", "perf/W", "latency mean (ms)", "min", "p50", "p90", "p95", "p99",
        "max", "peak RSS", "noise %"]
    has_base = any(r.baseline for res in results for r in res.rows)
    if has_base:
        cols += ["ORT (samples/s)", "speedup"]
    for c in cols:
        table.add_column(c, justify="right")
    rows = [(res.model["precision"], r) for res in results for r in res.rows]
    for prec, r in rows:
        lat = r.engine.latency
        row = ([prec.upper()] if several else []) + [str(r.batch)] + ([str(r.streams)] if with_streams else []) + [
               f"{r.engine.throughput_sps:,.1f}", _f(r.power_w), _f(r.perf_per_watt),
               f"{lat['mean_ms']:.2f}", f"{lat['min_ms']:.2f}", f"{lat['p50_ms']:.2f}", f"{lat['p90_ms']:.2f}",
               f"{lat['p95_ms']:.2f}", f"{lat['p99_ms']:.2f}", f"{lat['max_ms']:.2f}",
               human_bytes(r.peak_rss_bytes), f"{r.engine.noise['spread_pct']:.1f}"]
        if has_base:
            if r.baseline:
                speedup = f"{r.speedup_vs_baseline:.3f}× ±{r.speedup_noise_pct:.1f}% ({r.verdict_vs_baseline})"
                row += [f"{r.baseline.throughput_sps:,.1f}", speedup]
            else:
                row += ["n/a", "n/a"]
        table.add_row(*row)
    console.print(table)
    if all(r.power_w is None for _, r in rows):
        console.print(f"power: n/a — {result.power_source}")
    if has_base and several:
        console.print("speedup: against bare ONNX Runtime on the original FP32 model, in the same run")
    if with_streams:
        console.print("streams: concurrent requests on one session (weights shared); perf counts all streams, "
                      "latency is per request" + ("; ORT runs the same streams" if has_base else ""))
    for w in dict.fromkeys((f"{res.model['precision']}: " if several else "") + w
                           for res in results for w in res.warnings):
        console.print(f"[yellow]warning:[/yellow] {w}")


def write_csv(path: str, results) -> None:  # type: ignore[no-untyped-def]
    results = results if isinstance(results, list) else [results]
    fields = ["precision", "batch", "throughput_sps", "min_ms", "mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms",
              "max_ms", "iterations", "noise_spread_pct", "peak_rss_bytes", "power_w", "perf_per_watt",
              "energy_j_per_sample", "baseline_throughput_sps", "speedup_vs_baseline", "speedup_noise_pct", "streams",
              "threads"]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(fields)
        for r, prec in ((r, res.model["precision"]) for res in results for r in res.rows):
            lat = r.engine.latency
            w.writerow([prec, r.batch, r.engine.throughput_sps, lat["min_ms"], lat["mean_ms"], lat["p50_ms"],
                        lat["p90_ms"], lat["p95_ms"], lat["p99_ms"], lat["max_ms"], r.engine.iterations,
                        r.engine.noise["spread_pct"], r.peak_rss_bytes, r.power_w, r.perf_per_watt,
                        r.energy_j_per_sample, r.baseline.throughput_sps if r.baseline else None,
                        r.speedup_vs_baseline, r.speedup_noise_pct, r.streams, r.threads])
