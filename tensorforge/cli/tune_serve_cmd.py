"""``tensorforge tune-serve MODEL --slo p99=50ms`` — search engine and server settings for a latency SLO."""

from __future__ import annotations

import argparse

from ._fmt import console, para, write_json

HELP = "find the engine and server settings (instances, batch, delay) that serve the most load within an SLO"

_DESCRIPTION = para(
    "Search how to serve MODEL: which engine (backend and precision this host runs natively) and which server "
    "settings (--instances, --max-batch-size, --max-queue-delay-ms, preferred batch sizes) sustain the highest "
    "request rate whose latency percentile stays within the SLO. Every candidate is measured on the real "
    "server (started in this process on a free 127.0.0.1 port) driven over HTTP by the load generator's "
    "MLPerf server scenario: find-max searches the highest Poisson rate with a VALID verdict (the percentile "
    "within the bound, enough queries for early stopping, no errors).") + "\n\n" + para(
    "The search is small on purpose, one axis at a time from the best point so far (a coordinate search, "
    "not a full grid): (1) each engine at a default server configuration (1 instance, max batch 8, 2 ms "
    "delay); (2) instances 1/2/4 (up to the cores) x max batch 1/8/32; (3) queue delay 0/0.5/5 ms, then "
    "preferred batch size = the max batch. Before each candidate the budget is checked against what a "
    "candidate has cost so far; what does not fit is listed as skipped. INT8 is not searched (it needs "
    "calibration data: build it with `tensorforge build --precision int8` and pass the .tfe here; an engine "
    "file keeps its backend and precision and only the server settings are searched).") + "\n\n" + para(
    "The winner is written as a model repository: OUT/<name>/config.json + OUT/<name>/1/model.tfe, which "
    "`tensorforge serve --repository OUT` loads with the tuned settings.")

_EPILOG = """examples:
  tensorforge tune-serve mobilenet_v2 --slo p99=50ms --budget 10m -o models/
  tensorforge tune-serve model.onnx --slo p95=20ms --backends onnxruntime --precisions fp32,fp16 -o models/
  tensorforge tune-serve built.tfe --slo 15ms --budget 3m -o models/ --json tune.json
  tensorforge serve --repository models/

exit codes: 0 a configuration met the SLO; 1 none did; 2 a bad argument."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tune-serve", help=HELP, description=_DESCRIPTION, epilog=_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL", help="ONNX file, zoo name, or engine file (.tfe)")
    p.add_argument("--slo", required=True, metavar="pNN=MS",
                   help="the latency objective: a percentile and a bound, e.g. p99=50ms, p95=0.02s (bare 50ms: p99)")
    p.add_argument("--budget", default="10m", metavar="TIME",
                   help="wall-clock budget for the whole search, e.g. 90s, 10m, 1h (default 10m)")
    p.add_argument("-o", "--output", dest="repo_dir", metavar="REPO_DIR",
                   help="model repository folder to write the winner into (created if missing)")
    p.add_argument("--name", help="model name in the repository (default: the model's name)")
    p.add_argument("--backends", help="comma-separated backends to try (default: onnxruntime,openvino when "
                                      "installed)")
    p.add_argument("--precisions", help="comma-separated precisions to try: fp32, fp16, bf16 (default: each one "
                                        "the backend runs natively here)")
    p.add_argument("--max-batch", type=int, default=32,
                   help="largest server batch tried; engines are built with it (default 32)")
    p.add_argument("--probe-seconds", type=float, default=1.0,
                   help="minimum length of each load probe in seconds (default 1; longer: less noise, slower)")
    p.add_argument("--max-probes", type=int, default=6, help="load probes per candidate's find-max (default 6)")
    p.add_argument("--json", metavar="FILE", help="also write every candidate and the winner as JSON")
    p.set_defaults(func=_run)


def _list(text: str | None) -> list[str] | None:
    return [x.strip() for x in text.split(",") if x.strip()] if text else None


def _run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ..api.tune_serve import parse_budget, parse_slo, tune_serve
    from ._checks import check_output_dir, library_progress

    slo = parse_slo(args.slo)                 # bad values fail here, before any build
    budget = parse_budget(args.budget)
    check_output_dir(args.repo_dir, "--output")
    with library_progress(f"tune-serve {args.model}"):
        result = tune_serve(args.model, slo=slo, budget_s=budget, output=args.repo_dir, name=args.name,
                            backends=_list(args.backends), precisions=_list(args.precisions),
                            max_batch=args.max_batch, probe_s=args.probe_seconds, max_probes=args.max_probes)
    pct = f"p{result.percentile * 100:g}"
    table = Table(title=f"tune-serve {result.name}: {pct} <= {result.latency_bound_ms:g} ms "
                        f"({result.seconds:.0f} s of {result.budget_s:.0f} s)")
    for col in ("stage", "engine", "instances", "max batch", "delay ms", "preferred", "max QPS", f"{pct} ms",
                "valid", "note"):
        table.add_column(col, justify="right" if col in ("instances", "max batch", "delay ms", "max QPS",
                                                          f"{pct} ms") else "left")
    for t in result.trials:
        c = t.candidate
        mark = " *" if t is result.best else ""
        table.add_row(t.stage, c.engine_label + mark, str(c.instances), str(c.max_batch_size),
                      f"{c.max_queue_delay_ms:g}", ",".join(map(str, c.preferred_batch_sizes)) or "-",
                      f"{t.max_valid_qps:.1f}" if t.max_valid_qps else "-",
                      f"{t.percentile_latency_ms:.2f}" if t.percentile_latency_ms is not None else "-",
                      "yes" if t.valid else "no", t.note)
    console.print(table)
    for what, why in result.skipped:
        console.print(f"skipped {what}: {why}")
    for note in result.notes:
        console.print(f"note: {note}")
    if args.json:
        write_json(args.json, result.to_dict())
    if result.best is None:
        console.print(f"no configuration met {pct} <= {result.latency_bound_ms:g} ms")
        return 1
    c = result.best.candidate
    console.print(f"best: {c.engine_label}, {c.instances} instance(s), max batch {c.max_batch_size}, delay "
                  f"{c.max_queue_delay_ms:g} ms -> {result.best.max_valid_qps:.1f} QPS at {pct} "
                  f"{result.best.percentile_latency_ms or 0:.2f} ms")
    if result.repository:
        console.print(f"wrote {result.repository}/{result.name}/ — serve it: tensorforge serve --repository "
                      f"{result.repository}")
    return 0
