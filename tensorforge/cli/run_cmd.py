"""``tensorforge run ENGINE --input x.npy`` — run an engine on data from files."""

from __future__ import annotations

import argparse

import numpy as np

from ._fmt import console, para

HELP = "run an engine (or ONNX file / zoo model) on inputs from .npy/.npz files and print the outputs"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help=HELP, description=para(
        HELP + ". A single-input model takes one --input FILE.npy; several inputs take "
        "--input NAME=FILE.npy each, or one .npz whose keys are the input names."),
        epilog="examples:\n  tensorforge run resnet50.tfe --input image.npy --topk 5\n"
               "  tensorforge run model.tfe --input ids=ids.npy --input mask=mask.npy -o out.npz",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("engine", help="a .tfe engine file (an ONNX file or zoo name is built in memory first)")
    p.add_argument("--input", "-i", action="append", required=True, metavar="[NAME=]FILE",
                   help="input data: FILE.npy, NAME=FILE.npy, or FILE.npz")
    p.add_argument("--topk", type=int, help="print the top-K classes per row of each 2-D output")
    p.add_argument("--threads", type=int, help="intra-op threads (default: backend's)")
    p.add_argument("-o", "--output", help="save all outputs to this file, in .npz format (written under exactly "
                   "this name; read it back with numpy.load)")
    p.set_defaults(func=_run)


def read_inputs(items: list[str]) -> np.ndarray | dict[str, np.ndarray]:
    from ..errors import InputError

    feeds: dict[str, np.ndarray] = {}
    single = None
    for item in items:
        name, sep, path = item.rpartition("=") if "=" in item else ("", "", item)
        try:
            # allow_pickle=False: a data file must never execute code
            data = np.load(path, allow_pickle=False)
        except FileNotFoundError as exc:
            raise InputError(f"input file {path!r} does not exist") from exc
        except (ValueError, OSError) as exc:
            raise InputError(f"cannot read {path!r} as .npy/.npz: {exc}") from exc
        if isinstance(data, np.lib.npyio.NpzFile):
            feeds.update({k: data[k] for k in data.files})
        elif sep:
            feeds[name] = data
        else:
            if single is not None or len(items) > 1:
                raise InputError("with several inputs, name each: --input NAME=FILE.npy")
            single = data
    return single if single is not None else feeds


def _run(args: argparse.Namespace) -> int:
    from ..api.engine import engine_for, run
    output = args.output        # checked writable up front by main (cli/_checks.check_args)
    engine = engine_for(args.engine, threads=args.threads)     # a missing engine is reported before the inputs
    outputs = run(engine, read_inputs(args.input), threads=args.threads)
    for name, value in outputs.items():
        console.print(f"[bold]{name}[/bold]: {value.dtype} {tuple(value.shape)}")
        if args.topk and value.ndim == 2:
            k = min(args.topk, value.shape[1])
            for row, scores in enumerate(value):
                top = np.argsort(-scores, kind="stable")[:k]
                console.print(f"  row {row}: " + ", ".join(f"class {c} ({scores[c]:.4g})" for c in top))
        else:
            with np.printoptions(precision=5, threshold=20, edgeitems=3):
                console.print(f"  {value}")
    if output:
        # write through an open file: np.savez(path) appends ".npz" to any other name, and the message must
        # name the file that really exists
        with open(output, "wb") as fh:
            np.savez(fh, **outputs)  # type: ignore[arg-type]
        console.print(f"saved outputs to {output}")
    return 0
