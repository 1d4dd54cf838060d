"""``tensorforge info ENGINE`` — what an engine file holds."""

from __future__ import annotations

import argparse
import json

from ._fmt import console

HELP = "show an engine file's manifest: model, inputs/outputs, backend, build host"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help=HELP, description=HELP + ". Also checks the file's format and checksums.")
    p.add_argument("engine", help="a .tfe engine file")
    p.add_argument("--json", action="store_true", help="print the whole manifest as JSON")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..api.engine import info

    described = info(args.engine)
    engine, m = described.engine, described.manifest
    if args.json:
        print(json.dumps(m.to_dict(), indent=2))      # the typed manifest becomes JSON only here
        return 0
    console.print(f"[bold]{engine.name}[/bold] ({m.model.source}), format v{m.format_version}, "
                  f"precision {m.precision}, backend {m.backend.name} {m.backend.settings.to_dict()}")
    for kind, specs in (("input ", engine.inputs), ("output", engine.outputs)):
        for s in specs:
            console.print(f"  {kind} {s.name}: {s.dtype} {s.shape_str()}")
    if engine.max_batch:
        console.print(f"  max batch {engine.max_batch}")
    host = m.build.host
    console.print(f"built {m.build.date} on {host['cpu_model']} ({host['logical_cores']} cores, "
                  f"{' '.join(host['isa_flags'])})")
    diffs = described.host_differences
    console.print("this host differs: " + "; ".join(diffs) if diffs else "this host matches the build host")
    return 0
