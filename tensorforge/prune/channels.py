"""Structured channel pruning: rank each prunable channel group's channels, slice the weakest away.

For each group of groups.py that is not frozen, every channel gets a score from its producers'
filters — the ``l1`` or ``l2`` norm of each output filter, each producer's scores divided by its
largest so producers of different scale count alike, summed over the producers of a merged
(residual) group — or, with ``bn``, the |gamma| of the BatchNormalizations in the group. The
``round(ratio × channels)`` lowest-scoring channels go (at least one channel stays).

:func:`prune_channels` slices every edit of the group (a smaller dense graph: fewer filters, fewer
consumer input channels, shorter BN params and biases, depthwise ``group`` attributes updated).
:func:`mask_channels` zeroes the same channels in the original instead — the producers' filters and
biases and the consumers' input weights — which computes exactly what the pruned graph computes:
a removed channel only ever reaches a consumer through those zeroed weights. It is the reference
the build verifies the pruned graph against. Behind a Concat a group's channels sit at an offset in
the consumer's weight (groups.py): every group's removals are gathered per weight and applied at once.

Example::

    plan = plan_channels(model, 0.3)
    pruned, masked = prune_channels(model, plan), mask_channels(model, plan)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from .groups import ChannelGroup, channel_groups

__all__ = ["ChannelPlan", "GroupPlan", "mask_channels", "plan_channels", "prune_channels"]


@dataclass(frozen=True)
class GroupPlan:
    """One group's decision: its producers, width and the channel indices kept (ascending)."""

    producers: tuple[str, ...]
    channels: int
    keep: tuple[int, ...]
    group: ChannelGroup

    @property
    def removed(self) -> int:
        return self.channels - len(self.keep)


@dataclass(frozen=True)
class ChannelPlan:
    """What :func:`prune_channels` removes: one :class:`GroupPlan` per pruned group, and the frozen
    groups with why each stays whole."""

    ratio: float
    criterion: str
    groups: tuple[GroupPlan, ...]
    frozen: tuple[tuple[tuple[str, ...], str], ...]

    def to_dict(self) -> dict[str, object]:
        return {"ratio": self.ratio, "criterion": self.criterion,
                "channels_before": sum(g.channels for g in self.groups),
                "channels_after": sum(len(g.keep) for g in self.groups),
                "groups": [{"producers": list(g.producers), "channels": g.channels, "kept": len(g.keep)}
                           for g in self.groups],
                "frozen": [{"producers": list(p), "why": why} for p, why in self.frozen]}


def _norms(weight: np.ndarray, axis: int, criterion: str) -> np.ndarray:
    flat = np.moveaxis(np.abs(weight.astype(np.float64)), axis, 0).reshape(weight.shape[axis], -1)
    return np.sqrt((flat ** 2).sum(axis=1)) if criterion == "l2" else flat.sum(axis=1)


def _scores(group: ChannelGroup, values: dict[str, np.ndarray], criterion: str) -> np.ndarray:
    """One score per channel (higher = more important), summed over the group's producers."""
    role = "bn_scale" if criterion == "bn" and any(e.role == "bn_scale" for e in group.edits) else "out"
    total = np.zeros(group.channels)
    for e in group.edits:
        if e.role != role:
            continue
        value = np.take(values[e.init], np.arange(e.offset, e.offset + group.channels), axis=e.axis)
        s = np.abs(value.astype(np.float64)) if role == "bn_scale" else _norms(value, e.axis, criterion)
        peak = s.max()
        total += s / peak if peak > 0 else s
    return total


def plan_channels(model: onnx.ModelProto, ratio: float, criterion: str = "l1",
                  ratios: dict[str, float] | None = None) -> ChannelPlan:
    """Which channels of ``model`` to remove: ``ratio`` of each prunable group (``ratios`` overrides it
    per group, keyed by the group's first producer node name)."""
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    plans, frozen = [], []
    for group in channel_groups(model):
        producers = tuple(group.producers)
        if group.frozen is not None:
            frozen.append((producers, group.frozen))
            continue
        r = (ratios or {}).get(producers[0], ratio)
        drop = min(int(round(r * group.channels)), group.channels - 1)
        if drop <= 0:
            continue
        order = np.argsort(-_scores(group, values, criterion), kind="stable")
        keep = tuple(sorted(int(i) for i in order[:group.channels - drop]))
        plans.append(GroupPlan(producers, group.channels, keep, group))
    return ChannelPlan(ratio, criterion, tuple(plans), tuple(frozen))


def _dropped(plan: ChannelPlan, masked: bool) -> dict[str, dict[int, set[int]]]:
    """Per initializer and axis, the indices to remove (a Concat's consumer gathers several groups'
    channels, each at its offset, in one weight: all are removed at once, in original coordinates)."""
    out: dict[str, dict[int, set[int]]] = {}
    for gp in plan.groups:
        dropped = np.setdiff1d(np.arange(gp.channels), np.asarray(gp.keep, dtype=np.int64))
        for e in gp.group.edits:
            if masked and e.role not in ("out", "bias", "in"):
                continue                              # per-channel params may stay: the channel is cut off
            out.setdefault(e.init, {}).setdefault(e.axis, set()).update(int(i) + e.offset for i in dropped)
    return out


def _rewrite(model: onnx.ModelProto, plan: ChannelPlan, masked: bool) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    inits = {t.name: t for t in out.graph.initializer}
    for name, axes in _dropped(plan, masked).items():
        value = numpy_helper.to_array(inits[name]).copy()
        for axis, drop in axes.items():
            index = np.asarray(sorted(drop), dtype=np.int64)
            if masked:
                where: list[slice | np.ndarray] = [slice(None)] * value.ndim
                where[axis] = index
                value[tuple(where)] = 0
            else:
                value = np.delete(value, index, axis=axis)
        inits[name].CopyFrom(numpy_helper.from_array(value, name))
    if not masked:
        depthwise = {n for gp in plan.groups for n in gp.group.depthwise}
        for node in out.graph.node:
            if node.name in depthwise:                # depthwise: one group per (kept) channel
                for a in node.attribute:
                    if a.name == "group":
                        a.i = int(numpy_helper.to_array(inits[node.input[1]]).shape[0])
        del out.graph.value_info[:]                   # old channel counts: re-inferred below
        out = onnx.shape_inference.infer_shapes(out, strict_mode=True)
        onnx.checker.check_model(out)
    return out


def prune_channels(model: onnx.ModelProto, plan: ChannelPlan) -> onnx.ModelProto:
    """``model`` with the channels of ``plan`` removed: a smaller dense graph, checked and shape-inferred."""
    return _rewrite(model, plan, masked=False)


def mask_channels(model: onnx.ModelProto, plan: ChannelPlan) -> onnx.ModelProto:
    """``model`` with the channels of ``plan`` zeroed in place: the reference a pruned graph must equal."""
    return _rewrite(model, plan, masked=True)
