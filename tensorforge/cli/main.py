"""``tensorforge`` — the command line. One module per command; each calls the public API.

Errors TensorForge raises on purpose are printed as one line (exit code 2); ``--debug``
shows the traceback. Library messages name Python parameters (`` `target_qps` ``,
``target_qps=100``); :func:`to_flags` rewrites those to the command's flags
(``--target-qps``, ``--target-qps 100``), so each audience reads its own words.
"""

from __future__ import annotations

import argparse
import re
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
    offline_cmd,
    profile_cmd,
    report_cmd,
    run_cmd,
    sensitivity_cmd,
    serve_cmd,
    tune_serve_cmd,
    zoo_cmd,
)

COMMANDS = (accuracy_cmd, bench_cmd, build_cmd, calibrate_cmd, sensitivity_cmd, profile_cmd, run_cmd, info_cmd, zoo_cmd,
            backends_cmd, loadtest_cmd, serve_cmd, tune_serve_cmd, offline_cmd,
            report_cmd)

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


# Python parameter -> flag, where the flag is not the parameter with dashes (`target_qps` -> --target-qps)
PARAM_FLAGS = {
    "calibration": "--calib", "calibration_method": "--calib-method", "calibration_cache": "--calib-cache",
    "calibration_histograms": "--calib-histograms", "calibration_samples": "--calib-samples",
    "calibration_batch": "--calib-batch", "batches": "--batch", "duration_s": "--duration", "warmup_s": "--warmup",
    "tune_budget_s": "--tune-budget", "latency_bound_ms": "--latency-bound", "sweep_budgets_ms": "--sweep-latency",
    "min_query_count": "--min-queries", "max_query_count": "--max-queries", "min_duration_s": "--min-duration",
    "max_duration_s": "--max-duration", "offline_sample_count": "--offline-samples", "qps": "--target-qps",
    "budget": "--budget", "accuracy_budget": "--accuracy-budget", "precisions": "--precisions",
    "auth_token_file": "--auth-token-file", "max_queue_size": "--max-queue-size",
    "inputs": "--input", "output_dir": "--output", "input_data": "--input",
}
_TICKED = re.compile(r"`([a-z][a-z0-9_]*)`")
_ASSIGNED = re.compile(r"(?<![\w.-])([a-z][a-z0-9_]*)=(\"[^\"]*\"|'[^']*'|[^\s,;)]*)")


def _flags_of(parser: argparse.ArgumentParser) -> set[str]:
    return {opt for action in parser._actions for opt in action.option_strings if opt.startswith("--")}


def command_flags(command: str) -> set[str]:
    """The long options of ``tensorforge COMMAND`` and the global ones (for :func:`to_flags`)."""
    parser = make_parser()
    sub = _subparsers(parser).get(command)
    return _flags_of(parser) | (_flags_of(sub) if sub is not None else set())


def to_flags(text: str, flags: set[str]) -> str:
    """Rewrite the Python parameter names in ``text`` to the flags among ``flags``: `` `name` `` becomes
    ``--name``, ``name=VALUE`` becomes ``--name VALUE`` (``name=True`` just ``--name``). Names that are no
    flag of the command stay as they are."""
    def flag(name: str) -> str | None:
        candidate = PARAM_FLAGS.get(name, "--" + name.replace("_", "-"))
        return candidate if candidate in flags else None

    def ticked(m: re.Match[str]) -> str:
        return flag(m.group(1)) or m.group(0)

    def assigned(m: re.Match[str]) -> str:
        name, value = m.group(1), m.group(2).strip("\"'")
        f = flag(name)
        if f is None:
            return m.group(0)
        return f if value in ("", "True") else f"{f} {value}"

    return _ASSIGNED.sub(assigned, _TICKED.sub(ticked, text))


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from ..errors import TensorForgeError

    try:
        from ._checks import check_args

        check_args(args)        # output folders and thread counts, before any long work starts
        return int(args.func(args) or 0)
    except TensorForgeError as exc:
        if args.debug:
            raise
        print(f"error: {to_flags(str(exc), command_flags(args.command))}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        # an optional extra that is not installed: name the extra, not the traceback
        from ._checks import missing_extra

        hint = missing_extra(exc)
        if hint is None or args.debug:
            raise
        print(f"error: {hint}", file=sys.stderr)
        return 2
    except OSError as exc:
        # the environment said no (a port in use, a full disk, a missing folder): one line, exit 1
        if args.debug:
            raise
        print(f"error: {_os_error(exc)} (--debug shows the traceback)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _os_error(exc: OSError) -> str:
    """One line for an OSError: what failed, on which file, and the usual fix."""
    import errno

    where = f"{exc.filename}: " if exc.filename else ""
    text = exc.strerror or str(exc)
    if exc.errno == errno.EADDRINUSE:
        return f"{text}: another program listens on that port; stop it or choose another port"
    if exc.errno == errno.ENOENT and exc.filename:
        return f"{where}{text}; check the path (its folder must exist)"
    return f"{where}{text}"


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Command name -> its parser."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
