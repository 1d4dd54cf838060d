"""``tensorforge profile ENGINE`` — the time of each layer, by ONNX node name, and the precision it ran in."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ._fmt import console, err_console, para, write_json

if TYPE_CHECKING:
    from ..bench.profile import ProfileResult

HELP = "time each layer of an engine (by ONNX node name) and show the precision each one really ran in"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help=HELP, description=para(
        "Profile an engine layer by layer with its backend's own profiler (ONNX Runtime's trace, "
        "OpenVINO's performance counters) on random inputs: a few warm-up runs, then --runs profiled "
        "runs. Each row is one kernel the backend ran, named by the engine's ONNX node(s) — 'fused: a, "
        "b' when the backend merged several nodes into one kernel — with the kernel it used, the "
        "precision it actually computed in (int8 kernels such as QLinearConv or jit_avx2_I8 say int8; "
        "a layer that fell back shows fp32), its time (median of the runs; OpenVINO keeps only means) "
        "and its share of the summed layer time.") + "\n\n" + para(
        "Below the table: the wall time of a run against the sum of the layer times (the gap is "
        "framework overhead outside the kernels), and the share of layer time per precision. Rows the "
        "backend inserted itself (layout reorders, transposes) have no ONNX node: they keep the "
        "backend's name and are marked 'unmapped'. Use it to find the slow layer, and to check that an "
        "INT8 engine really runs in INT8."),
        epilog="examples:\n"
               "  tensorforge build mobilenet_v2 --precision int8 --calib random -o m8.tfe\n"
               "  tensorforge profile m8.tfe                        (the engine's backend, batch 1, top 15)\n"
               "  tensorforge profile m8.tfe --backend openvino     (same engine on OpenVINO)\n"
               "  tensorforge profile m8.tfe --batch 8 --runs 50 --top 30\n"
               "  tensorforge profile m8.tfe --json m8_profile.json --chart m8_profile.png",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("engine", help="a .tfe engine file (see `tensorforge build`)")
    p.add_argument("--batch", type=int, default=1, help="batch size of the random inputs (default: 1; at most the "
                                                         "engine's max batch)")
    p.add_argument("--runs", type=int, default=20,
                   help="profiled runs; a layer's time is their median (OpenVINO: mean) (default: 20)")
    p.add_argument("--warmup", type=int, default=5, help="unprofiled warm-up runs first (default: 5)")
    p.add_argument("--backend", help="onnxruntime or openvino (default: the backend the engine records, with its "
                                      "recorded settings)")
    p.add_argument("--top", type=int, default=15, metavar="K", help="show the K slowest layers (default: 15)")
    p.add_argument("--json", metavar="FILE", help="write every row (not only the top K) and the totals as JSON")
    p.add_argument("--chart", metavar="FILE.png", help="draw the top K layers as a bar chart coloured by precision")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..bench.profile import check_batch, profile_engine
    from ..engine.runtime import Engine
    from ..errors import InputError

    for flag, value, low in (("--runs", args.runs, 1), ("--warmup", args.warmup, 0), ("--top", args.top, 1)):
        if value < low:
            raise InputError(f"{flag} must be >= {low}, got {value}")
    engine = Engine.load(args.engine)
    check_batch(engine, args.batch, name="--batch")
    with console.status(f"profiling {engine.name} ..."):
        result = profile_engine(engine, batch=args.batch, runs=args.runs, warmup=args.warmup, backend=args.backend)
    print_profile(result, args.top)
    if args.json:
        write_json(args.json, result.to_dict())
    if args.chart:
        from ..report.profile_chart import write_profile_chart

        err_console.print(f"chart written to {write_profile_chart(result, args.chart, top=args.top)}")
    return 0


def print_profile(result: "ProfileResult", top: int) -> None:
    """The top ``top`` layers as a table, then the run/coverage line, the precision split and the notes."""
    from rich.table import Table

    table = Table(title=f"{result.engine} ({result.engine_precision}) · {result.backend} · batch {result.batch} · "
                        f"top {min(top, len(result.layers))} of {len(result.layers)} layers")
    table.add_column("#", justify="right")
    for name in ("layer (ONNX node)", "op / kernel", "precision"):
        table.add_column(name)
    table.add_column("ms", justify="right")
    table.add_column("share %", justify="right")
    for rank, layer in enumerate(result.top(top), 1):
        name = layer.name if layer.mapped else f"{layer.name} [dim](unmapped)[/dim]"
        table.add_row(str(rank), name, f"{layer.op_type} / {layer.kernel}", layer.precision, f"{layer.time_ms:.3f}",
                      f"{layer.share_pct:.1f}")
    console.print(table)
    stat = result.statistic
    console.print(f"run {result.run_ms:.3f} ms ({stat} of {result.runs} profiled runs) · layers "
                  f"{result.layers_total_ms:.3f} ms · coverage {result.coverage_pct:.1f} % (the rest: framework "
                  "overhead outside the kernels)")
    console.print("precision: " + ", ".join(f"{p} {share:.1f} %" for p, share in result.precision_summary.items())
                  + " of layer time")
    for note in result.notes:
        console.print(f"[dim]note: {note}[/dim]")
