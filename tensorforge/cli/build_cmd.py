"""``tensorforge build MODEL -o model.tfe`` — optimize, verify and write an engine."""

from __future__ import annotations

import argparse

from ._fmt import console, human_bytes, human_count, para, write_json

HELP = "optimize a model, verify it against the original, and write an engine file (.tfe)"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help=HELP, description=para(
        "Build an engine: import the model, run the graph passes (shape inference, constant "
        "folding, BatchNorm folding, no-op and dead-node removal, fusions), check the optimized "
        "graph against the original on random inputs (FP32 tolerance), and only then write "
        "the .tfe file. Prints a before/after report."),
        epilog="examples:\n  tensorforge build resnet50 -o resnet50.tfe\n"
               "  tensorforge build model.onnx --max-batch 64 -o model.tfe",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="an ONNX file or a zoo model name (see `tensorforge zoo list`)")
    p.add_argument("-o", "--output", required=True, help="engine file to write, e.g. model.tfe")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--batch", type=int, help="fix the batch dimension to N (rewrites a model exported at batch 1)")
    g.add_argument("--max-batch", type=int, help="make the batch dimension dynamic, up to N")
    p.add_argument("--pipeline", default="default", help="graph pass pipeline: default or none (default: default)")
    p.add_argument("--threads", type=int, help="intra-op threads recorded for the engine (default: backend's)")
    p.add_argument("--backend", default="onnxruntime", help="execution backend (see `tensorforge backends`)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--no-verify", action="store_true", help="skip the numerical check (not recommended)")
    p.add_argument("--report", metavar="JSON", help="also write the build report as JSON")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..engine.build import BuildOptions, build

    options = BuildOptions(pipeline=args.pipeline, batch=args.batch, max_batch=args.max_batch, backend=args.backend,
                           device=args.device, threads=args.threads, verify=not args.no_verify)
    with console.status(f"building {args.model} ..."):
        _, report = build(args.model, args.output, options)
    print_report(report)
    if args.report:
        write_json(args.report, report.to_dict())
    return 0


def print_report(report) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    b, a = report.before, report.after
    console.print(f"[bold]{report.name}[/bold] from {report.source}")
    for note in report.notes:
        console.print(f"  note: {note}")
    table = Table(title="graph before → after")
    table.add_column("")
    table.add_column("before", justify="right")
    table.add_column("after", justify="right")
    table.add_row("nodes", str(b.nodes), str(a.nodes))
    table.add_row("parameters", human_count(b.params), human_count(a.params))
    table.add_row("MACs / sample", human_count(b.macs_per_sample), human_count(a.macs_per_sample))
    for op in sorted(set(b.ops) | set(a.ops), key=lambda o: (-b.ops.get(o, 0), o)):
        if b.ops.get(op, 0) != a.ops.get(op, 0) or op in ("Conv", "Gemm"):
            table.add_row(f"  {op}", str(b.ops.get(op, 0)), str(a.ops.get(op, 0)))
    console.print(table)
    changed = [p for p in report.passes if p["modified"]]
    if changed:
        console.print("passes that changed the graph: " + "; ".join(
            f"{p['name']} ({', '.join(f'{k} {v}' for k, v in p['changes'].items()) or 'changed'})" for p in changed))
    v = report.verification
    if v is not None:
        console.print(f"verified at batch {v.batch} against {v.reference}: max abs error {v.max_abs_err:.2e}, "
                      f"max normalized error {v.max_norm_err:.2e} (tolerance {v.tolerance:.0e}) — "
                      + ("[green]passed[/green]" if v.passed else "[red]FAILED[/red]"))
    if report.output:
        size = human_bytes(report.engine_bytes)
        console.print(f"wrote {report.output} ({size}) in {report.timings_s['total']:.1f} s")
