"""Tests of the built-in model zoo: IO contract, published sizes, ORT execution, determinism."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from tensorforge.errors import ModelError, TensorForgeError
from tensorforge.graph.analysis import count_macs, count_params, op_histogram
from tensorforge.models import zoo

BIG = ["alexnet", "googlenet", "mobilenet_v2", "resnet50", "vgg19"]
TINY = ["tiny_cnn", "tiny_googlenet", "tiny_mlp", "tiny_mobilenet"]
ALL = BIG + TINY
# Sequence models: tests/unit/models/test_bert.py, test_opennmt.py and test_minilm_zoo.py (trained weights).
SEQ = ["all-MiniLM-L6-v2", "bert_base", "bert_tiny", "opennmt_lstm", "opennmt_tiny"]
# Figures that are exact tallies (not rounded in the source) must match exactly.
EXACT_PARAMS = {"alexnet", "googlenet", "mobilenet_v2", "resnet50", "vgg19"}
EXACT_MACS = {"alexnet", "mobilenet_v2", "resnet50"}


@functools.lru_cache(maxsize=None)
def built(name: str) -> onnx.ModelProto:
    """Each network is built once per test session (vgg19 takes seconds)."""
    return zoo.build(name)


@functools.lru_cache(maxsize=None)
def session(name: str) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(
        built(name).SerializeToString(), opts, providers=["CPUExecutionProvider"]
    )


def _inits(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def test_names_and_entries() -> None:
    assert zoo.names() == sorted(ALL + SEQ)
    assert zoo.names(include_tiny=False) == sorted(BIG + ["all-MiniLM-L6-v2", "bert_base", "opennmt_lstm"])
    for name in ALL:
        e = zoo.entry(name)
        assert e.name == name and e.description and e.family
        assert e.tiny == (name in TINY)
        assert (e.published_params is None) == e.tiny
        assert e.input_name == "input" and e.output_name == "logits"
    assert zoo.entry("resnet50").input_shape == (3, 224, 224)
    assert zoo.entry("alexnet").input_shape == (3, 227, 227)
    assert zoo.entry("tiny_mlp").input_shape == (64,)
    with pytest.raises(dataclasses.FrozenInstanceError):
        zoo.entry("resnet50").name = "x"  # type: ignore[misc]  # frozen


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(ModelError, match="resnet50") as info:
        zoo.entry("nope")
    assert "'nope'" in str(info.value) and "tiny_cnn" in str(info.value)
    with pytest.raises(TensorForgeError):
        zoo.build("nope")


def test_bad_opset_and_seed() -> None:
    with pytest.raises(ModelError, match="opset"):
        zoo.build("tiny_cnn", opset=5)
    with pytest.raises(ModelError, match="seed"):
        zoo.build("tiny_cnn", seed=-1)


@pytest.mark.parametrize("name", ALL)
def test_model_contract(name: str) -> None:
    e, m = zoo.entry(name), built(name)
    onnx.checker.check_model(m)
    assert m.graph.name == name and m.producer_name == "tensorforge.zoo"
    assert e.description in m.doc_string
    (inp,) = m.graph.input
    (out,) = m.graph.output
    assert inp.name == e.input_name and out.name == e.output_name
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param == "N"
    assert tuple(d.dim_value for d in dims[1:]) == e.input_shape
    odims = out.type.tensor_type.shape.dim
    assert odims[0].dim_param == "N" and odims[1].dim_value == e.num_classes
    assert {t.data_type for t in m.graph.initializer} == {onnx.TensorProto.FLOAT}
    ops = op_histogram(m)
    assert "Dropout" not in ops and "Softmax" not in ops


@pytest.mark.parametrize("name", ALL)
def test_size_matches_published(name: str) -> None:
    e, m = zoo.entry(name), built(name)
    params, macs = count_params(m), count_macs(m)
    if e.tiny:
        assert 1_000 < params < 200_000
        assert macs > 0
        return
    assert e.published_params and e.published_macs
    assert params == pytest.approx(e.published_params, rel=0.01)
    assert macs == pytest.approx(e.published_macs, rel=0.01)
    if name in EXACT_PARAMS:
        assert params == e.published_params
    if name in EXACT_MACS:
        assert macs == e.published_macs
    assert count_macs(m, batch=3) == 3 * macs


@pytest.mark.parametrize("name", ALL)
def test_runs_in_onnxruntime(name: str) -> None:
    e, s = zoo.entry(name), session(name)
    x = np.random.default_rng(1).standard_normal((2, *e.input_shape), dtype=np.float32)
    (y2,) = s.run([e.output_name], {e.input_name: x})
    (y1,) = s.run([e.output_name], {e.input_name: x[:1]})
    assert y1.shape == (1, e.num_classes) and y2.shape == (2, e.num_classes)
    assert y2.dtype == np.float32
    assert np.isfinite(y2).all()
    assert np.abs(y2).max() < 1e3  # not exploding
    assert y2.std(axis=1).min() > 1e-2  # not degenerate across classes
    assert np.abs(y2[0] - y2[1]).max() > 1e-3  # depends on the input
    np.testing.assert_allclose(y1[0], y2[0], rtol=1e-3, atol=1e-3)  # batch-independent


@pytest.mark.parametrize(
    ("name", "must_have"),
    [
        ("alexnet", {"Conv", "LRN", "MaxPool", "Gemm", "Relu", "Flatten"}),
        ("googlenet", {"Conv", "LRN", "MaxPool", "Concat", "AveragePool", "Gemm"}),
        ("resnet50", {"Conv", "BatchNormalization", "Add", "GlobalAveragePool", "Gemm"}),
        ("vgg19", {"Conv", "MaxPool", "Gemm", "Relu"}),
        ("mobilenet_v2", {"Conv", "BatchNormalization", "Clip", "Add", "Gemm"}),
        ("tiny_cnn", {"Conv", "BatchNormalization", "Relu", "Add", "GlobalAveragePool", "Gemm"}),
        ("tiny_mobilenet", {"Conv", "BatchNormalization", "Clip", "Add", "Gemm"}),
        ("tiny_googlenet", {"Conv", "LRN", "Concat", "MaxPool", "Gemm"}),
        ("tiny_mlp", {"MatMul", "Add", "Gemm", "Relu"}),
    ],
)
def test_op_mix(name: str, must_have: set[str]) -> None:
    assert must_have <= set(op_histogram(built(name)))


def test_op_counts_of_real_networks() -> None:
    h = op_histogram(built("resnet50"))
    assert h["Conv"] == 53 and h["BatchNormalization"] == 53 and h["Add"] == 16
    h = op_histogram(built("vgg19"))
    assert h["Conv"] == 16 and h["Gemm"] == 3 and h["MaxPool"] == 5
    h = op_histogram(built("googlenet"))
    assert h["Concat"] == 9 and h["LRN"] == 2 and h["Conv"] == 57
    assert op_histogram(built("alexnet"))["LRN"] == 2


@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v2", "tiny_cnn", "tiny_mobilenet"])
def test_batchnorm_statistics_are_not_identity(name: str) -> None:
    m = built(name)
    inits = _inits(m)
    bns = [n for n in m.graph.node if n.op_type == "BatchNormalization"]
    assert bns
    for n in bns:
        gamma, beta, mean, var = (inits[i] for i in n.input[1:5])
        assert (var > 0).all()
        assert not np.allclose(gamma, 1) and not np.allclose(beta, 0)
        assert not np.allclose(mean, 0) and not np.allclose(var, 1)


def test_grouped_and_depthwise_convs() -> None:
    def groups(m: onnx.ModelProto) -> list[int]:
        return [
            a.i for n in m.graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "group"
        ]

    assert sorted(set(groups(built("alexnet")))) == [1, 2]
    assert groups(built("alexnet")).count(2) == 3
    inits = _inits(built("tiny_mobilenet"))
    depthwise = [
        n for n in built("tiny_mobilenet").graph.node
        if n.op_type == "Conv" and inits[n.input[1]].shape[1] == 1
    ]
    assert len(depthwise) == 3


@pytest.mark.parametrize("name", TINY)
def test_tiny_is_fast_and_deterministic(name: str) -> None:
    a = zoo.build(name, seed=7).SerializeToString()
    assert len(a) < 100_000      # "fast" by size (it builds in milliseconds), not by a wall-clock bound
    assert zoo.build(name, seed=7).SerializeToString() == a
    other = zoo.build(name, seed=8)
    assert other.SerializeToString() != a
    # Only the weights differ, not the structure.
    assert op_histogram(other) == op_histogram(onnx.load_from_string(a))


def test_full_size_determinism() -> None:
    a = zoo.build("mobilenet_v2", seed=3)
    assert zoo.build("mobilenet_v2", seed=3).SerializeToString() == a.SerializeToString()
    assert built("resnet50").SerializeToString() == zoo.build("resnet50").SerializeToString()
    b = _inits(zoo.build("mobilenet_v2", seed=4))
    assert not np.array_equal(b["classifier.weight"], _inits(a)["classifier.weight"])


@pytest.mark.parametrize("opset", [9, 11, 13, 21])
@pytest.mark.parametrize("name", TINY)
def test_other_opsets_build_and_run(name: str, opset: int) -> None:
    e = zoo.entry(name)
    m = zoo.build(name, opset=opset)
    assert m.opset_import[0].version == opset
    assert count_params(m) == count_params(built(name))  # Clip bounds are not params
    assert count_macs(m) == count_macs(built(name))
    s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((2, *e.input_shape), dtype=np.float32)
    (y,) = s.run(None, {e.input_name: x})
    (ref,) = session(name).run(None, {e.input_name: x})
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
