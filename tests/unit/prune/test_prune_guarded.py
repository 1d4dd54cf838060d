"""Sensitivity-aware pruning under an accuracy budget (precision's guard), on the shipped mnist_cnn."""

from __future__ import annotations

import pytest

from tensorforge.engine.source import resolve_source
from tensorforge.errors import BuildError, ConfigError
from tensorforge.models.accuracy_data import accuracy_data
from tensorforge.precision.evaluate import AccuracyBudget
from tensorforge.prune.guarded import guarded_prune


@pytest.fixture(scope="module")
def mnist():
    model = resolve_source("mnist_cnn").model
    return model, accuracy_data("mnist5k", model).validation.head(256)


def test_guard_refuses_a_ratio_that_breaks_the_budget(mnist) -> None:
    model, data = mnist
    result = guarded_prune(model, "channels:70%", data, AccuracyBudget(max_top1_drop_pts=1.0), probe_samples=64)
    assert not result.met and result.pruned is None
    assert "refused" in result.message


def test_guard_leaves_the_most_sensitive_groups_whole(mnist) -> None:
    model, data = mnist
    result = guarded_prune(model, "channels:30%", data, AccuracyBudget(max_top1_drop_pts=40.0), probe_samples=64)
    assert result.met and result.pruned is not None
    steps = result.guard.steps
    assert steps[-1]["within_budget"]
    final = result.guard.final
    assert final is not None and result.guard.fp32.top1_pct - final.top1_pct <= 40.0
    if result.unpruned:                  # left whole: the highest-ranked (most sensitive) groups
        ranking = [r.layer for r in result.guard.ranking]
        assert result.unpruned == ranking[:len(result.unpruned)]
    assert result.pruned.summary["params_after"] < result.pruned.summary["params_before"]


def test_guard_needs_channel_pruning(mnist) -> None:
    model, data = mnist
    with pytest.raises(ConfigError):
        guarded_prune(model, "2:4", data, AccuracyBudget(max_top1_drop_pts=1.0))


def test_build_refuses_outside_the_budget() -> None:
    from tensorforge.engine.build import BuildOptions, build

    with pytest.raises(BuildError, match="refused"):
        build("mnist_cnn", options=BuildOptions(prune="channels:70%", eval_data="mnist5k", accuracy_budget=1.0))


def test_graded_ratios_follow_the_sensitivity_ranking(mnist) -> None:
    """A budget the full ratio breaks: the most sensitive groups get the lower rungs of the ladder."""
    model, data = mnist
    result = guarded_prune(model, "channels:50%", data, AccuracyBudget(max_top1_drop_pts=30.0), probe_samples=64)
    steps = result.guard.steps
    assert not steps[0]["within_budget"]            # the uniform 50% breaks it, so the search ran
    ranking = [r.layer for r in result.guard.ranking]
    assert sorted(ranking) == sorted(result.ratios)
    ratios = [result.ratios[n] for n in ranking]    # most sensitive first: never pruned more than a later one
    assert ratios == sorted(ratios)
    assert all(r in {0.5 * f for f in (1.0, 0.75, 0.5, 0.25, 0.0)} for r in ratios)
    if result.met:
        assert result.pruned is not None and result.pruned.summary["group_ratios"] == result.ratios
        final = result.guard.final
        assert final is not None and result.guard.fp32.top1_pct - final.top1_pct <= 30.0
        assert steps[-1]["within_budget"] and not any(s["within_budget"] for s in steps[:-1])
