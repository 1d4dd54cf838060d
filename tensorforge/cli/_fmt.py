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


def dynamic_axis_warnings(inputs: list[dict[str, Any]], used_key: str, hint: str) -> list[str]:
    """The warning (one line, or none) for inputs whose non-batch axes are dynamic (a sequence length): each
    axis and the value it was run at (``inputs[i][used_key]``: the shape at batch 1), and how to choose
    another (``hint``). Integer inputs are said to carry random ids, not real tokens."""
    parts, ints = [], False
    for spec in inputs:
        shape, used = list(spec.get("shape", [])), list(spec.get(used_key) or [])
        axes = [(i, d) for i, d in enumerate(shape) if i > 0 and not isinstance(d, int)]
        if not axes or len(used) != len(shape):
            continue
        parts.append(f"{spec.get('name')} " + ", ".join(f"{d or f'axis {i}'}={used[i]}" for i, d in axes))
        ints = ints or "int" in str(spec.get("dtype", ""))
    if not parts:
        return []
    return [f"dynamic input axes run at: {'; '.join(parts)}" + (" (random integer ids)" if ints else "")
            + f". {hint}"]
