"""The build pipeline: report contents, batch rewrites verified row by row, and the verifier catching a bad graph."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tensorforge.engine import build as build_mod
from tensorforge.engine.build import BuildOptions, build
from tensorforge.errors import ConfigError, ModelError, VerificationError

from conftest import make_conv_bn_model


def test_report_before_after(conv_bn_path, tmp_path):
    engine, report = build(conv_bn_path, tmp_path / "m.tfe")
    assert report.before.ops.get("BatchNormalization") == 1
    assert "BatchNormalization" not in report.after.ops
    assert "Dropout" not in report.after.ops and "Identity" not in report.after.ops
    assert report.after.nodes < report.before.nodes
    assert report.before.macs_per_sample == report.after.macs_per_sample > 0
    assert report.verification is not None and report.verification.passed
    assert report.verification.max_norm_err <= 1e-5
    assert any(p["modified"] for p in report.passes)
    assert report.engine_bytes > 0 and (tmp_path / "m.tfe").exists()
    assert report.to_dict()["after"]["nodes"] == report.after.nodes


def test_fixed_batch_one_rewritten_and_verified_per_row(tmp_path):
    path = tmp_path / "b1.onnx"
    onnx.save(make_conv_bn_model(batch=1), path)
    engine, report = build(path, tmp_path / "b4.tfe", BuildOptions(batch=4))
    assert engine.inputs[0].shape[0] == 4
    assert report.verification.batch == 4 and report.verification.passed
    engine, report = build(path, options=BuildOptions(max_batch=16))
    assert engine.inputs[0].shape[0] == "N" and engine.max_batch == 16
    assert any("max batch 16" in n for n in report.notes)


def test_fixed_batch_kept_with_note(tmp_path):
    path = tmp_path / "b1.onnx"
    onnx.save(make_conv_bn_model(batch=1), path)
    engine, report = build(path)
    assert engine.inputs[0].shape[0] == 1
    assert any("max_batch=N" in n for n in report.notes)


def test_verifier_rejects_a_wrong_graph(monkeypatch, conv_bn_path, tmp_path):
    """A pass that silently changes a weight must stop the build before anything is written."""
    real = build_mod.run_pipeline

    def broken(model, pipeline="default"):
        out, reports = real(model, pipeline)
        init = out.graph.initializer[0]
        arr = numpy_helper.to_array(init).copy()
        arr.flat[0] += 1.0
        init.CopyFrom(numpy_helper.from_array(arr, init.name))
        return out, reports

    monkeypatch.setattr(build_mod, "run_pipeline", broken)
    out = tmp_path / "never.tfe"
    with pytest.raises(VerificationError, match="differs from the original"):
        build(conv_bn_path, out)
    assert not out.exists()


def test_bad_sources(tmp_path):
    with pytest.raises(ModelError, match="neither an ONNX file nor a zoo model"):
        build("no_such_model_anywhere")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\x01not a model at all" * 10)
    with pytest.raises(ModelError):
        build(garbage)
    with pytest.raises(ConfigError, match="either batch"):
        BuildOptions(batch=2, max_batch=4)


def test_pipeline_none_keeps_graph(conv_bn_path):
    engine, report = build(conv_bn_path, options=BuildOptions(pipeline="none"))
    assert report.after.ops.get("BatchNormalization") == 1


def test_zoo_source_builds(tmp_path):
    engine, report = build("tiny_cnn", tmp_path / "tiny.tfe")
    assert engine.manifest.model.source == "zoo:tiny_cnn"
    assert report.verification.passed
    out = engine.session().run(np.zeros((2, *engine.inputs[0].shape[1:]), np.float32))
    assert next(iter(out.values())).shape[0] == 2
