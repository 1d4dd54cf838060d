"""Tests of the BERT zoo entries: IO contract, published size, MACs, onnx.reference agreement."""

from __future__ import annotations

import functools

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

from tensorforge.errors import ModelError
from tensorforge.graph.analysis import count_macs, count_params, op_histogram
from tensorforge.models import bert, zoo

INPUTS = ["input_ids", "attention_mask", "token_type_ids"]


@functools.lru_cache(maxsize=None)
def built(name: str) -> onnx.ModelProto:
    return zoo.build(name)


def _ort(m: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])


def _float_scalars(m: onnx.ModelProto) -> int:
    return sum(1 for t in m.graph.initializer if not t.dims and t.data_type == onnx.TensorProto.FLOAT)


def _fixed(m: onnx.ModelProto, seq: int) -> onnx.ModelProto:
    """A copy with S bound to ``seq`` (count_macs binds only the batch)."""
    out = onnx.ModelProto()
    out.CopyFrom(m)
    for v in [*out.graph.input, *out.graph.output]:
        for d in v.type.tensor_type.shape.dim:
            if d.dim_param == "S":
                d.dim_value = seq
    return out


@pytest.mark.parametrize("name", ["bert_tiny", "bert_base"])
def test_contract(name: str) -> None:
    e, m = zoo.entry(name), built(name)
    assert e.inputs == tuple(INPUTS) and e.outputs == ("last_hidden_state", "pooler_output")
    assert [i.name for i in m.graph.input] == INPUTS
    for i in m.graph.input:
        t = i.type.tensor_type
        assert t.elem_type == onnx.TensorProto.INT64
        assert [d.dim_param for d in t.shape.dim] == ["N", "S"]
    (hid, pool) = m.graph.output
    assert [d.dim_param or d.dim_value for d in hid.type.tensor_type.shape.dim] == ["N", "S", e.num_classes]
    assert [d.dim_param or d.dim_value for d in pool.type.tensor_type.shape.dim] == ["N", e.num_classes]
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta[bert.MAX_SEQUENCE_KEY] == str(e.max_sequence)
    h = op_histogram(m)
    layers = 12 if name == "bert_base" else 2
    assert h["LayerNormalization"] == 2 * layers + 1
    assert h["Softmax"] == layers and h["Erf"] == layers and h["Tanh"] == 1
    assert h["Gather"] >= 3


def test_bert_base_size_matches_published() -> None:
    m = built("bert_base")
    weights = count_params(m) - _float_scalars(m)  # a few shared 0-d constants are not weights
    assert weights == bert.BERT_BASE.weight_count() == 109_482_240 == zoo.entry("bert_base").published_params
    assert weights == pytest.approx(110e6, rel=0.01)  # the paper's "110M"
    # MACs per token at S=128: 85.0M weight MatMuls + 2.4M attention; state the range.
    per_token = (count_macs(_fixed(m, 128)) - 768 * 768) / 128  # minus the pooler (once per sequence)
    assert per_token == bert.BERT_BASE.macs_per_token(128) == zoo.entry("bert_base").published_macs
    assert 85e6 <= per_token <= 90e6
    assert count_macs(_fixed(m, 128), batch=2) == 2 * count_macs(_fixed(m, 128))


def test_bert_tiny_size() -> None:
    m = built("bert_tiny")
    assert count_params(m) - _float_scalars(m) == bert.BERT_TINY.weight_count()
    assert 100_000 < bert.BERT_TINY.weight_count() < 1_000_000
    assert len(m.SerializeToString()) < 3_000_000


def test_tiny_matches_onnx_reference_and_masks_padding() -> None:
    m = built("bert_tiny")
    feeds = bert.bert_inputs(2, 9, bert.BERT_TINY.vocab, seed=3, lengths=[9, 5])
    hid, pooled = _ort(m).run(None, feeds)
    ref_hid, ref_pooled = ReferenceEvaluator(m).run(None, feeds)
    assert hid.shape == (2, 9, 128) and pooled.shape == (2, 128)
    np.testing.assert_allclose(hid, ref_hid, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(pooled, ref_pooled, rtol=1e-4, atol=1e-4)
    assert np.isfinite(hid).all() and 0.3 < hid.std() < 3  # LayerNorm keeps it O(1)
    assert np.abs(pooled).max() < 1 and pooled.std() > 1e-3
    # Row 1 has 5 real tokens: padding it further (any ids there) leaves those 5 unchanged.
    row = {k: v[1:2, :5] for k, v in feeds.items()}
    (alone, _) = _ort(m).run(None, row)
    np.testing.assert_allclose(alone[0], hid[1, :5], rtol=1e-4, atol=1e-4)


def test_dynamic_batch_and_sequence() -> None:
    s = _ort(built("bert_tiny"))
    for n, seq in [(1, 1), (3, 17), (2, 128)]:
        hid, pooled = s.run(None, bert.bert_inputs(n, seq, 1000, seed=n))
        assert hid.shape == (n, seq, 128) and pooled.shape == (n, 128)


def test_deterministic_and_opset_floor() -> None:
    a = zoo.build("bert_tiny", seed=5).SerializeToString()
    assert zoo.build("bert_tiny", seed=5).SerializeToString() == a
    assert zoo.build("bert_tiny", seed=6).SerializeToString() != a
    assert zoo.build("bert_tiny", opset=21).opset_import[0].version == 21
    with pytest.raises(ModelError, match="opset >= 17"):
        zoo.build("bert_tiny", opset=13)


def test_weights_are_bert_like() -> None:
    inits = {t.name: numpy_helper.to_array(t) for t in built("bert_tiny").graph.initializer}
    w = inits["encoder.layer.0.attention.query.weight"]
    assert w.shape == (128, 128) and 0.015 < w.std() < 0.025
    g = inits["encoder.layer.1.output.LayerNorm.weight"]
    assert not np.allclose(g, 1) and (0.9 <= g).all() and (g <= 1.1).all()
