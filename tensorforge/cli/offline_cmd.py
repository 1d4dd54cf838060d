"""``tensorforge offline ENGINE --input DIR --output DIR`` — batch inference over files, in-process or on Ray."""

from __future__ import annotations

import argparse

from ._fmt import console, para, write_json

HELP = "batch inference over .npy/.npz files: one .npz of outputs per input file (in-process, or on Ray with --ray)"

_DESCRIPTION = para(
    "Run an engine over every row of every input file and write OUTPUT/<stem>.npz per input file, holding "
    "each output of the engine for that file's rows, in order. --input takes folders (their .npy/.npz files) "
    "or files: a .npy feeds a one-input engine; a .npz holds one array per input name. Rows go through the "
    "engine in batches of --batch-size (capped at the engine's max batch).") + "\n\n" + para(
    "In-process (default), --streams batches run at once on one session (weights shared). With --ray the "
    "rows go through Ray Data (map_batches over --concurrency engine actors, each loading the engine once) on "
    "the Ray cluster at --address, or a local one; Ray comes with the 'scale' extra (pip install "
    "'tensorforge[scale]'). The summary says how many samples per second the run achieved.")

_EPILOG = """examples:
  tensorforge offline model.tfe --input data/ --output out/
  tensorforge offline model.tfe --input a.npy --input b.npz --output out/ --batch-size 32 --streams 2
  tensorforge offline model.tfe --input data/ --output out/ --ray --address 10.0.0.5:6379 --concurrency 4"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("offline", help=HELP, description=_DESCRIPTION, epilog=_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("engine", metavar="ENGINE", help="engine file (.tfe)")
    p.add_argument("--input", "-i", dest="inputs", action="append", required=True, metavar="DIR|FILE",
                   help="a folder of .npy/.npz files, or one such file; repeat for several")
    p.add_argument("--output", dest="output_dir", required=True, metavar="DIR",
                   help="folder for the outputs (created if missing): DIR/<input stem>.npz")
    p.add_argument("--batch-size", type=int, default=64, help="rows per engine call (default 64)")
    p.add_argument("--streams", type=int, default=1, help="in-process: batches run at once (default 1)")
    p.add_argument("--threads", type=int, help="ONNX Runtime threads per stream or Ray actor (default: cores ÷ "
                                                 "streams; on Ray, 1 per actor CPU)")
    r = p.add_argument_group("Ray (pip install 'tensorforge[scale]')")
    r.add_argument("--ray", action="store_true", help="run on a Ray cluster with Ray Data instead of in-process")
    r.add_argument("--address", help="Ray cluster to join (host:port, 'auto', ray://…); default: a running one or "
                                     "a new local one")
    r.add_argument("--concurrency", type=int, default=1, help="--ray: engine actors in the pool (default 1)")
    p.add_argument("--json", metavar="FILE", help="also write the summary as JSON")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..api.offline import input_files, offline_files
    from ..errors import InputError
    from ._checks import check_output_dir, library_progress

    input_files(args.inputs)                       # a missing input fails before the engine loads
    check_output_dir(args.output_dir, "--output")
    if args.address and not args.ray:
        raise InputError("--address names the Ray cluster for --ray; add --ray (or drop --address)")
    if args.ray:
        from ..scale.blob import require_ray

        require_ray("data")
    with library_progress(f"offline {args.engine}"):
        result = offline_files(args.engine, args.inputs, args.output_dir, batch_size=args.batch_size,
                               streams=args.streams, threads=args.threads, ray=args.ray, address=args.address,
                               concurrency=args.concurrency)
    console.print(f"{result.samples} samples from {result.files} file(s) in {result.seconds:.3f} s: "
                  f"{result.samples_per_s:,.1f} samples/s ({result.mode}, batch {result.batch_size}, "
                  f"{result.workers} {'actor' if args.ray else 'stream'}(s)); outputs in {args.output_dir}")
    if args.json:
        write_json(args.json, result.to_dict())
    return 0
