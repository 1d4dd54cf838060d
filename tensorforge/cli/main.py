"""``tensorforge`` — the command line. One module per command; each calls the public API.

Errors TensorForge raises on purpose are printed as one line (exit code 2); ``--debug``
shows the traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from . import (
    accuracy_cmd,
    backends_cmd,
    bench_cmd,
    build_cmd,
    calibrate_cmd,
    info_cmd,
    loadtest_cmd,
    profile_cmd,
    run_cmd,
    sensitivity_cmd,
    serve_cmd,
    zoo_cmd,
)

COMMANDS = (accuracy_cmd, bench_cmd, build_cmd, calibrate_cmd, sensitivity_cmd, profile_cmd, run_cmd, info_cmd, zoo_cmd,
            backends_cmd, loadtest_cmd, serve_cmd)

DESCRIPTION = """\
TensorForge turns a trained network (an ONNX file or a built-in zoo model) into an
optimized, verified engine file (.tfe), runs it and measures it.

Start with:  tensorforge bench                 (benchmark the default model)
             tensorforge zoo list              (the built-in models)
             tensorforge build resnet50 -o resnet50.tfe
             tensorforge build mnist_cnn --optimize latency --eval-data mnist5k -o m.tfe
             tensorforge profile m.tfe          (time per layer, and its precision)
             tensorforge run resnet50.tfe --input x.npy --topk 5
"""


def make_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="tensorforge", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"tensorforge {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from ..errors import TensorForgeError

    try:
        return int(args.func(args) or 0)
    except TensorForgeError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
