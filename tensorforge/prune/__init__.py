"""Pruning: structured channel removal (a smaller dense graph) and 2:4 / unstructured weight sparsity.

One entry point, :func:`prune_model`, takes a spec (spec.py) and returns a :class:`PruneResult`:
the pruned graph, how to build the reference it must equal (:meth:`PruneResult.reference` — the
same channels *masked* to zero in the original, or the same sparse weights), and a plain-data
summary for the build report. The pieces: groups.py (which channels move together), channels.py
(rank, slice, mask), sparsity.py (2:4, unstructured), runtime_sparsity.py (which backend can use
the zeros), guarded.py (graded per-group ratios under an accuracy budget), finetune.py (torch extra).

Example::

    result = prune_model(model, "channels:30%")
    result.model                  # smaller dense ONNX, checked
    result.reference(model)       # the original with the removed channels zeroed
    result.summary["params_after"]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import onnx

from ..graph.analysis import count_macs, count_params
from .channels import ChannelPlan, mask_channels, plan_channels, prune_channels
from .runtime_sparsity import SparseSupport, openvino_sparse_support
from .sparsity import SparsityStats, is_2_4, sparsify, sparsity_targets
from .spec import PruneSpec, parse_prune

__all__ = ["ChannelPlan", "PruneResult", "PruneSpec", "SparseSupport", "SparsityStats", "is_2_4", "mask_channels",
           "openvino_sparse_support", "parse_prune", "plan_channels", "prune_channels", "prune_model", "sparsify",
           "speed_note"]


@dataclass(frozen=True)
class PruneResult:
    """A pruned ``model``, the ``spec`` it follows, and the ``plan`` (channels) or ``stats`` (sparsity)."""

    spec: PruneSpec
    model: onnx.ModelProto
    summary: dict[str, Any]
    plan: ChannelPlan | None = None
    stats: SparsityStats | None = None
    _weights: dict[str, onnx.TensorProto] = field(default_factory=dict, repr=False)

    def reference(self, original: onnx.ModelProto) -> onnx.ModelProto:
        """``original`` (the unpruned graph, or one with the same initializers, e.g. before a batch
        rewrite) computing what :attr:`model` computes: for channels, the removed channels zeroed in
        the producers' filters and the consumers' weights; for sparsity, the same sparse weights."""
        if self.plan is not None:
            return mask_channels(original, self.plan)
        out = onnx.ModelProto()
        out.CopyFrom(original)
        for t in out.graph.initializer:
            if t.name in self._weights:
                t.CopyFrom(self._weights[t.name])
        return out


def speed_note(spec: "str | PruneSpec", backend: str) -> str:
    """What ``spec`` does to speed on ``backend``, stated without a measurement's claim."""
    spec = parse_prune(spec) or PruneSpec("channels", 0.0)
    if spec.kind == "channels":
        return ("channel pruning removes whole channels: a smaller dense graph that runs faster on every backend "
                "(measure it with benchmarks/prune_speed.py)")
    if backend == "openvino":
        return f"{spec} sparsity: weights zeroed in place; {openvino_sparse_support(spec).reason}"
    gpu = " (TensorRT's sparse tactics on an Ampere+ GPU run this pattern)" if spec.kind == "2:4" else ""
    return (f"{spec} sparsity: weights zeroed in place; {backend}'s kernels are dense, so no speed-up on this "
            f"backend{gpu}")


def prune_model(model: onnx.ModelProto, spec: "str | PruneSpec", *,
                ratios: dict[str, float] | None = None) -> PruneResult:
    """Prune ``model`` as ``spec`` says ("channels:30%", "2:4", "unstructured:70%" or a PruneSpec).
    ``ratios``: per-group channel ratios (keyed by the group's first producer node) overriding the
    spec's ratio, e.g. from a sensitivity search. Raises ConfigError for a bad spec."""
    parsed = parse_prune(spec)
    assert parsed is not None
    summary: dict[str, Any] = {"spec": str(parsed), "kind": parsed.kind,
                               "params_before": count_params(model), "macs_before": count_macs(model)}
    if parsed.kind == "channels":
        plan = plan_channels(model, parsed.ratio, parsed.criterion, ratios)
        pruned = prune_channels(model, plan)
        summary.update(plan.to_dict())
        result = PruneResult(parsed, pruned, summary, plan=plan)
    else:
        pruned, stats = sparsify(model, parsed.kind, parsed.ratio)
        summary.update(stats.to_dict())
        names = set(sparsity_targets(pruned))        # the only initializers sparsify rewrites
        weights = {t.name: t for t in pruned.graph.initializer if t.name in names}
        result = PruneResult(parsed, pruned, summary, stats=stats, _weights=weights)
    summary["params_after"] = count_params(pruned)
    summary["macs_after"] = count_macs(pruned)
    return result

