"""One self-contained HTML page from result files: ``tensorforge report RESULTS… -o report.html``.

The page needs nothing but a browser: the CSS is inline, the plots are inline SVG (matplotlib, Agg),
there is no script and no URL to fetch. Sections, each present only when its kind of result is:

* machines — H1, H2 … and what each is (CPU, ISA flags, cores, GPUs), with the files it measured;
* bench — the whitepaper-style table per result (throughput, latency, power and perf/W by batch, power
  "unavailable" with the reason when the machine has no sensor), throughput and latency vs batch;
* comparison — throughput by model, precision and batch with one column per machine and the
  whitepaper's published images/s (:mod:`.seed_figures`) where the same model and batch exist;
* accuracy — FP32 vs FP16 vs INT8 (and the whitepaper's Table 1); tune / optimize — the candidates and
  the speed–accuracy Pareto front; profile — time per layer; loadtest — latency vs offered load with the
  bound.

>>> write_report(["bench.json", "loadtest-results/"], "report.html")       # doctest: +SKIP
PosixPath('report.html')
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from . import plots, sections
from .html_parts import PLOTS_NEED, Section, esc, figure, note, num, table
from .loaders import Item, Loaded, host_key, host_label, load_results
from .seed_figures import SOURCE, model_key, reference

__all__ = ["render_report", "write_report", "comparison_section"]

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1180px;
padding:0 18px 40px;color:#1d2330;background:#fff}
h1{font-size:1.6em;margin:18px 0 4px}h2{border-bottom:2px solid #0072B2;padding-bottom:3px;margin-top:34px}
nav a{margin-right:14px}p.meta{color:#555;margin:0 0 10px}
table.data{border-collapse:collapse;margin:14px 0 4px;font-size:13px;min-width:40%}
table.data caption{text-align:left;font-weight:600;padding:4px 0;caption-side:top}
table.data th,table.data td{border:1px solid #cfd6e0;padding:3px 7px;vertical-align:top}
table.data th{background:#eef2f7}table.data td.num{text-align:right;font-variant-numeric:tabular-nums}
table.data tbody tr:nth-child(even){background:#f8fafc}
p.note{color:#555;font-size:12px;margin:2px 0}p.warn{color:#a33;font-weight:600}
figure.plot{margin:16px 0;display:inline-block;vertical-align:top}figure.plot svg{max-width:100%;height:auto}
"""


def comparison_section(bench: Sequence[Item], hosts: Mapping[str, str]) -> Section | None:
    """Samples/s by (model, precision, batch): one column per machine, then the whitepaper devices that
    published the same model and batch. None when there is one machine and no published match."""
    cells: dict[tuple[str, str, int], dict[str, float]] = {}
    for item in bench:
        model = item.data.get("model", {})
        host = hosts.get(host_key(item.data.get("host")), "?")
        for r in item.data.get("rows", []):
            sps = (r.get("engine") or {}).get("throughput_sps")
            if isinstance(sps, (int, float)) and r.get("streams", 1) == 1:
                key = (str(model.get("name", "?")), str(model.get("precision", "?")), int(r["batch"]))
                cells.setdefault(key, {})[host] = max(sps, cells.get(key, {}).get(host, 0.0))
    refs = {key: {f"{f.device} ({f.precision.upper()})": f.throughput_sps for f in reference(key[0], key[2])}
            for key in cells}
    devices = list(dict.fromkeys(d for per in refs.values() for d in per))
    used = list(dict.fromkeys(h for per in cells.values() for h in per))
    if len(used) < 2 and not devices:
        return None
    sec = Section("comparison", "Across machines" + (" and the whitepaper" if devices else ""))
    rows = []
    for key in sorted(cells, key=lambda k: (model_key(k[0]), k[1], k[2])):
        rows.append([key[0], key[1].upper(), key[2]] + [num(cells[key].get(h)) for h in used]
                    + [num(refs[key].get(d), "{:,.0f}", "-") for d in devices])
    notes = []
    if devices:
        notes.append(f"whitepaper columns: images/s published in {SOURCE}; TensorRT on NVIDIA GPUs, "
                     "random images, so a reference for scale, not the same run")
    if len(used) > 1:
        notes.append("machine columns: samples/s of the engine (one stream); H1, H2 … are named in 'Machines'")
    sec.blocks.append(table(["model", "precision", "batch"] + [f"{h} (samples/s)" for h in used]
                            + [f"whitepaper {d}" for d in devices], rows, kind="comparison",
                            notes=notes))
    return sec


def _machines(loaded: Loaded, hosts: Mapping[str, str]) -> Section:
    sec = Section("machines", "Machines and files")
    by_host: dict[str, list[Item]] = {}
    for item in loaded.items:
        by_host.setdefault(host_key(item.data.get("host")), []).append(item)
    rows = []
    for key, name in hosts.items():
        host: Mapping[str, Any] = next(i.data["host"] for i in by_host[key])
        paths = ", ".join(dict.fromkeys(str(i.path) for i in by_host[key]))
        rows.append([name, host_label(host), ", ".join(host.get("isa_flags") or []) or "-", paths])
    if rows:
        sec.blocks.append(table(["host", "machine", "ISA flags", "files"], rows, kind="machines"))
    files = [[str(i.path), i.kind, i.name or "-"] for i in loaded.items]
    sec.blocks.append(table(["file", "kind", "model"], files, kind="files",
                            caption="results read"))
    if loaded.skipped:
        sec.blocks.append(table(["file", "why skipped"], [[str(p), why] for p, why in loaded.skipped],
                                kind="skipped", caption="files in the folders given that are no "
                                "result of a known kind"))
    return sec


def render_report(loaded: Loaded, *, title: str = "TensorForge results", draw: bool | None = None) -> str:
    """The page's HTML for everything in ``loaded``; ``draw=False`` (or no matplotlib) leaves the plots out."""
    draw = plots.available() if draw is None else draw
    hosts = sections.host_names(loaded.items)
    parts: list[Section] = [_machines(loaded, hosts)]
    if loaded.of("bench"):
        parts.append(sections.bench_section(loaded.of("bench"), hosts, draw))
        comparison = comparison_section(loaded.of("bench"), hosts)
        if comparison is not None:
            parts.append(comparison)
    if loaded.of("accuracy"):
        parts.append(sections.accuracy_section(loaded.of("accuracy"), draw))
    if loaded.of("optimize"):
        parts.append(sections.optimize_section(loaded.of("optimize"), draw))
    if loaded.of("tune"):
        parts.append(sections.tune_section(loaded.of("tune"), draw))
    if loaded.of("profile"):
        parts.append(sections.profile_section(loaded.of("profile"), draw))
    if loaded.of("loadtest"):
        parts.append(sections.loadtest_section(loaded.of("loadtest"), hosts, draw))
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    from .. import __version__

    body = [f"<h1>{esc(title)}</h1>",
            note(f"{len(loaded.items)} result(s) from {len({i.path for i in loaded.items})} file(s) · "
                 f"generated {stamp} by tensorforge {__version__}", "meta"),
            "<nav>" + "".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in parts) + "</nav>"]
    if not draw:
        body.append(note(PLOTS_NEED, "warn"))
    for sec in parts:
        body.append(f'<section id="{esc(sec.id)}" data-section="{esc(sec.id)}"><h2>{esc(sec.title)}</h2>')
        body.extend(sec.blocks)
        body.extend(figure(p) for p in sec.plots)
        body.append("</section>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{esc(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_report(paths: Iterable[str | os.PathLike[str]], out: str | os.PathLike[str], *,
                 title: str = "TensorForge results", draw: bool | None = None) -> Path:
    """Read ``paths`` (files and folders, see :func:`.loaders.load_results`) and write the page to ``out``."""
    page = render_report(load_results(paths), title=title, draw=draw)
    target = Path(out)
    target.write_text(page, encoding="utf-8")
    return target
