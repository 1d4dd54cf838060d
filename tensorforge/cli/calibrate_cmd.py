"""``tensorforge calibrate MODEL --calib DATA -o FILE`` — one calibration pass, saved as a histogram file.

The file holds every activation's histogram for the FP32 graph ``build`` quantizes; any
calibration method's ranges derive from it without running the model again (``build``,
``accuracy`` or Python through ``CalibrationSpec(histograms=FILE)``).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from ._fmt import console, human_bytes, para

HELP = "run calibration data through a model once and save every activation's histogram (reused by all methods)"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help=HELP, description=para(
        "Calibrate once: prepare the FP32 graph exactly as `build` does (same --pipeline, --batch/--max-batch), "
        "stream the calibration data through it with bounded memory, and write a versioned, checksummed "
        "histogram file keyed to that graph. Every calibration method (minmax, entropy, percentile, mse) "
        "derives its INT8 ranges from the file, bit for bit as from a fresh pass, without running the model; "
        "the file is refused for any other model."),
        epilog="examples:\n  tensorforge calibrate mnist_cnn --calib mnist5k -o mnist_cnn.hist.npz\n"
               "  tensorforge calibrate model.onnx --calib images/ --calib-resize 256 --calib-crop 224 "
               "--calib-samples 5000 -o model.hist.npz",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="an ONNX file, a zoo model or a trained model's name (as for `build`)")
    p.add_argument("--calib", required=True, metavar="DATA",
                   help="calibration data: a folder of images, a .npy/.npz file, a bundled dataset (mnist5k, "
                        "digits, sentences), or 'random' (speed-only engines)")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="histogram file to write, e.g. "
                   "model.hist.npz (replaced if it exists)")
    p.add_argument("--calib-samples", type=int, default=512, metavar="N",
                   help="read at most N calibration samples (default: 512; memory does not grow with N)")
    p.add_argument("--calib-batch", type=int, default=32, metavar="N", help="samples per model run (default: 32)")
    p.add_argument("--bins", type=int, default=2048, metavar="N", help="histogram bins per tensor, even "
                   "(default: 2048)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--batch", type=int, help="as for build: the batch dimension the engine will have")
    g.add_argument("--max-batch", type=int, help="as for build: a dynamic batch dimension, up to N")
    p.add_argument("--pipeline", default="default", help="as for build: graph pass pipeline (default: default)")
    p.add_argument("--threads", type=int, help="intra-op threads for the calibration runs")
    p.add_argument("--show", type=int, default=5, metavar="N", help="tensors in the ranges table (default: 5)")
    p.add_argument("--activations", default="uint8", choices=("uint8", "int8"),
                   help="signedness of the ranges shown: uint8 (default, as build) or int8")
    q = p.add_argument_group("preprocessing (as for build)")
    q.add_argument("--calib-resize", metavar="N|HxW", help="images: resize the shorter side to N (or exactly HxW)")
    q.add_argument("--calib-crop", metavar="N|HxW", help="images: center crop after resizing")
    q.add_argument("--calib-scale", type=float, metavar="S", help="multiply values by S first (images: 1/255)")
    q.add_argument("--calib-mean", metavar="M,M,M", help="per-channel mean to subtract")
    q.add_argument("--calib-std", metavar="S,S,S", help="per-channel std to divide by")
    q.add_argument("--calib-layout", choices=("NCHW", "NHWC"), help="layout of .npy/.npz arrays (default: the "
                   "model's)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..api.calibrate import calibrate
    from ..errors import ConfigError
    from ._checks import library_progress
    from .build_cmd import _preprocess

    if args.show < 0:
        raise ConfigError(f"--show must be >= 0, got {args.show}")
    with library_progress(f"calibrate {args.model}") as step:     # one line per calibration batch when piped
        step(f"reading {args.calib} (one pass)")
        result = calibrate(args.model, args.calib, args.output, calibration_samples=args.calib_samples,
                           calibration_batch=args.calib_batch, bins=args.bins, batch=args.batch,
                           max_batch=args.max_batch, pipeline=args.pipeline, threads=args.threads,
                           preprocess=_preprocess(args))
    hs, path = result.histograms, result.path
    console.print(f"[bold]{result.name}[/bold] from {result.origin}: FP32 graph sha256 {hs.model_sha256[:12]}…")
    console.print(f"wrote {path} ({human_bytes(path.stat().st_size)}): {len(hs.histograms)} tensors × "
                  f"{hs.num_bins} bins from {hs.samples} samples of {hs.data_source} in "
                  f"{result.seconds:.1f} s (calibration pass {result.pass_seconds:.1f} s)")
    for w in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {w}")
    _print_ranges(hs, args.show, unsigned=args.activations == "uint8")
    console.print(f"every method's ranges for all {len(hs.histograms)} tensors derive from this file with no model "
                  f"run; from Python: CalibrationSpec(histograms={str(path)!r})")
    return 0


def _print_ranges(hs: Any, show: int, *, unsigned: bool) -> None:
    from rich.table import Table

    from ..precision.methods import METHODS

    names = list(hs.histograms)[:show]
    if not names:
        return
    few = replace(hs, histograms={n: hs.histograms[n] for n in names})     # the slow methods on these only
    ranges = {m: few.ranges(m, unsigned=unsigned) for m in METHODS}
    table = Table(title=f"ranges of {len(names)} of {len(hs.histograms)} tensors "
                        f"({'uint8' if unsigned else 'int8'} activations; percentile 99.99)")
    table.add_column("tensor")
    for m in METHODS:
        table.add_column(m, justify="right")
    for n in names:
        table.add_row(n, *(_fmt_range(ranges[m].get(n)) for m in METHODS))
    console.print(table)


def _fmt_range(r: tuple[float, float] | None) -> str:
    return "—" if r is None else f"[{r[0]:.4g}, {r[1]:.4g}]"
