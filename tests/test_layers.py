"""The layer order of shared/DESIGN.md holds: no module imports a layer above its own.

Every module under ``tensorforge/`` is parsed with :mod:`ast` (nothing is imported), mapped to
its layer (its first folder), and each of its imports — absolute or relative, at module level
or inside a function — is mapped to the layer it reaches. An import of a higher row fails;
an import of another layer on the same row fails unless :data:`SAME_ROW_ALLOWED` lists it
with its reason. ``tensorforge/__init__.py`` (the public API), ``__main__.py`` and
``errors.py`` sit outside the layers; every layer may import ``errors``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "tensorforge"

# DESIGN.md's table, top row first. Arrows point down this list only.
ROWS: list[tuple[str, ...]] = [
    ("cli",),
    # Not in DESIGN.md's table yet: the public Python API that mirrors every CLI command
    # (issue 14, item 7). The CLI calls it; it drives the jobs below.
    ("api",),
    ("serve", "loadgen", "bench", "report", "scale"),
    ("engine",),
    ("tune",),
    # prune (issue 17): structured/semi-structured pruning, an ONNX -> ONNX transform beside precision.
    ("precision", "graph", "prune"),
    ("backends",),
    ("models",),
    ("core",),
]
ROW = {layer: i for i, layers in enumerate(ROWS) for layer in layers}
OUTSIDE = {"__init__", "__main__", "errors"}      # tensorforge/<name>.py, outside the layers
OPEN_TO_ALL = {"errors"}                          # what any layer may import from outside the layers

# (importer layer, imported layer): why this same-row import is allowed.
SAME_ROW_ALLOWED: dict[tuple[str, str], str] = {
    ("loadgen", "serve"): "the in-process target drives the server's own DynamicBatcher and thread instances "
                          "(so it loads the batching the server runs), and the remote target speaks the "
                          "server's KServe wire datatypes (serve.protocol)",
    ("report", "bench"): "report owns the JSON/CSV/HTML and charts of bench and profile results, so it reads "
                         "bench's result types",
    ("precision", "graph"): "precision keys its calibration cache by graph.io's model hash; both are "
                            "ONNX -> ONNX transforms on one row",
    ("scale", "serve"): "each Ray Serve replica runs the server's own model repository, DynamicBatcher and KServe "
                        "ASGI app (serve.repository, serve.core, serve.http), so Ray serves the same API and batching",
    ("prune", "graph"): "pruning counts MACs/params with graph.analysis; both are ONNX -> ONNX transforms on one row",
    ("prune", "precision"): "the sensitivity-aware ratio search reuses precision's layer sensitivity and accuracy "
                            "guard (prune.guarded), as the issue asks: one sensitivity machinery",
}
# Names of the top package any layer may import: tensorforge/__init__.py loads its API lazily,
# so importing this constant pulls in no layer.
OPEN_NAMES = {"tensorforge.__version__": "the package version, for reports, the server's metadata, cache keys"}


def layer_of_file(path: Path) -> str | None:
    """The layer of a file under tensorforge/ (None for the files outside the layers)."""
    rel = path.relative_to(PACKAGE)
    if len(rel.parts) == 1:
        return None
    return rel.parts[0]


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_in(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute dotted name) of every tensorforge module or name imported by ``source``,
    the text of ``module`` (``is_package``: an ``__init__.py``)."""
    package = module if is_package else module.rpartition(".")[0]
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # ``from .. import models`` names a submodule: keep the imported names
            out += [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return [(line, mod) for line, mod in out if mod == "tensorforge" or mod.startswith("tensorforge.")]


def imported_modules(path: Path) -> list[tuple[int, str]]:
    return imports_in(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py")


def target_layer(dotted: str) -> str:
    """What a dotted name under tensorforge reaches: a layer's folder, ``errors``/``__main__``, or
    ``__init__`` for the top package itself and the public names it defines."""
    parts = dotted.split(".")
    if len(parts) == 1:
        return "__init__"
    if parts[1] in ROW or parts[1] in OUTSIDE:
        return parts[1]
    if (PACKAGE / parts[1]).is_dir():
        return parts[1]                   # a folder that is no layer: reported below
    return "__init__"                     # ``from tensorforge import build``: the public API


def violations() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = layer_of_file(path)
        rel = path.relative_to(PACKAGE.parent)
        if own is None:
            if path.stem not in OUTSIDE:
                found.append(f"{rel}: a module outside every layer; put it in a layer's folder")
            continue
        if own not in ROW:
            found.append(f"{rel}: folder {own!r} is no layer of DESIGN.md's table (add it to ROWS with its row)")
            continue
        for line, dotted in imported_modules(path):
            layer = target_layer(dotted)
            if layer == own or layer in OPEN_TO_ALL or dotted in OPEN_NAMES or (own == "cli" and layer == "__init__"):
                continue
            if layer in OUTSIDE:       # the top package's public API, or __main__: above every layer
                found.append(f"{rel}:{line} imports {dotted}: a layer may not import the top package's API")
            elif layer not in ROW:
                found.append(f"{rel}:{line} imports {dotted}: {layer!r} is no layer")
            elif ROW[layer] < ROW[own]:
                found.append(f"{rel}:{line} imports {dotted}: {own} may not import {layer} (a higher row)")
            elif ROW[layer] == ROW[own] and (own, layer) not in SAME_ROW_ALLOWED:
                found.append(f"{rel}:{line} imports {dotted}: {own} and {layer} share a row; allow it in "
                             "SAME_ROW_ALLOWED with the reason, or move the shared part down")
    return found


def test_imports_only_point_down_the_layers():
    bad = violations()
    assert not bad, "imports against DESIGN.md's layer order:\n" + "\n".join(bad)


def test_every_same_row_allowance_is_used():
    used = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        own = layer_of_file(path)
        used |= {(own, target_layer(d)) for _, d in imported_modules(path)}
    assert not set(SAME_ROW_ALLOWED) - used, f"drop these allowances, nothing needs them: {set(SAME_ROW_ALLOWED) - used}"


def test_core_imports_no_other_layer():
    for path in sorted((PACKAGE / "core").rglob("*.py")):
        for line, dotted in imported_modules(path):
            assert target_layer(dotted) in ("core", "errors"), f"{path.name}:{line} imports {dotted}"


def test_the_checker_resolves_relative_and_function_level_imports():
    src = ("import tensorforge.serve.http\n"
           "def f():\n"
           "    from ..engine.runtime import Engine\n"
           "    from . import sibling\n"
           "    from .. import errors\n")
    found = imports_in(src, "tensorforge.core.probe", is_package=False)
    assert found == [(1, "tensorforge.serve.http"), (3, "tensorforge.engine.runtime.Engine"),
                     (4, "tensorforge.core.sibling"), (5, "tensorforge.errors")]
    assert [target_layer(d) for _, d in found] == ["serve", "engine", "core", "errors"]
    # in a package's __init__, one dot is the package itself
    assert imports_in("from .timing import Timer", "tensorforge.core", is_package=True) == [
        (1, "tensorforge.core.timing.Timer")]
    assert target_layer("tensorforge.build") == "__init__"
