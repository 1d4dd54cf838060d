"""Sensitivity-aware channel pruning under an accuracy budget: graded per-group ratios on real data.

The candidate *layers* are the prunable channel groups (named by their first producer node).
Every trial *masks* the planned channels (masking, not slicing: the model keeps its tensor
shapes, so precision's sensitivity can compare each group's output tensor with the unpruned
one, and the masked model computes what the pruned one does — channels.py). The search:

1. every group at the spec's ratio R; if the budget holds on the held-out data, done;
2. else rank the groups by :func:`~tensorforge.precision.sensitivity.layer_sensitivity` (each
   group pruned alone at R; top-1 drop, then cosine loss) — precision's machinery, shared;
3. walk down a ladder of ratios (0.75 R, 0.5 R, 0.25 R, 0): at each rung, move the 1, 2, 3, 4,
   6 … most sensitive groups to that rung (the rest stay one rung up) until the budget holds.

So the groups that hurt accuracy most are pruned least (a smaller ratio, or not at all), the
least sensitive at the spec's ratio, with a handful of trials (rungs × log-ish groups). When no
choice short of pruning nothing meets the budget the search refuses: no model, and says so.

Example::

    result = guarded_prune(model, "channels:30%", held_out, AccuracyBudget(max_top1_drop_pts=1.0))
    result.met, result.ratios, result.unpruned, result.pruned.summary["params_after"]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import onnx

from ..errors import ConfigError
from ..models.accuracy_data import EvalData
from ..precision.evaluate import AccuracyBudget, reference_outputs, run_model, score
from ..precision.fp16 import ensure_node_names
from ..precision.guard import GuardResult, fallback_schedule
from ..precision.sensitivity import layer_sensitivity
from . import PruneResult, prune_model
from .channels import mask_channels, plan_channels
from .spec import PruneSpec, parse_prune

__all__ = ["GuardedPrune", "LADDER", "guarded_prune"]

LADDER = (0.75, 0.5, 0.25, 0.0)       # the rungs below the spec's ratio, as fractions of it


@dataclass(frozen=True)
class GuardedPrune:
    """``met``: the budget holds with ``pruned`` (None when it cannot); ``ratios``: each group's ratio
    (first producer -> fraction removed); ``unpruned``: the groups left whole, most sensitive first;
    ``guard``: the trials, scores and sensitivity ranking."""

    met: bool
    pruned: PruneResult | None
    unpruned: list[str]
    guard: GuardResult
    message: str
    ratios: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"met": self.met, "unpruned": list(self.unpruned), "message": self.message, "ratios": dict(self.ratios),
                "final": self.guard.final.to_dict() if self.guard.final else None, "fp32": self.guard.fp32.to_dict(),
                "budget": self.guard.budget, "steps": self.guard.steps,
                "sensitivity": self.guard.sensitivity}


def guarded_prune(model: onnx.ModelProto, spec: "str | PruneSpec", data: EvalData, budget: AccuracyBudget, *,
                  probe_samples: int = 128, threads: int | None = None) -> GuardedPrune:
    """Prune ``model`` as ``spec`` says (channels only), leaving the most sensitive groups whole until the
    accuracy on ``data`` stays within ``budget``."""
    parsed = parse_prune(spec)
    if parsed is None or parsed.kind != "channels":
        raise ConfigError(f"an accuracy budget for pruning needs channel pruning (prune='channels:30%'), got "
                          f"{spec!r}; 2:4 and unstructured sparsity zero weights without a per-layer ratio")
    named = onnx.ModelProto()
    named.CopyFrom(model)
    ensure_node_names(named)               # groups are named by producer node: every node needs a name
    plan = plan_channels(named, parsed.ratio, parsed.criterion)
    layers = [g.producers[0] for g in plan.groups]
    ref = reference_outputs(named.SerializeToString(), data, threads=threads)
    fp32 = score(ref, ref, data.labels)
    steps: list[dict[str, Any]] = []

    def masked(ratios: dict[str, float]) -> onnx.ModelProto:
        return mask_channels(named, plan_channels(named, parsed.ratio, parsed.criterion, ratios))

    def trial(ratios: dict[str, float]) -> tuple[Any, bool, str]:
        got = score(run_model(masked(ratios).SerializeToString(), data, threads=threads), ref, data.labels)
        ok, why = budget.check(got, fp32)
        steps.append({"ratios": dict(ratios), "kept_fp32": sum(1 for r in ratios.values() if r == 0.0),
                      "score": got.to_dict(), "within_budget": ok})
        return got, ok, why

    ratios = {layer: parsed.ratio for layer in layers}
    got, ok, why = trial(ratios)
    ranking: list[Any] = []
    if not ok and layers:
        ranked = layer_sensitivity(named, lambda keep: masked({n: 0.0 for n in keep}), layers, data,
                                   probe_samples=probe_samples, threads=threads, reference=ref)
        ranking, order = ranked.rows, ranked.order
        ok, got, ratios = _descend(order, parsed.ratio, trial, got)
    unpruned = [n for n in (r.layer for r in ranking) if ratios.get(n) == 0.0]
    sensitivity = {r.layer: r.cosine_loss for r in ranking}
    guard = GuardResult(ok, None, unpruned, fp32, got, budget.describe(), why, sensitivity, steps, ranking)
    final = "" if got is None else _score_text(got, fp32)
    if not ok:
        return GuardedPrune(False, None, unpruned, guard,
                            f"prune={parsed} breaks the accuracy budget ({guard.budget}) even with the most sensitive "
                            f"of {len(layers)} channel groups pruned less or not at all ({len(steps)} trials, last: "
                            f"{final}); refused: prune a smaller ratio or relax the budget", ratios)
    pruned = prune_model(named, parsed, ratios=ratios)
    pruned.summary["unpruned_groups"] = unpruned
    pruned.summary["group_ratios"] = dict(ratios)
    lower = sum(1 for r in ratios.values() if 0.0 < r < parsed.ratio)
    return GuardedPrune(True, pruned, unpruned, guard,
                        f"prune={parsed} within the accuracy budget ({guard.budget}): of {len(layers)} channel groups "
                        f"{len(layers) - lower - len(unpruned)} at the full ratio, {lower} at a lower one and "
                        f"{len(unpruned)} left unpruned, the most sensitive pruned least ({final})", ratios)


def _descend(order: list[str], ratio: float, trial: Any, got: Any) -> tuple[bool, Any, dict[str, float]]:
    """Walk the ladder: at each rung, the k most sensitive groups go down to it (k = 1, 2, 3, 4, 6 …),
    the others stay one rung up; the first mix within the budget wins. (met, last score, ratios)."""
    upper = ratio
    ratios = {n: ratio for n in order}
    for rung in LADDER:
        lower = round(ratio * rung, 4)
        for k in fallback_schedule(len(order)):
            if rung == 0.0 and k == len(order):
                break                                  # every group whole is no pruning at all
            ratios = {n: lower if i < k else upper for i, n in enumerate(order)}
            got, ok, _ = trial(ratios)
            if ok:
                return True, got, ratios
        upper = lower
    return False, got, ratios


def _score_text(got: Any, fp32: Any) -> str:
    if got.top1_pct is not None and fp32.top1_pct is not None:
        return f"top-1 {got.top1_pct:.2f}% vs {fp32.top1_pct:.2f}% unpruned"
    return f"mean cosine {got.cosine_mean:.5f} to the unpruned model"
