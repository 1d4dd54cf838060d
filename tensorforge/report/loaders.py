"""Reading result files for the HTML report: find the JSON files, tell each one's kind from its content.

The kinds, and what each command writes:

* ``bench`` — ``tensorforge bench --json`` (schema ``tensorforge.bench/1``; a ``bench-precisions/1``
  wrapper is split into one item per precision);
* ``accuracy`` — ``tensorforge accuracy --json`` (``tensorforge.accuracy/1``);
* ``profile`` — ``tensorforge profile --json`` (``tensorforge.profile/1``);
* ``tune`` / ``optimize`` — a build report (``tensorforge build --tune/--optimize --report``) gives one
  item per part it holds; a bare ``TuneResult.to_dict()`` or ``OptimizeResult.to_dict()`` is read too;
* ``loadtest`` — ``tensorforge loadtest``'s ``results.json``, or its ``results.jsonl`` (one run or probe
  per line, kept when a run was interrupted).

Files named on the command line must be of a known kind (:class:`InputError` naming the file otherwise);
folders are searched recursively for ``*.json`` and ``results.jsonl``, and files there of no known kind
are skipped and listed, so a folder of mixed results can be given whole.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import InputError

__all__ = ["KINDS", "Item", "Loaded", "detect_kinds", "load_file", "load_results", "host_key", "host_label"]

KINDS = ("bench", "accuracy", "profile", "tune", "optimize", "loadtest")


@dataclass(frozen=True)
class Item:
    """One result of one kind, read from ``path`` (a file may give several items)."""

    kind: str
    path: Path
    data: Mapping[str, Any]
    name: str = ""          # the model or engine it is about, when the file says


@dataclass
class Loaded:
    """Everything read: the items by kind, and the files skipped in folders (path, why)."""

    items: list[Item] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def of(self, kind: str) -> list[Item]:
        return [i for i in self.items if i.kind == kind]


def _schema(doc: Mapping[str, Any]) -> str:
    s = doc.get("schema")
    return s if isinstance(s, str) else ""


def _has(doc: Mapping[str, Any], *keys: str) -> bool:
    return all(k in doc for k in keys)


def _is_bench(doc: Mapping[str, Any]) -> bool:
    rows = doc.get("rows")
    return _schema(doc).startswith("tensorforge.bench/") or (
        _has(doc, "model", "host") and isinstance(rows, list) and bool(rows) and isinstance(rows[0], dict)
        and _has(rows[0], "batch", "engine"))


def _is_tune(doc: Mapping[str, Any]) -> bool:
    return _has(doc, "objective", "winner", "candidates") and isinstance(doc["candidates"], list)


def _is_optimize(doc: Mapping[str, Any]) -> bool:
    return _has(doc, "points", "front", "chosen") and isinstance(doc["points"], list)


def detect_kinds(doc: Any, path: Path) -> list[Item]:
    """The items in one parsed JSON document; [] when it is of no known kind."""
    if not isinstance(doc, dict):
        return []
    schema = _schema(doc)
    if schema.startswith("tensorforge.bench-precisions/") or (
            isinstance(doc.get("results"), list) and doc["results"] and all(_is_bench(r) for r in doc["results"])):
        return [Item("bench", path, r, r["model"].get("name", "")) for r in doc["results"] if _is_bench(r)]
    if _is_bench(doc):
        return [Item("bench", path, doc, doc["model"].get("name", ""))]
    if schema.startswith("tensorforge.accuracy/") or (
            isinstance(doc.get("columns"), list) and _has(doc, "model", "dataset")):
        return [Item("accuracy", path, doc, str(doc.get("model", "")))]
    if schema.startswith("tensorforge.profile/") or _has(doc, "layers", "run_ms", "engine"):
        return [Item("profile", path, doc, str(doc.get("engine", "")))]
    if _has(doc, "tuning", "optimization", "passes"):            # a build report
        name = str(doc.get("name", ""))
        items = []
        if isinstance(doc.get("optimization"), dict) and _is_optimize(doc["optimization"]):
            items.append(Item("optimize", path, doc["optimization"], name))
        if isinstance(doc.get("tuning"), dict) and _is_tune(doc["tuning"]):
            items.append(Item("tune", path, doc["tuning"], name))
        return items
    if _is_optimize(doc):
        return [Item("optimize", path, doc)]
    if _is_tune(doc):
        return [Item("tune", path, doc)]
    if isinstance(doc.get("configs"), list) and all(isinstance(c, dict) and "runs" in c for c in doc["configs"]) \
            and "mode" in doc:
        return [Item("loadtest", path, doc)]
    return []


def _from_jsonl(path: Path) -> list[Item]:
    """A loadtest ``results.jsonl`` as one loadtest item (runs and probes grouped by configuration)."""
    configs: dict[str, dict[str, Any]] = {}
    lines = path.read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            if n == len(lines):
                break                        # a last line cut short by an interrupted run
            raise InputError(f"{path}: line {n} is not JSON ({exc.msg}); is it a loadtest results.jsonl?") from exc
        if not isinstance(row, dict) or "config" not in row or row.get("kind") not in ("run", "probe"):
            return []
        entry = configs.setdefault(row["config"], {"label": row["config"], "runs": [], "probes": []})
        entry["runs" if row["kind"] == "run" else "probes"].append(row)
    if not configs:
        return []
    return [Item("loadtest", path, {"mode": "partial", "host": None, "configs": list(configs.values())})]


def load_file(path: str | os.PathLike[str]) -> list[Item]:
    """The items in one file; :class:`InputError` naming the file when it is unreadable or of no known kind."""
    p = Path(path)
    if p.name.endswith(".jsonl"):
        items = _from_jsonl(p)
    else:
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{p}: not a JSON file ({exc}); give the JSON that bench/accuracy/profile --json, "
                             "build --report or loadtest --out wrote") from exc
        items = detect_kinds(doc, p)
    if not items:
        raise InputError(f"{p}: a JSON of no known kind — expected the output of tensorforge bench --json, "
                         "accuracy --json, profile --json, build --tune/--optimize --report, or loadtest "
                         "(results.json / results.jsonl)")
    return items


def _files_in(folder: Path) -> Iterable[Path]:
    for p in sorted(folder.rglob("*")):
        if not p.is_file():
            continue
        if p.suffix == ".json":
            yield p
        elif p.name == "results.jsonl" and not (p.parent / "results.json").exists():
            yield p                          # the finished results.json holds the same runs


def load_results(paths: Iterable[str | os.PathLike[str]]) -> Loaded:
    """Read every file and folder of ``paths`` (see the module doc). :class:`InputError` for a missing
    path, for a named file of no known kind, and when nothing of a known kind was found at all."""
    paths = list(paths)
    if not paths:
        raise InputError("no results given: name the JSON files or folders to report on")
    out = Loaded()
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise InputError(f"{p}: no such file or folder")
        if p.is_dir():
            for f in _files_in(p):
                try:
                    out.items.extend(load_file(f))
                except InputError as exc:
                    out.skipped.append((f, str(exc).split(" — ")[0].removeprefix(f"{f}: ")))
        else:
            out.items.extend(load_file(p))
    if not out.items:
        where = ", ".join(str(p) for p in paths)
        raise InputError(f"{where}: no result of a known kind found ({len(out.skipped)} JSON file(s) skipped); "
                         "give the output of tensorforge bench --json, accuracy --json, profile --json, "
                         "build --report or loadtest")
    return out


def host_key(host: Mapping[str, Any] | None) -> str:
    """What tells machines apart: CPU model, architecture, ISA flags, core count and GPUs ("" when unknown)."""
    if not host:
        return ""
    gpus = ",".join(str(g.get("name", g)) if isinstance(g, dict) else str(g) for g in host.get("gpus") or [])
    return "|".join([str(host.get("cpu_model", "?")), str(host.get("machine", "")),
                     ",".join(sorted(host.get("isa_flags") or [])), str(host.get("logical_cores", "")), gpus])


def host_label(host: Mapping[str, Any] | None) -> str:
    """``"AMD EPYC · x86_64 · 2 cores · avx2,fma"`` — a short name for a column header."""
    if not host:
        return "unknown host"
    flags = [f for f in host.get("isa_flags") or [] if f.startswith(("avx", "amx", "fma", "neon", "sve"))]
    gpus = [str(g.get("name", g)) if isinstance(g, dict) else str(g) for g in host.get("gpus") or []]
    parts = [str(host.get("cpu_model", "?")), str(host.get("machine", "")),
             f"{host.get('logical_cores', '?')} cores", ",".join(flags[-3:])] + gpus[:1]
    return " · ".join(p for p in parts if p)
