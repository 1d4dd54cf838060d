"""Small formatting helpers shared by the commands (rich console, numbers, bytes)."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

# Piped or captured output gets a wide, fixed width so the bench table's 15 columns never wrap.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 180)
err_console = Console(stderr=True, highlight=False)


def human_count(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f} {unit}"
    return f"{n:.0f}"


def human_bytes(n: float) -> str:
    for unit, div in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n:.0f} B"


def write_json(path: str, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, default=str)
        fh.write("\n")


def para(text: str, width: int = 88) -> str:
    """Wrap a help paragraph (RawDescriptionHelpFormatter keeps our examples' line breaks, so wrap here)."""
    import textwrap

    return textwrap.fill(" ".join(text.split()), width)
