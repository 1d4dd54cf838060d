"""``tensorforge sensitivity MODEL --eval-data DATA`` — which layer costs the accuracy in INT8."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ._fmt import console, para, write_json

HELP = "rank layers by the accuracy lost when only that layer runs in INT8 (find the layer behind an INT8 drop)"

EPILOG = """\
examples:
  tensorforge sensitivity mnist_cnn --eval-data mnist5k --top 5
  tensorforge sensitivity mnist_cnn.tfe --eval-data mnist5k --calib-method entropy --json sens.json
  tensorforge sensitivity model.onnx --eval-data held_out.npz --calib calib_images/
  tensorforge sensitivity model.onnx --eval-data held_out.npz --calib random   (ranges from random inputs!)

then keep the worst layers in FP32 with `tensorforge build MODEL --precision int8 --calib DATA
--accuracy-budget 1.0` — its accuracy guard falls back layers to FP32 in this same order."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sensitivity", help=HELP, description=para(
        "Quantize one layer at a time to INT8 (every other Conv/Gemm/MatMul layer kept in FP32), run "
        "each of those models on held-out data next to the FP32 model, and rank the layers: by the "
        "top-1 accuracy lost when the data has labels (a negative drop counts as 0), ties broken by "
        "the cosine loss of the model output (1 - mean cosine to FP32), then by the error of the "
        "layer's own output tensor (relative L2 error, and its SQNR in dB: higher is better). The "
        "table shows the FP32 and all-INT8 scores above the K most sensitive layers. The model is "
        "prepared like `tensorforge build` does (same graph passes), so layer names match the build "
        "report; give an FP32 engine to rank exactly the graph it holds. The run quantizes the model "
        "once per layer: progress goes to stderr."),
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="an FP32 engine (.tfe), an ONNX file, a zoo name, or a shipped trained model "
                                 "(mnist_cnn)")
    p.add_argument("--eval-data", metavar="DATA", help="held-out data (required): mnist5k, digits, sentences — "
                   "their validation split, the one the build's accuracy guard judges on — or FILE.npz with "
                   "arrays named after the inputs and optional 'labels' (its validation quarter, as `build "
                   "--eval-data` uses)")
    p.add_argument("--calib", metavar="DATA", help="INT8 calibration data: a bundled dataset, a folder of images, "
                   "a .npy/.npz file, or 'random' (the ranking then reflects random-input ranges); default: the "
                   "calibration split of --eval-data when it is a bundled dataset")
    p.add_argument("--calib-method", default="percentile", choices=("minmax", "entropy", "percentile", "mse"),
                   help="how activation ranges are chosen (default: percentile 99.99; entropy = TensorRT's KL)")
    p.add_argument("--activations", default="uint8", choices=("uint8", "int8"),
                   help="INT8 activations: uint8 (asymmetric, default) or int8 (symmetric)")
    p.add_argument("--probe-samples", type=int, metavar="N", help="judge on the first N held-out samples only "
                   "(default: all; the build's guard uses 128)")
    p.add_argument("--top", type=int, default=10, metavar="K", help="show the K most sensitive layers (default 10)")
    p.add_argument("--pipeline", default="default", help="graph passes applied to a model source first, as in "
                   "`build --pipeline` (default: default)")
    p.add_argument("--threads", type=int, help="intra-op threads (default: backend's)")
    p.add_argument("--json", metavar="FILE", help="write every layer's row and the settings as JSON")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..api.sensitivity import fp32_model, sensitivity
    from ..errors import ConfigError

    if args.top < 1:
        raise ConfigError(f"--top must be >= 1, got {args.top}")
    model, name = fp32_model(args.model, args.pipeline)
    print(f"sensitivity: calibrating {name} ({args.calib_method}) ...", file=sys.stderr, flush=True)

    def progress(done: int, total: int, layer: str) -> None:
        if layer:
            print(f"sensitivity: layer {done + 1}/{total} {layer} alone in INT8", file=sys.stderr, flush=True)

    result = sensitivity(model, args.eval_data, calibration=args.calib, calibration_method=args.calib_method,
                         activations=args.activations, probe_samples=args.probe_samples, pipeline="none",
                         threads=args.threads, progress=progress)
    print_result(name, args.eval_data, result, args.top)
    if args.json:
        write_json(args.json, {"model": name, "source": args.model, "eval_data": args.eval_data,
                               "activations": args.activations, **result.to_dict()})
    return 0


def _n(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def print_result(name: str, dataset: str, result: Any, top: int) -> None:
    from rich.table import Table

    labeled = result.fp32.top1_pct is not None
    cal = result.calibration or {}
    console.print(f"[bold]{name}[/bold] on {dataset} ({result.data}, {result.samples} samples) · INT8 calibrated "
                  f"with {cal.get('method')} on {cal.get('samples')} samples from {cal.get('source')}")
    fp32, int8 = result.fp32, result.converted
    if labeled and int8 is not None:
        console.print(f"FP32: top-1 {fp32.top1_pct:.2f} %   all-INT8: top-1 {int8.top1_pct:.2f} % "
                      f"({int8.top1_pct - fp32.top1_pct:+.2f} pts), mean cosine to FP32 {int8.cosine_mean:.5f}")
    elif int8 is not None:
        console.print(f"all-INT8: mean cosine to FP32 {int8.cosine_mean:.5f} (min {int8.cosine_min:.5f})")
    rows = result.top(top)
    table = Table(title=f"INT8 sensitivity, each layer alone in INT8 (the rest FP32): top {len(rows)} of "
                        f"{len(result.rows)} layers")
    columns = ["rank", "layer", "op"] + (["top-1 drop (pts)"] if labeled else []) + \
        ["cosine loss", "output SQNR (dB)", "output rel err"]
    for col in columns:
        table.add_column(col, justify="left" if col in ("layer", "op") else "right")
    for r in rows:
        sqnr = "∞" if r.output_sqnr_db == float("inf") else _n(r.output_sqnr_db, ".1f")
        cells = [str(r.rank), r.layer, r.op_type] + ([_n(r.top1_drop_pts, "+.2f")] if labeled else []) + \
            [f"{r.cosine_loss:.2e}", sqnr, _n(r.output_rel_err, ".2e")]
        table.add_row(*cells)
    console.print(table)
    console.print(f"ranked by {result.ranked_by}")
    console.print("output = the layer's own output tensor (after a Relu/Clip the quantizer folds into it) "
                  "against FP32; SQNR = -20·log10(rel err)")
    for w in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {w}")
