"""Tests of the OpenNMT-style LSTM translator: contract, size, greedy Loop vs onnx.reference."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx.reference import ReferenceEvaluator

from tensorforge.graph.analysis import count_params, op_histogram
from tensorforge.models import opennmt, zoo


def _run(m: onnx.ModelProto, src: np.ndarray) -> np.ndarray:
    s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, {"src": src})[0]


def test_tiny_contract_and_op_mix() -> None:
    m = zoo.build("opennmt_tiny")
    e = zoo.entry("opennmt_tiny")
    assert e.tiny and e.inputs == ("src",) and e.outputs == ("tokens",)
    (inp,), (out,) = m.graph.input, m.graph.output
    assert inp.name == "src" and inp.type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert [d.dim_param for d in inp.type.tensor_type.shape.dim] == ["N", "S"]
    assert out.name == "tokens" and out.type.tensor_type.elem_type == onnx.TensorProto.INT64
    h = op_histogram(m)  # subgraphs included: 2 encoder + 2 decoder LSTMs
    assert h["LSTM"] == 4 and h["Loop"] == 1 and h["ArgMax"] == 1 and h["Softmax"] == 1
    assert count_params(m) == opennmt.OPENNMT_TINY.weight_count()


def test_tiny_greedy_decoding_matches_onnx_reference() -> None:
    m = zoo.build("opennmt_tiny", seed=1)
    src = np.random.default_rng(0).integers(4, 100, size=(3, 7), dtype=np.int64)
    got = _run(m, src)
    (ref,) = ReferenceEvaluator(m).run(None, {"src": src})
    assert got.dtype == np.int64 and got.shape[0] == 3
    assert 1 <= got.shape[1] <= 14  # at most 2 * S steps
    np.testing.assert_array_equal(got, ref)
    assert ((0 <= got) & (got < 100)).all()
    # Rows are independent: decoding one row alone gives its row of the batch (up to the
    # point where the batch ran longer because another row had not finished).
    alone = _run(m, src[1:2])
    k = min(alone.shape[1], got.shape[1])
    np.testing.assert_array_equal(alone[0, :k], got[1, :k])


def test_decode_length_is_capped() -> None:
    m = zoo.build("opennmt_tiny", seed=2)
    src = np.random.default_rng(1).integers(4, 100, size=(2, 15), dtype=np.int64)
    assert _run(m, src).shape[1] <= opennmt.OPENNMT_TINY.max_decode


def test_full_size_by_formula() -> None:
    cfg = opennmt.OPENNMT_WMT
    # 2 x 25.0M embeddings + 25.05M generator + LSTMs (2.0M, 2.0M encoder; 3.0M, 2.0M decoder)
    # + attention (0.75M).
    assert cfg.weight_count() == 84_822_004
    assert zoo.entry("opennmt_lstm").published_params == cfg.weight_count()


@pytest.mark.slow
def test_full_size_builds() -> None:
    m = zoo.build("opennmt_lstm")
    assert count_params(m) == opennmt.OPENNMT_WMT.weight_count()
