"""Transformer fusions: ONNX Runtime's optimizer (contrib ops) and onnxscript's rules (standard ops),
on hand-written patterns, bert_tiny and the real all-MiniLM-L6-v2 weights."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest

from tensorforge.backends.reference import reference_session
from tensorforge.core.reference import compare
from tensorforge.core.tolerances import TOLERANCES
from tensorforge.graph.passes import OrtTransformerFusion, PortableTransformerFusion
from tensorforge.graph.pipelines import run_pipeline
from tensorforge.graph.transformer import looks_like_transformer, pipeline_for
from tensorforge.models import minilm, sentences, zoo
from tensorforge.tune.space import pipeline_variants

from test_passes_helpers import apply, check_equivalent, op_types, parse

TOL = TOLERANCES["fp32-kernels"]

LAYER_NORM = """
<ir_version: 8, opset_import: ["" : OPSET]>
g (float[2, 3, 4] x) => (float[2, 3, 4] y) <float[4] s = {1., 0.5, 2., -1.}, float[4] b = {0.1, 0.2, 0.3, 0.4},
                                            float eps = {1e-5}, float two = {2.}, int64[1] ax = {-1}> {
    mean = ReduceMean <keepdims = 1> (x, ax)
    d = Sub(x, mean)
    dd = Pow(d, two)
    var = ReduceMean <keepdims = 1> (dd, ax)
    ve = Add(var, eps)
    sd = Sqrt(ve)
    n = Div(d, sd)
    sc = Mul(n, s)
    y = Add(sc, b)
}
"""

GELU = """
<ir_version: 9, opset_import: ["" : OPSET]>
g (float[2, 8] x) => (float[2, 8] y) <float r2 = {1.4142135623730951}, float one = {1.}, float half = {0.5}> {
    t = Div(x, r2)
    e = Erf(t)
    p = Add(e, one)
    m = Mul(x, p)
    y = Mul(m, half)
}
"""


def test_portable_fuses_layer_norm_with_bias():
    model = parse(LAYER_NORM.replace("OPSET", "18"))
    out, result = apply(PortableTransformerFusion, model)
    assert result.changes == {"layer_norm": 1, "layer_norm_bias": 1}
    assert op_types(out) == {"LayerNormalization": 1}
    check_equivalent(model, out)


def test_portable_fuses_gelu_to_the_standard_op_at_opset_20():
    model = parse(GELU.replace("OPSET", "20"))
    out, result = apply(PortableTransformerFusion, model)
    assert result.changes == {"gelu": 1}
    assert op_types(out) == {"Gelu": 1} and all(n.domain == "" for n in out.graph.node)
    check_equivalent(model, out)


def test_portable_leaves_gelu_below_opset_20():
    model = parse(GELU.replace("OPSET", "17"))
    out, result = apply(PortableTransformerFusion, model)
    assert not result.modified and op_types(out) == op_types(model)


def test_ort_fusion_skips_graphs_without_attention():
    model = zoo.build("tiny_mlp")
    out, result = apply(OrtTransformerFusion, model)
    assert not result.modified and op_types(out) == op_types(model)


def _contrib(model: onnx.ModelProto) -> Counter[str]:
    return Counter(n.op_type for n in model.graph.node if n.domain == "com.microsoft")


def _reference(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return list(reference_session(model.SerializeToString()).run(feeds))


def _fused_matches(model: onnx.ModelProto, fused: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> float:
    from tensorforge.backends.base import SessionConfig
    from tensorforge.backends.registry import get_backend

    session = get_backend("onnxruntime").create_session(fused.SerializeToString(), SessionConfig("cpu"))
    result = compare(list(session.run(feeds)), _reference(model, feeds))
    assert result.within(TOL), result.max_norm
    return result.max_norm


def _bert_feeds(vocab: int, batch: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    mask = np.ones((batch, 16), np.int64)
    mask[1, 10:] = 0                                    # padding must be masked out as in the original
    return {"input_ids": rng.integers(0, vocab, (batch, 16)), "attention_mask": mask,
            "token_type_ids": np.zeros((batch, 16), np.int64)}


def test_bert_tiny_ort_pipeline_fuses_and_matches():
    model = zoo.build("bert_tiny")
    fused, reports = run_pipeline(model, "transformer-ort")
    changes = next(r.changes for r in reports if r.name == "transformer_ort_fusion")
    # the mask is built as a Hugging Face export builds it (Unsqueeze, Unsqueeze, Cast, Sub, Mul), which ONNX
    # Runtime's matcher knows: every layer's attention fuses, reading the raw [N, S] mask
    assert changes == {"Attention": 2, "SkipLayerNormalization": 5, "BiasGelu": 2}
    assert _contrib(fused) == {"Attention": 2, "SkipLayerNormalization": 5, "BiasGelu": 2}
    _fused_matches(model, fused, _bert_feeds(1000))         # row 1 is padded: the fused mask must hide it


def test_bert_tiny_portable_pipeline_stays_standard_and_matches():
    model = zoo.build("bert_tiny")
    fused, _ = run_pipeline(model, "transformer-portable")
    assert not _contrib(fused) and op_types(fused)["LayerNormalization"] == 5
    _fused_matches(model, fused, _bert_feeds(1000))


def test_pipeline_choice_per_backend():
    bert, cnn = zoo.build("bert_tiny"), zoo.build("tiny_cnn")
    assert looks_like_transformer(bert) and not looks_like_transformer(cnn)
    assert pipeline_for(bert, "onnxruntime") == "transformer-ort"
    assert pipeline_for(bert, "openvino") == "transformer-portable"
    assert pipeline_for(cnn, "onnxruntime") == "default"
    assert pipeline_variants(bert, ["onnxruntime", "openvino"]) == {
        "onnxruntime": ("transformer-ort", "transformer-portable"), "openvino": ("transformer-portable",)}
    assert pipeline_variants(cnn, ["onnxruntime"]) == {"onnxruntime": ("default",)}


needs_minilm = pytest.mark.skipif(not minilm.available(), reason=f"needs the text extra: {minilm.unavailable_reason()}")


@pytest.fixture(scope="module")
def minilm_model() -> onnx.ModelProto:
    return zoo.build("all-MiniLM-L6-v2")


@needs_minilm
def test_minilm_ort_pipeline_fuses_every_layer_and_matches(minilm_model):
    fused, reports = run_pipeline(minilm_model, "transformer-ort")
    changes = next(r.changes for r in reports if r.name == "transformer_ort_fusion")
    assert changes == {"EmbedLayerNormalization": 1, "Attention": minilm.LAYERS,
                       "SkipLayerNormalization": 2 * minilm.LAYERS, "BiasGelu": minilm.LAYERS}
    assert _contrib(fused)["Attention"] == minilm.LAYERS
    assert "Softmax" not in op_types(fused)
    feeds = sentences.tokenize(sentences.SENTENCES[:8])
    _fused_matches(minilm_model, fused, feeds)
    feeds["attention_mask"][:, 3:5] = 0            # a mask with holes, not only right padding
    _fused_matches(minilm_model, fused, feeds)


@needs_minilm
def test_minilm_portable_pipeline_matches(minilm_model):
    fused, _ = run_pipeline(minilm_model, "transformer-portable")
    assert not _contrib(fused)
    assert op_types(fused)["LayerNormalization"] == 2 * minilm.LAYERS + 1
    _fused_matches(minilm_model, fused, sentences.tokenize(sentences.SENTENCES[:8]))
