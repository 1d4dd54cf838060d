"""The joint search's picture: speed against accuracy loss for every candidate, the front, the pick."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

__all__ = ["plot_front"]


def plot_front(optimization: Mapping[str, Any], path: str | os.PathLike[str], *, title: str = "") -> Path:
    """Draw ``optimization`` (a build's ``report.optimization``) to a PNG at ``path``; return the path.

    x: samples/s as a multiple of ONNX Runtime FP32 at its defaults; y: the accuracy loss (top-1
    points, or 1 − cosine without labels). Candidates within the budget are filled, those outside
    hollow; the Pareto front is a line; the pick is a star; the budget, when in points, a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [p for p in optimization["points"] if p["speedup"] is not None and p["loss"] is not None]
    fig, ax = plt.subplots(figsize=(8, 5))
    colors = {"int8": "tab:blue", "bf16": "tab:orange", "fp16": "tab:purple", "fp32": "tab:gray"}
    for p in points:
        color = colors.get(p["precision"].split("+")[0], "tab:green")
        inside = p["within_budget"] is not False
        ax.scatter(p["speedup"], p["loss"], s=40, color=color if inside else "none", edgecolors=color,
                   zorder=3, label=p["precision"])
    front = [p for p in points if f"{p['name']} @{p['backend']}" in set(optimization["front"])]
    front.sort(key=lambda p: p["speedup"])
    if front:
        ax.plot([p["speedup"] for p in front], [p["loss"] for p in front], "-", color="black", lw=1,
                zorder=2, label="Pareto front")
    chosen = optimization["chosen"]
    if chosen.get("speedup") is not None and chosen.get("loss") is not None:
        ax.scatter(chosen["speedup"], chosen["loss"], marker="*", s=260, color="gold", edgecolors="black",
                   zorder=4, label=f"chosen: {chosen['name']} @{chosen['backend']}")
    budget = optimization.get("budget") or ""
    if "points" in budget:
        ax.axhline(float(budget.split("<=")[1].split()[0]), ls="--", color="red", lw=1, label=budget)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=8, loc="best")
    ax.set_xlabel("samples/s × ONNX Runtime FP32 (defaults)")
    ax.set_ylabel(optimization["loss_metric"] + ("" if optimization["accuracy_known"] else " — random inputs"))
    ax.set_title(title + f" · {optimization['objective']} at batch {optimization['batch']}")
    ax.grid(alpha=0.3)
    out = Path(path)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
