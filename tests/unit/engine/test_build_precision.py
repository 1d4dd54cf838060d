"""The build's precision step: FP16/BF16 checked against FP32, INT8 calibrated (or refused without data),
the accuracy budget on real held-out data, and the manifest recording what was shipped."""

from __future__ import annotations

import numpy as np
import pytest

from tensorforge.core.precisions import BUILD_PRECISIONS
from tensorforge.engine.build import BuildOptions, build
from tensorforge.engine.runtime import Engine
from tensorforge.errors import BuildError, CalibrationError, ConfigError, VerificationError


def test_every_precision_of_the_core_list_is_a_build_option():
    from tensorforge.precision import PrecisionOptions

    for precision in BUILD_PRECISIONS:
        assert BuildOptions(precision=precision).precision == PrecisionOptions(precision).precision == precision


def test_unknown_precision_refused_up_front():
    with pytest.raises(ConfigError, match="unknown precision 'fp8'"):
        BuildOptions(precision="fp8")


@pytest.mark.parametrize("precision, tol", [("fp16", 1e-2), ("bf16", 6e-2)])
def test_low_float_engine_checked_against_fp32_and_recorded(conv_bn_path, tmp_path, precision, tol):
    engine, report = build(conv_bn_path, tmp_path / "m.tfe", BuildOptions(precision=precision))
    assert report.precision == precision and engine.manifest.precision == precision
    check = report.precision_check
    assert check["passed"] and check["tolerance"] == tol and 0 < check["max_norm_err"] <= tol
    on_disk = Engine.load(tmp_path / "m.tfe")
    assert on_disk.manifest.build.precision is not None
    assert on_disk.manifest.build.precision["report"]["precision"] == precision
    assert on_disk.inputs[0].dtype == "float32"          # graph I/O keeps the model's dtype
    x = np.random.default_rng(1).standard_normal((2, 3, 16, 16)).astype(np.float32)
    fp32, _ = build(conv_bn_path)
    want = fp32.session().run(x)["y"]
    got = on_disk.session().run(x)["y"]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=tol * np.abs(want).max())


def test_low_float_check_failure_writes_nothing(conv_bn_path, tmp_path):
    with pytest.raises(VerificationError, match="FP16 engine differs from FP32"):
        build(conv_bn_path, tmp_path / "m.tfe", BuildOptions(precision="fp16", precision_rtol=1e-12))
    assert not (tmp_path / "m.tfe").exists()


def test_int8_needs_calibration_data(conv_bn_path):
    with pytest.raises(CalibrationError, match='calibration="random"'):
        build(conv_bn_path, options=BuildOptions(precision="int8"))


def test_int8_random_calibration_is_flagged_speed_only(conv_bn_path):
    engine, report = build(conv_bn_path, options=BuildOptions(precision="int8", calibration="random"))
    assert engine.manifest.precision == "int8"
    assert any("random inputs" in w for w in report.warnings)
    assert "task accuracy" in report.precision_check["judged_by"]
    ops = {n.op_type for n in __import__("onnx").load_from_string(engine.model_bytes).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


def test_int8_on_the_shipped_classifier_within_budget(tmp_path):
    engine, report = build("mnist_cnn", tmp_path / "m8.tfe",
                           BuildOptions(precision="int8", calibration="mnist5k", accuracy_budget=1.0))
    assert engine.manifest.precision == "int8" and engine.manifest.model.source == "trained:mnist_cnn"
    acc = report.precision_report["accuracy"]
    assert acc["met"] and acc["data"] == "validation"
    assert acc["fp32"]["top1_pct"] - acc["final"]["top1_pct"] <= 1.0
    assert report.precision_report["calibration"]["source"] == "mnist5k:calibration"


def test_best_without_held_out_data_is_refused(conv_bn_path):
    with pytest.raises(BuildError, match="held-out evaluation data"):
        build(conv_bn_path, options=BuildOptions(precision="best", calibration="random"))
