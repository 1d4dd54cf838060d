"""Fine-tuning a pruned shipped classifier on its shipped training data (torch extra): real torch
training, ONNX Runtime accuracy before/after on the held-out test split; clear errors naming the flag."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tensorforge.errors import ConfigError
from tensorforge.models import datasets
from tensorforge.prune import prune_model
from tensorforge.prune.finetune import finetune, shipped_training_data

pytest.importorskip("torch")


def test_shipped_training_data_names_the_flag() -> None:
    path, dataset = shipped_training_data("MNIST_CNN")
    assert dataset == "mnist5k" and path == datasets.trained_model("mnist_cnn")
    assert shipped_training_data(path)[1] == "mnist5k" and shipped_training_data("trained:mnist_cnn")[0] == path
    with pytest.raises(ConfigError, match="--finetune-steps.*'tiny_cnn' has none"):
        shipped_training_data("tiny_cnn", flag="--finetune-steps")


def test_finetune_recovers_accuracy_and_keeps_the_pruned_graph() -> None:
    model = onnx.load(datasets.trained_model("mnist_cnn"))
    pruned = prune_model(model, "channels:50%").model
    with pytest.raises(ConfigError, match="--finetune-steps"):
        finetune(pruned, "mnist5k", 0, flag="--finetune-steps")
    result = finetune(pruned, "mnist5k", 12, seed=0)
    onnx.checker.check_model(result.model)
    before = {t.name: numpy_helper.to_array(t) for t in pruned.graph.initializer}
    after = {t.name: numpy_helper.to_array(t) for t in result.model.graph.initializer}
    assert {n: v.shape for n, v in before.items()} == {n: v.shape for n, v in after.items()}
    assert any(not np.array_equal(before[n], after[n]) for n in before)       # the weights were trained
    assert [n.op_type for n in result.model.graph.node] == [n.op_type for n in pruned.graph.node]
    # 50% of the channels gone leaves it near chance; a dozen steps on the train split win much of it back
    assert result.after_top1_pct > result.before_top1_pct + 10.0
    assert result.to_dict()["split"] == {"train_on": "train", "measured_on": "test"}
