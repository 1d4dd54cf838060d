"""Sensitivity-aware channel pruning under an accuracy budget, on precision's guard.

The accuracy guard of :mod:`tensorforge.precision.guard` takes any conversion ``convert(keep)``
— "convert every candidate layer except those in ``keep``" — so pruning plugs into it as is:

- the candidate *layers* are the prunable channel groups (named by their first producer node);
- ``convert(keep)`` masks the planned channels of every group not in ``keep`` (masking, not
  slicing: the model keeps its tensor shapes, so precision's sensitivity can compare each
  group's output tensor with the unpruned one, and the masked model computes what the pruned
  one does — channels.py);
- the guard prunes every group; if the budget fails on the held-out data it ranks the groups
  by :func:`~tensorforge.precision.sensitivity.layer_sensitivity` (each group pruned alone),
  then leaves the 1, 2, 3, 4, 6 … most sensitive groups unpruned until the budget holds.

So the groups that hurt accuracy most are pruned least (not at all), the rest at the spec's
ratio. When no such choice meets the budget the guard refuses: no model, and the message says so.

Example::

    result = guarded_prune(model, "channels:30%", held_out, AccuracyBudget(max_top1_drop_pts=1.0))
    result.met, result.unpruned, result.pruned.summary["params_after"]
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import onnx

from ..errors import ConfigError
from ..models.accuracy_data import EvalData
from ..precision.evaluate import AccuracyBudget
from ..precision.fp16 import ensure_node_names
from ..precision.guard import GuardResult, run_guard
from . import PruneResult, prune_model
from .channels import mask_channels, plan_channels
from .spec import PruneSpec, parse_prune

__all__ = ["GuardedPrune", "guarded_prune"]


@dataclass(frozen=True)
class GuardedPrune:
    """``met``: the budget holds with ``pruned`` (None when it cannot); ``unpruned``: the groups left
    whole, most sensitive first; ``guard``: the guard's steps, scores and sensitivity ranking."""

    met: bool
    pruned: PruneResult | None
    unpruned: list[str]
    guard: GuardResult
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"met": self.met, "unpruned": list(self.unpruned), "message": self.message,
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

    def convert(keep: frozenset[str]) -> onnx.ModelProto:
        return mask_channels(named, replace(plan, groups=tuple(g for g in plan.groups if g.producers[0] not in keep)))

    guard = run_guard(named, convert, layers, data, budget, probe_samples=probe_samples, threads=threads)
    final = "" if guard.final is None else _score_text(guard.final, guard.fp32)
    if not guard.met:
        return GuardedPrune(False, None, list(guard.kept_fp32), guard,
                            f"prune={parsed} breaks the accuracy budget ({guard.budget}) even with only the least "
                            f"sensitive of {len(layers)} channel groups pruned ({final}); refused: prune a smaller "
                            "ratio or relax the budget")
    pruned = prune_model(named, parsed, ratios={layer: 0.0 for layer in guard.kept_fp32})
    pruned.summary["unpruned_groups"] = list(guard.kept_fp32)
    return GuardedPrune(True, pruned, list(guard.kept_fp32), guard,
                        f"prune={parsed} within the accuracy budget ({guard.budget}) with {len(guard.kept_fp32)} of "
                        f"{len(layers)} channel groups left unpruned, the most sensitive first ({final})")


def _score_text(got: Any, fp32: Any) -> str:
    if got.top1_pct is not None and fp32.top1_pct is not None:
        return f"top-1 {got.top1_pct:.2f}% vs {fp32.top1_pct:.2f}% unpruned"
    return f"mean cosine {got.cosine_mean:.5f} to the unpruned model"
