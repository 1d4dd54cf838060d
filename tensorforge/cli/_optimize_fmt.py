"""The build report's part for ``--optimize``: every candidate's accuracy and speed, the front, the pick."""

from __future__ import annotations

from typing import Any

from ._fmt import console

_STYLES = {"chosen": "bold green", "front": "green", "outside budget": "red", "failed": "red",
           "not timed": "dim", "not scored": "dim"}


def _accuracy(point: dict[str, Any]) -> str:
    score = point.get("score")
    if not score:
        return "—"
    if score.get("top1_pct") is not None:
        return f"top-1 {score['top1_pct']:.2f}%"
    return f"cos {score['cosine_mean']:.5f}"


def _order(point: dict[str, Any]) -> tuple[int, float]:
    rank = 0 if point["status"] == "chosen" else 1 if point["speedup"] is not None else 2
    return rank, -(point["speedup"] or 0.0)


def print_optimization(report: Any) -> None:
    from rich.table import Table

    opt = report.optimization.to_dict()      # printed from its JSON, the schema --report writes
    known = opt["accuracy_known"]
    title = (f"optimize for {opt['objective']} at batch {opt['batch']}: "
             + (f"accuracy on {opt['accuracy_data']}, budget {opt['budget']}" if known
                else "accuracy unknown (no held-out data): fidelity on random inputs"))
    table = Table(title=title)
    for col, justify in (("candidate", "left"), ("backend", "left"), ("computes in", "left"),
                         ("accuracy", "right"), (opt["loss_metric"], "right"), ("× ORT FP32", "right"),
                         ("status", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    unscored = [p for p in opt["points"] if p["status"] == "not scored"]
    for p in sorted((p for p in opt["points"] if p["status"] != "not scored"), key=_order):
        loss = "—" if p["loss"] is None else (f"{p['loss']:+.2f}" if known else f"{p['loss']:.1e}")
        speed = "—" if p["speedup"] is None else f"{p['speedup']:.2f}" + (
            f" ±{p['noise_pct']:.0f}%" if p.get("noise_pct") else "")
        status = p["status"] + (f": {p['note']}" if p["note"] and p["status"] not in ("chosen", "front") else "")
        pruned = p.get("pruned")
        computes = p["precision"] + (f", pruned {pruned:.0%}" if pruned else "")
        table.add_row(p["name"] + (" ✂" if pruned else ""), p["backend"], computes, _accuracy(p), loss, speed, status,
                      style=_STYLES.get(p["status"]) or ("cyan" if pruned else None))
    console.print(table)
    if any(p.get("pruned") for p in opt["points"]):
        console.print("  ✂ pruned: channels removed (FP32 graph), scored and timed for the front only, never picked; "
                      "ship one with --prune channels:R (verified against the original with those channels masked)")
    if unscored:
        console.print(f"  not scored: {len(unscored)} more (other calibration methods on "
                      f"{', '.join(sorted({p['backend'] for p in unscored}))}; the most accurate method of each graph "
                      "on onnxruntime was scored there)")
    tuned = opt.get("timed_candidates")
    if tuned:
        console.print(f"  timing: {tuned}")
    chosen = opt["chosen"]
    console.print(f"pareto front (fastest first): {', '.join(opt['front']) or '—'}")
    what = (f"{opt['loss_metric']} {chosen['loss']:+.2f} within {opt['budget']}" if known and chosen["loss"] is not None
            else "accuracy unknown")
    speed = "—" if chosen["speedup"] is None else f"×{chosen['speedup']:.2f}"
    console.print(f"chosen: [bold]{chosen['name']}[/bold] on {chosen['backend']} ({chosen['precision']}), {speed} vs "
                  f"ONNX Runtime FP32 at its defaults; {what}")
    if opt.get("kept_fp32_layers"):
        console.print(f"  kept in FP32: {', '.join(opt['kept_fp32_layers'])}")
    cal = opt.get("calibration")
    if cal:
        console.print(f"  calibration: {cal['samples']} samples from {cal['source']}, one pass "
                      f"({cal['seconds']:.1f} s), methods {', '.join(cal['methods'])}")
    for note in opt.get("notes", []):
        console.print(f"  note: {note}")
