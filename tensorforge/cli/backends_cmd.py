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
    from rich.markup import escape
    from rich.table import Table

    from ..backends.registry import describe_backends

    table = Table(title="Backends")
    for col in ("backend", "available", "devices", "versions / reason", "onnx conformance", "notes"):
        table.add_column(col)
    for row in describe_backends():
        versions: dict[str, str] = row["versions"]  # type: ignore[assignment]
        devices: list[str] = row["devices"]  # type: ignore[assignment]
        notes: list[str] = row.get("notes") or []  # type: ignore[assignment]
        detail = ", ".join(f"{k} {v}" for k, v in versions.items()) if row["available"] else row["reason"]
        # escape: the reasons carry install hints like pip install 'tensorforge[openvino]', and rich would
        # read [openvino] as a markup tag and drop it
        table.add_row(escape(str(row["name"])), "yes" if row["available"] else "no", escape(", ".join(devices)),
                      escape(str(detail)), _share(row.get("conformance")), escape("\n".join(notes)))
    console.print(table)
    console.print("onnx conformance: of the models with test data inside the onnx package, how many build, run "
                  "and match their shipped outputs on the backend (the rest: typed refusals, or known wrong "
                  "answers); measured by tests/conformance")
    return 0


def _share(row: object) -> str:
    if not isinstance(row, dict) or not row.get("cases"):
        return "—"
    text = f"{row['passed']}/{row['cases']} pass ({100 * row['passed'] / row['cases']:.0f} %)"
    return text + (f", {row['known_failure']} wrong" if row.get("known_failure") else "")
