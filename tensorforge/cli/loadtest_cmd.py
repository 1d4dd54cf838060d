"""``tensorforge loadtest TARGET…`` — MLPerf-style load tests: single-stream, multi-stream, server, offline."""

from __future__ import annotations

import argparse
import json
import re

from ._fmt import console, err_console, para

HELP = "load-test a model in-process or on a KServe v2 server, MLPerf scenarios (server, offline, …)"

_DESCRIPTION = para(
    "Drive a model the way MLPerf Inference does and say whether the result is VALID. TARGET is an engine "
    "file (.tfe), an ONNX file or a zoo name — run in this process behind the same dynamic batcher the server "
    "uses — or the URL of a KServe v2 server (http://host:port or grpc://host:port, ours or Triton) with "
    "--model NAME; 'noop' and 'sleep:5ms' are synthetic targets for checking the generator itself.") + "\n\n" + \
    para("Scenarios: single-stream sends one 1-sample query at a time (metric: p90 latency); multi-stream sends "
         "8-sample queries back to back (p99 latency); server sends Poisson arrivals at --target-qps and is VALID "
         "only if p99 latency stays within --latency-bound; offline issues every sample at once (samples/s). A "
         "run lasts at least --min-duration seconds and --min-queries queries (default: what MLPerf's "
         "early-stopping rule needs for the percentile, 64 for p90, 662 for p99). Server latency counts from "
         "each query's scheduled send time, so a target that falls behind cannot hide it.") + "\n\n" + \
    para("--find-max searches the highest VALID server load; --sweep-latency 5,7,10ms finds it for each budget "
         "and for every configuration given (several TARGETs, or lists of --max-batch-size / "
         "--max-queue-delay-ms). --harness mlperf also runs the official MLPerf LoadGen on the same target and "
         "settings and prints its verdict beside ours. Results go to --out: results.json (every setting and "
         "figure), results.jsonl (each probe and run as it finishes, kept on Ctrl-C), an HdrHistogram .hgrm file "
         "per run, LoadGen's logs, and with --plot the latency-vs-load PNG.")

_EPILOG = """examples:
  tensorforge loadtest tiny_mlp                                       (single-stream, 5 s)
  tensorforge loadtest mobilenet_v2 --scenario server --target-qps 200 --latency-bound 15
  tensorforge loadtest mobilenet_v2 --scenario server --latency-bound 15 --find-max --plot
  tensorforge loadtest mobilenet_v2 --scenario server --sweep-latency 5,7,10,15,20ms --max-batch-size 1,4,8
  tensorforge loadtest http://127.0.0.1:8000 --model mobilenet_v2 --scenario offline
  tensorforge loadtest model.tfe --scenario single-stream --harness mlperf
  tensorforge loadtest noop --scenario server --target-qps 20000 --latency-bound 1
  tensorforge loadtest mnist_cnn --scenario offline --input digits.npz   (real inputs instead of random)

exit codes:
  0  every result VALID (find-max / sweep: a VALID load was found)
  1  the verdict is INVALID: the run failed (find-max: not even the lowest load probed was VALID;
     several --target-qps: none of them VALID). This is always so: no --strict flag is needed
  2  a bad argument or a missing extra (one line on stderr)
  130 interrupted (Ctrl-C): the probes and runs so far stay in OUT/results.jsonl

progress goes to stderr: a bar on a terminal, one line per step when piped."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..loadgen.scenarios import SCENARIOS

    p = sub.add_parser("loadtest", help=HELP, description=_DESCRIPTION, epilog=_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("targets", nargs="+", metavar="TARGET",
                   help="engine file, ONNX file, zoo name, noop, sleep:Xms, or http:// / grpc:// server URL")
    p.add_argument("--scenario", choices=SCENARIOS, default="single-stream",
                   help="MLPerf scenario (default: single-stream)")
    g = p.add_argument_group("load and limits")
    g.add_argument("--target-qps", metavar="Q[,Q…]", help="server: offered queries/s; several values draw a curve")
    g.add_argument("--latency-bound", metavar="MS", help="server: the latency bound, e.g. 15 or 15ms (required)")
    g.add_argument("--percentile", type=float, metavar="P",
                   help="latency percentile in %% (default: 90 single-stream, 99 multi-stream and server)")
    g.add_argument("--find-max", action="store_true", help="server: search the highest VALID --target-qps")
    g.add_argument("--sweep-latency", metavar="LIST", help="server: budgets, e.g. 5,7,10,15,20ms; the highest "
                   "VALID load per budget and configuration")
    g.add_argument("--samples-per-query", type=int, metavar="N", help="multi-stream: samples per query (default 8)")
    g.add_argument("--min-duration", type=float, default=5.0, metavar="S", help="minimum run seconds (default 5)")
    g.add_argument("--min-queries", type=int, metavar="N", help="minimum queries (default: early-stopping minimum)")
    g.add_argument("--max-duration", type=float, metavar="S", help="single/multi-stream: stop after S seconds")
    g.add_argument("--max-queries", type=int, metavar="N", help="stop after N queries")
    g.add_argument("--offline-samples", type=int, metavar="N",
                   help="offline: samples to issue (default: measured rate × min duration × 1.1)")
    g.add_argument("--arrival", choices=("poisson", "constant"), default="poisson", help="server arrivals")
    g.add_argument("--seed", type=int, default=0, help="seed of the arrival schedule and input data (default 0)")
    g.add_argument("--input", metavar="FILE|DIR",
                   help="real inputs instead of random ones, for in-process targets: FILE.npy (one-input model; "
                        "rows on axis 0), FILE.npz (one array per input, named after it) or a folder of images "
                        "(resized to the input's H×W, scaled to [0,1]); checked against the model's inputs before "
                        "the run, queries take the rows in turn (as `tensorforge bench --input`)")
    g.add_argument("--lengths", metavar="SPEC",
                   help="sequence models: request lengths drawn from a distribution instead of every request at "
                        "the profile's opt length — fixed:N, uniform:A-B, lognormal:MEDIAN,SIGMA (a long right tail, "
                        "like real text) or sentences (token lengths of real English sentences); clipped to the "
                        "engine's shape profile. The in-process batcher pads each batch by length bucket, as the "
                        "server does. In-process targets only; not with --input")
    g.add_argument("--warmup", type=float, default=0.5, metavar="S", help="warm-up seconds (default 0.5)")
    g.add_argument("--tolerance", type=float, default=0.05, help="find-max: stop when the bracket is this narrow")
    g.add_argument("--max-probes", type=int, default=10, help="find-max: most server runs per search")
    b = p.add_argument_group("in-process batcher (as the server's)")
    b.add_argument("--max-batch-size", metavar="LIST", help="e.g. 8 or 1,4,8 (one configuration each)")
    b.add_argument("--max-queue-delay-ms", metavar="LIST", help="e.g. 2 or 0,2,10 (one configuration each)")
    b.add_argument("--instances", type=int, help="concurrent model instances (default 1)")
    b.add_argument("--queue-size", type=int, help="most queued requests (default 256)")
    b.add_argument("--threads", type=int, help="intra-op threads per instance (default: cores / instances)")
    r = p.add_argument_group("remote server")
    r.add_argument("--model", help="model name on the server (required for a URL)")
    r.add_argument("--model-version", help="model version (default: the server's choice)")
    r.add_argument("--concurrency", type=int, default=64, help="most requests in flight (default 64)")
    r.add_argument("--max-batch", type=int, help="samples per request (default: the server's max_batch_size)")
    o = p.add_argument_group("harness and output")
    o.add_argument("--harness", choices=("ours", "mlperf"), default="ours",
                   help="mlperf: also run the official MLPerf LoadGen and compare verdicts")
    o.add_argument("--dataset", metavar="FILE.npz",
                   help="with --harness mlperf: also LoadGen accuracy mode (arrays per input + 'labels')")
    o.add_argument("--out", default="loadtest-results", metavar="DIR",
                   help="results directory (default: ./loadtest-results)")
    o.add_argument("--plot", action="store_true", help="write latency-vs-load PNG(s) into --out")
    p.set_defaults(func=_run)


_UNITS = {"us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1000.0}


def parse_ms(text: str) -> float:
    """'15', '15ms', '0.015s', '500us' → milliseconds."""
    from ..errors import InputError

    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)\s*(us|µs|ms|s)?\s*", str(text))
    if not m:
        raise InputError(f"cannot read latency {text!r}; write milliseconds like 15 or 15ms (or 0.015s, 500us)")
    return float(m.group(1)) * _UNITS[m.group(2) or "ms"]


def parse_ms_list(text: str) -> tuple[float, ...]:
    """'5,7,10ms' → (5.0, 7.0, 10.0): a unit on the last item applies to bare numbers."""
    items = [t for t in str(text).split(",") if t.strip()]
    unit = re.search(r"(us|µs|ms|s)\s*$", items[-1]) if items else None
    return tuple(parse_ms(t if re.search(r"[a-zµ]", t) or unit is None else t + unit.group(1)) for t in items)


def _numbers(text: str | None, kind: type = float) -> list:  # type: ignore[type-arg]
    from ..errors import InputError

    if not text:
        return []
    try:
        return [kind(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        raise InputError(f"cannot read {text!r}: give comma-separated numbers like 1,4,8") from None


def _run(args: argparse.Namespace) -> int:
    # the loadgen extra writes the .hgrm histograms at the end: missing, fail now (main names the extra), not
    # after the whole run
    import hdrh.histogram  # noqa: F401

    from ..errors import InputError
    from ..loadgen.plan import LoadtestOptions, loadtest, target_configs
    from ..loadgen.results import write_report
    from ..loadgen.scenarios import ScenarioSettings

    if args.input and args.lengths:
        raise InputError("give --input (real data) or --lengths (a length distribution), not both")
    inputs = _read_input(args.input, args.targets) if args.input else None     # bad data: fail before the run
    if args.lengths:
        inputs = _length_samples(args.lengths, args.targets, args.seed)
    qps = _numbers(args.target_qps)
    percentile = None
    if args.percentile is not None:
        if not 0 < args.percentile < 100:
            raise InputError(f"--percentile is in percent, between 0 and 100 (e.g. 99), got {args.percentile}")
        percentile = args.percentile / 100.0
    budgets = parse_ms_list(args.sweep_latency) if args.sweep_latency else ()
    bound = parse_ms(args.latency_bound) if args.latency_bound else (budgets[0] if budgets else None)
    searching = args.find_max or bool(budgets)
    settings = ScenarioSettings(
        scenario=args.scenario, target_qps=qps[0] if qps else (1.0 if searching else None), latency_bound_ms=bound,
        percentile=percentile, samples_per_query=args.samples_per_query, min_query_count=args.min_queries,
        min_duration_s=args.min_duration, max_duration_s=args.max_duration, max_query_count=args.max_queries,
        offline_sample_count=args.offline_samples, arrival=args.arrival, seed=args.seed, warmup_s=args.warmup)
    options = LoadtestOptions(settings=settings, qps=tuple(qps) if len(qps) > 1 else (), find_max=args.find_max,
                              sweep_budgets_ms=budgets, harness=args.harness, tolerance=args.tolerance,
                              max_probes=args.max_probes, threads=args.threads, model=args.model,
                              model_version=args.model_version, concurrency=args.concurrency,
                              max_batch=args.max_batch, dataset=args.dataset, inputs=inputs)
    batcher = {"instances": args.instances, "max_queue_size": args.queue_size}
    configs = target_configs(args.targets, _numbers(args.max_batch_size, int), _numbers(args.max_queue_delay_ms),
                             **batcher)
    from pathlib import Path
    from typing import Callable, TextIO

    from ._checks import progress_lines

    # every probe and run goes to OUT/results.jsonl as it comes (one JSON line each, flushed): a Ctrl-C or a
    # timeout keeps them; results.json (the whole report) is written at the end. The file is opened at the
    # first result, so a run that fails before measuring anything leaves no empty folder behind.
    partial = Path(args.out) / "results.jsonl"
    log: list[TextIO] = []
    kept = [0]

    def on_result(label: str, row: dict, step: Callable[..., None]) -> None:  # type: ignore[type-arg]
        if not log:
            partial.parent.mkdir(parents=True, exist_ok=True)
            log.append(open(partial, "w", encoding="utf-8"))
        log[0].write(json.dumps({"config": label, **row}, default=str) + "\n")
        log[0].flush()
        kept[0] += 1
        if row.get("kind") == "probe":
            lat = row.get("percentile_latency_ms")
            step(f"{label}: probe {row['target_qps']:g} QPS -> {'VALID' if row['valid'] else 'INVALID'}"
                 + (f" (p-latency {lat:.2f} ms)" if lat is not None else ""))

    try:
        with progress_lines("loadtest") as step:
            report = loadtest(configs, options, progress=step, outdir=args.out,
                              on_result=lambda label, row: on_result(label, row, step))
    except KeyboardInterrupt:
        where = f"{kept[0]} result(s) kept in {partial}" if kept[0] else "no result had finished"
        err_console.print(f"interrupted: {where}", markup=False)
        return 130
    finally:
        for fh in log:
            fh.close()
    files = write_report(report, args.out, plot=args.plot)
    print_report(report)
    console.print(f"results: {files['json']}" + (f"; plot: {files['plot']}" if "plot" in files else ""))
    return _exit_code(report)


def _read_input(path: str, targets: list[str]):  # type: ignore[no-untyped-def]
    """``--input`` read and checked against the first in-process target's inputs (no build needed)."""
    from ..bench.inputs import read_inputs
    from ..core.specs import io_specs
    from ._checks import check_input_data

    check_input_data(path)
    src = _local_source(targets, "--input")
    specs = src.engine.inputs if src.engine is not None else io_specs(src.onnx_model())[0]
    return read_inputs(path, specs, model=src.name)


def _local_source(targets: list[str], flag: str):  # type: ignore[no-untyped-def]
    """The first in-process target's model source (``flag`` names the option that needs one)."""
    from ..engine.source import resolve_source
    from ..errors import InputError

    local = [t for t in targets if not t.lower().startswith(("http://", "https://", "grpc://", "sleep:"))
             and t.lower() != "noop"]
    if not local:
        raise InputError(f"{flag} feeds an in-process model (engine file, ONNX file or zoo name); servers, noop "
                         "and sleep:… targets send their own data")
    return resolve_source(local[0])


def _length_samples(spec: str, targets: list[str], seed: int):  # type: ignore[no-untyped-def]
    """``--lengths`` turned into requests for the first in-process target (checked before any build)."""
    from ..core.specs import io_specs
    from ..loadgen.lengths import length_samples

    src = _local_source(targets, "--lengths")
    if src.engine is not None:
        specs, profiles = src.engine.inputs, src.engine.manifest.profiles
    else:
        specs, profiles = io_specs(src.onnx_model())[0], ()
    return length_samples(spec, specs, profiles, seed=seed)


def _exit_code(report) -> int:  # type: ignore[no-untyped-def]
    """1 when the verdict is INVALID: a single run failed, find-max found no VALID load, a --target-qps curve
    has no VALID point (points past the knee are expected to fail), a sweep found none at any budget; else 0.
    Documented in --help (exit codes)."""
    if report.sweep is not None:
        return 0 if any(v is not None for per in report.sweep.max_qps.values() for v in per.values()) else 1
    for c in report.configs:
        if c.find_max is not None:
            if c.find_max.max_valid_qps is None:
                return 1
        elif c.runs and not any(r.valid for r in c.runs):
            return 1
    return 0


def _ms(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def print_report(report) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    table = Table(title=f"loadtest · {report.mode}")
    cols = ["configuration", "scenario", "offered QPS", "queries", "samples/s", "p50 ms", "p90 ms", "p99 ms",
            "max ms", "metric", "late sends", "verdict"]
    for c in cols:
        table.add_column(c, justify="left" if c in ("configuration", "scenario", "metric", "verdict") else "right")
    notes: list[str] = []
    for label, r in report.all_runs():
        lat = r.latency
        offered = f"{r.settings['target_qps']:g}" if r.scenario == "server" else "-"
        metric = "n/a" if r.metric_value is None else f"{r.metric_value:,.2f} {r.metric_unit}"
        late = "-" if r.lateness is None else f"{r.lateness.late_count} (max {r.lateness.max_us / 1e3:.2f} ms)"
        verdict = "[green]VALID[/green]" if r.valid else "[red]INVALID[/red]"
        table.add_row(label, r.scenario, offered, str(r.query_count), f"{r.throughput_sps:,.1f}",
                      _ms(lat and lat.p50_ms), _ms(lat and lat.p90_ms), _ms(lat and lat.p99_ms),
                      _ms(lat and lat.max_ms), metric, late, verdict)
        notes += [f"{label} {r.scenario}" + (f" @ {offered} QPS" if offered != "-" else "") + f": {why}"
                  for why in r.reasons]
    console.print(table)
    for n in notes:
        console.print(f"  [red]INVALID[/red] {n}")
    for c in report.configs:
        if c.find_max is not None:
            f = c.find_max
            where = ("n/a (even the lowest load probed failed)" if f.max_valid_qps is None
                     else f"{f.max_valid_qps:g} QPS")
            console.print(f"find-max {c.label}: highest VALID load {where} at p{f.percentile * 100:g} ≤ "
                          f"{f.latency_bound_ms:g} ms ({len(f.probes)} probes; lowest INVALID "
                          f"{'n/a' if f.lowest_invalid_qps is None else f'{f.lowest_invalid_qps:g}'}"
                          f"{'' if f.converged else '; not converged — raise --max-probes'})")
        if c.comparison is not None and c.mlperf is not None:
            _print_comparison(c)
    if report.sweep is not None:
        _print_sweep(report.sweep)
    for c in report.configs:
        delay = (c.target.get("batcher") or {}).get("max_queue_delay_ms") or 0
        if delay and any(r.scenario in ("single-stream", "multi-stream") for r in c.runs):
            console.print(f"note: {c.label}: the batcher waits up to {delay:g} ms for a fuller batch before running "
                          "a lone request, and that wait is in these latencies; --max-queue-delay-ms 0 measures "
                          "the model alone")
    runs = [r for _, r in report.all_runs()]
    tardy = [r.lateness for r in runs if r.lateness is not None and r.lateness.late_count]
    if len(tardy) > 1:       # one line for all runs, not one per probe
        worst = max(tardy, key=lambda x: x.max_us)
        console.print(f"[yellow]warning:[/yellow] {len(tardy)} of {len(runs)} runs had sends leave more than "
                      f"{worst.threshold_us:g} µs after schedule (worst {worst.max_us / 1e3:.2f} ms); see each run's "
                      "'lateness' in results.json. Latency still counts from the schedule, so this only penalises "
                      "the target; an in-process target using every core delays the generator's wake-ups "
                      "(--threads leaves it one).")
    skip = "scheduled time" if len(tardy) > 1 else "\0"
    from .main import command_flags, to_flags

    flags = command_flags("loadtest")      # the library's warnings name parameters; show the flags
    for w in sorted({w for r in runs for w in r.warnings if skip not in w}):
        console.print(f"[yellow]warning:[/yellow] {to_flags(w, flags)}")
    from rich.markup import escape

    from ._fmt import dynamic_axis_warnings

    hint = "Another length: build the engine with --shapes NAME:MIN,OPT,MAX (requests use OPT)"
    for w in dict.fromkeys(w for c in report.configs          # sequence models: the length that was sent
                           for w in dynamic_axis_warnings(list(c.target.get("inputs") or []),
                                                          "load_shape_at_batch_1", hint)):
        console.print(f"[yellow]warning:[/yellow] {escape(w)}")


def _print_comparison(c) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    cmp = c.comparison
    t = Table(title=f"ours vs MLPerf LoadGen · {c.label}")
    for col in ("harness", "verdict", cmp["figure"] + f" ({cmp['unit']})"):
        t.add_column(col)
    for who in ("ours", "loadgen"):
        v = cmp[who]["value"]
        t.add_row("tensorforge" if who == "ours" else "MLPerf LoadGen", cmp[who]["verdict"],
                  "n/a" if v is None else f"{v:,.3f}")
    console.print(t)
    ratio = cmp["ratio_loadgen_over_ours"]
    agree = cmp["verdicts_agree"] and cmp["figures_agree"]
    console.print(f"  {'agree' if agree else '[yellow]differ[/yellow]'}: verdicts "
                  f"{'match' if cmp['verdicts_agree'] else 'differ'}; LoadGen/ours = "
                  f"{'n/a' if ratio is None else f'{ratio:.3f}'} (tolerance ±{cmp['tolerance_pct']:.1f} %, the run's "
                  f"noise); LoadGen logs in {c.mlperf.outdir}")
    if c.mlperf.accuracy:
        console.print(f"  LoadGen accuracy mode: top-1 {c.mlperf.accuracy['top1']:.4f} over "
                      f"{c.mlperf.accuracy['samples']} samples")


def _print_sweep(sweep) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    t = Table(title="highest VALID offered load (queries/s) within each latency budget")
    t.add_column("budget (ms)", justify="right")
    for label in sweep.configs:
        t.add_column(label, justify="right")
    t.add_column("best")
    for b in sweep.budgets_ms:
        row = [f"{b:g}"] + ["n/a" if sweep.max_qps[c][b] is None else f"{sweep.max_qps[c][b]:,.1f}"
                            for c in sweep.configs]
        best = sweep.best[b]
        row.append("none" if best is None else best[0])
        t.add_row(*row)
    console.print(t)
