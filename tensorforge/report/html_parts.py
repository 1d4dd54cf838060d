"""Building blocks of the HTML report: escaped tables, plot figures, sections, number formats.

Pure string building; :mod:`.html` assembles the page and :mod:`.sections` fills the sections.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from .plots import Plot

__all__ = ["Section", "esc", "num", "table", "figure", "note", "PLOTS_NEED"]

_NUMERIC = re.compile(r"[-+]?[\d,.]+ ?[×%]?|n/a|unavailable|-")
PLOTS_NEED = "plots need matplotlib: pip install 'tensorforge[loadgen]'"


@dataclass
class Section:
    """One part of the page: an anchor id, a heading, and its HTML blocks in order."""

    id: str
    title: str
    blocks: list[str] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def num(value: Any, fmt: str = "{:,.1f}", missing: str = "n/a") -> str:
    """``fmt`` applied to a number; ``missing`` for None or anything that is not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return missing
    return fmt.format(value)


def _cell(value: Any) -> str:
    text = str(value)
    return f"<td class=num>{esc(text)}</td>" if _NUMERIC.fullmatch(text) else f"<td>{esc(text)}</td>"


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, caption: str = "", kind: str = "",
          notes: Sequence[str] = ()) -> str:
    """An HTML table tagged with its kind and row count; cells are escaped, numbers right-aligned."""
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(c) for c in r) + "</tr>" for r in rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    foot = "".join(f'<p class="note">{esc(n)}</p>' for n in notes)
    return (f'<table class="data" data-table="{esc(kind)}" data-rows="{len(rows)}">{cap}<thead><tr>{head}</tr>'
            f"</thead><tbody>{body}</tbody></table>{foot}")


def figure(plot: Plot, caption: str = "") -> str:
    """The plot's inline SVG in a figure tagged with its name and point count (what a test reads)."""
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return (f'<figure class="plot" data-plot="{esc(plot.name)}" data-points="{plot.points}">{plot.svg}{cap}'
            "</figure>")


def note(text: str, cls: str = "note") -> str:
    return f'<p class="{esc(cls)}">{esc(text)}</p>'
