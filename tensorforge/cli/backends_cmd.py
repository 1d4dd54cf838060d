"""``tensorforge backends`` — what can run here, and why the rest cannot."""

from __future__ import annotations

import argparse

from ._fmt import console

HELP = "list execution backends available on this machine"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backends", help=HELP, description=HELP + ", with devices and versions, "
                       "and the reason any backend is unavailable.")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ..backends.registry import describe_backends

    table = Table(title="Backends")
    for col in ("backend", "available", "devices", "versions / reason", "notes"):
        table.add_column(col)
    for row in describe_backends():
        versions: dict[str, str] = row["versions"]  # type: ignore[assignment]
        devices: list[str] = row["devices"]  # type: ignore[assignment]
        notes: list[str] = row.get("notes") or []  # type: ignore[assignment]
        detail = ", ".join(f"{k} {v}" for k, v in versions.items()) if row["available"] else row["reason"]
        table.add_row(str(row["name"]), "yes" if row["available"] else "no", ", ".join(devices), str(detail),
                      "\n".join(notes))
    console.print(table)
    return 0
