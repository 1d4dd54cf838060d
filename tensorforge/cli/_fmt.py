"""Small formatting helpers shared by the commands (rich console, numbers, bytes)."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

from ..report.units import human_bytes, human_count  # noqa: F401  (re-exported: the commands import them here)

# Piped or captured output gets a wide, fixed width so the bench table's 15 columns never wrap.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 180)
err_console = Console(stderr=True, highlight=False)


def write_json(path: str, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, default=str)
        fh.write("\n")


def para(text: str, width: int = 88) -> str:
    """Wrap a help paragraph (RawDescriptionHelpFormatter keeps our examples' line breaks, so wrap here)."""
    import textwrap

    return textwrap.fill(" ".join(text.split()), width)
