"""``tensorforge report RESULTS… -o report.html`` — one self-contained HTML page from result JSON files."""

from __future__ import annotations

import argparse

from ._fmt import console, para

HELP = "turn bench/accuracy/profile/build/loadtest JSON results into one self-contained HTML page"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help=HELP, description=para(
        "Read the JSON that other commands write and draw one HTML page: whitepaper-style tables of "
        "throughput, latency and perf/W by batch (bench --json), FP32 vs FP16 vs INT8 accuracy (accuracy "
        "--json), the tuner's candidates and the speed-vs-accuracy Pareto front (build --tune/--optimize "
        "--report), time per layer (profile --json) and latency vs offered load with the latency bound "
        "(loadtest: its --out folder's results.json, or results.jsonl of an interrupted run). Each file's "
        "kind is told from its content.") + "\n\n" + para(
        "Results from several machines (told apart by the CPU, ISA flags and GPUs each JSON records) get a "
        "comparison table, one column per machine, with the NVIDIA whitepaper's published images/s as a "
        "reference where the same model and batch exist (GoogLeNet, ResNet-50, AlexNet, VGG-19). The page "
        "is self-contained: inline CSS and inline SVG plots, no script, nothing fetched — mail it or open "
        "it offline. Plots need matplotlib (pip install 'tensorforge[loadgen]'); without it the page has "
        "the tables only."),
        epilog="examples:\n"
               "  tensorforge bench resnet50 --batch 1,8,64 --json r50.json\n"
               "  tensorforge loadtest resnet50 --scenario server --target-qps 20,40,80 --latency-bound 100 "
               "--out lt/\n"
               "  tensorforge report r50.json lt/ -o report.html\n"
               "  tensorforge report results/ other-host/ -o compare.html --title 'ResNet-50 on two machines'\n\n"
               "A folder is searched recursively for *.json and results.jsonl; files there of no known kind\n"
               "are listed on the page and skipped. A file named on the command line must be of a known kind.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+", metavar="RESULTS",
                   help="result JSON files and/or folders holding them (searched recursively)")
    p.add_argument("-o", "--output", required=True, metavar="FILE.html", help="where to write the page")
    p.add_argument("--title", default="TensorForge results", help="the page's title (default: %(default)s)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..report import plots
    from ..report.html import render_report
    from ..report.html_parts import PLOTS_NEED
    from ..report.loaders import load_results

    loaded = load_results(args.results)
    draw = plots.available()
    with console.status(f"drawing {len(loaded.items)} result(s) ..."):
        page = render_report(loaded, title=args.title, draw=draw)
    with open(args.output, "w", encoding="utf-8") as fh:
        fh.write(page)
    kinds = ", ".join(f"{n} {k}" for k in ("bench", "accuracy", "optimize", "tune", "profile", "loadtest")
                      if (n := len(loaded.of(k))))
    console.print(f"wrote {args.output}: {kinds}" + (f"; {len(loaded.skipped)} file(s) of no known kind skipped"
                                                      if loaded.skipped else ""), markup=False)
    if not draw:
        console.print(f"note: {PLOTS_NEED}", markup=False)
    return 0
