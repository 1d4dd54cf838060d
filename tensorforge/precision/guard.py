"""The accuracy guard: fall back the most sensitive layers to FP32 until the budget holds.

Given a conversion ``convert(keep_fp32) -> model`` (INT8, FP16 or BF16 with some layers
left in FP32), the candidate layers, held-out data and a budget:

1. convert everything; if the budget holds on the held-out data, done;
2. otherwise rank the layers with :func:`.sensitivity.layer_sensitivity` on a small probe
   (the first ``probe_samples`` held-out samples): each layer converted alone (all other
   candidates kept FP32), ordered by top-1 drop when the data has labels, then ``1 − mean
   cosine`` of the output against FP32, then the error of the layer's own output — the
   same ranking ``tensorforge sensitivity`` prints;
3. keep the ``k`` most sensitive layers in FP32 for ``k`` = 1, 2, 3, 4, 6, 8, 12, 16 …
   (about ×1.5 a step) and re-score on the whole held-out set; the first ``k`` within
   budget wins;
4. if none is — or only keeping every layer in FP32 meets it — the guard says so and
   returns no model: the caller ships FP32, never a model outside the budget.

Example::

    result = run_guard(fp32, lambda keep: quantize_qdq(fp32, ranges, Int8Options(keep_nodes=tuple(keep)))[0],
                       compute_layers(fp32), held_out, AccuracyBudget(max_top1_drop_pts=1.0))
    result.met, result.kept_fp32, result.final
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import onnx

from ..models.accuracy_data import EvalData
from .evaluate import AccuracyBudget, Score, reference_outputs, run_model, score
from .sensitivity import LayerSensitivity, layer_sensitivity

__all__ = ["GuardResult", "run_guard", "fallback_schedule"]

Convert = Callable[[frozenset[str]], onnx.ModelProto]


@dataclass(frozen=True)
class GuardResult:
    met: bool
    model: onnx.ModelProto | None = field(repr=False)
    kept_fp32: list[str]
    fp32: Score
    final: Score | None
    budget: str
    message: str
    sensitivity: dict[str, float] = field(default_factory=dict)     # layer -> 1 - cosine when alone converted
    steps: list[dict[str, Any]] = field(default_factory=list)       # each tried k and its score
    ranking: list[LayerSensitivity] = field(default_factory=list)   # the full rows, most sensitive first

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("model")
        d["ranking"] = [r.to_dict() for r in self.ranking]
        return d


def fallback_schedule(n: int) -> list[int]:
    """1, 2, 3, 4, 6, 8, 12, 16, 24 … up to and including ``n``."""
    out, k = [], 1
    while k < n:
        out.append(k)
        k = max(k + 1, int(k * 1.5))
    return out + [n] if n else []


def run_guard(fp32_model: onnx.ModelProto, convert: Convert, layers: list[str], data: EvalData,
              budget: AccuracyBudget, *, probe_samples: int = 128, threads: int | None = None) -> GuardResult:
    ref = reference_outputs(fp32_model.SerializeToString(), data, threads=threads)
    fp32_score = score(ref, ref, data.labels)
    steps: list[dict[str, Any]] = []

    def trial(keep: frozenset[str]) -> tuple[onnx.ModelProto, Score, bool, str]:
        model = convert(keep)
        got = score(run_model(model.SerializeToString(), data, threads=threads), ref, data.labels)
        ok, why = budget.check(got, fp32_score)
        steps.append({"kept_fp32": len(keep), "score": got.to_dict(), "within_budget": ok})
        return model, got, ok, why

    model, got, ok, why = trial(frozenset())
    if ok:
        return GuardResult(True, model, [], fp32_score, got, budget.describe(),
                           f"within budget with no fallback: {why}", steps=steps)
    ranked = layer_sensitivity(fp32_model, convert, layers, data, probe_samples=probe_samples, threads=threads,
                               reference=ref)
    order, sensitivity = ranked.order, ranked.cosine_loss
    for k in fallback_schedule(len(order)):
        keep = frozenset(order[:k])
        if k == len(order):
            break       # every layer in FP32 is no conversion at all
        model, got, ok, why = trial(keep)
        if ok:
            return GuardResult(True, model, order[:k], fp32_score, got, budget.describe(),
                               f"within budget with {k} of {len(order)} layers kept in FP32: {why}",
                               sensitivity=sensitivity, steps=steps, ranking=ranked.rows)
    last = steps[-1]["score"] if steps else None
    return GuardResult(False, None, list(order), fp32_score, Score(**last) if last else None, budget.describe(),
                       f"the budget ({budget.describe()}) cannot be met short of keeping every layer in FP32 "
                       f"(with the most layers in FP32 tried: {why}); keeping FP32",
                       sensitivity=sensitivity, steps=steps, ranking=ranked.rows)
