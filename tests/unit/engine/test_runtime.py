"""Session: results match ONNX Runtime on the original model; every bad input is refused before the backend."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import tensorforge
from tensorforge.engine.build import BuildOptions, build
from tensorforge.engine.manifest import freeze, thaw
from tensorforge.errors import InputError


def _reference(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def test_load_and_run_matches_original(engine_path, conv_bn_model):
    session = tensorforge.load(engine_path)
    x = np.random.default_rng(1).standard_normal((3, 3, 16, 16)).astype(np.float32)
    got = session.run(x)["y"]
    np.testing.assert_allclose(got, _reference(conv_bn_model, x), rtol=1e-5, atol=1e-5)
    # dict form gives the same
    np.testing.assert_array_equal(session.run({"x": x})["y"], got)


def test_threads_setting_is_applied(engine_path):
    session = tensorforge.load(engine_path, threads=1)
    assert session.config.threads == 1
    assert session.run(np.zeros((1, 3, 16, 16), np.float32))["y"].shape == (1, 5)


@pytest.mark.parametrize("bad, pattern", [
    (np.zeros((1, 3, 16, 16), np.float64), r"dtype float64; .* expects float32 — cast the data to float32"),
    (np.zeros((3, 16, 16), np.float32), r"rank 3.*rank 4"),
    (np.zeros((1, 3, 15, 16), np.float32), r"axis 2 must be 16"),
    (np.zeros((0, 3, 16, 16), np.float32), r"empty"),
    ([[1.0]], r"NumPy array"),
])
def test_bad_inputs_raise_input_error(engine_path, bad, pattern):
    session = tensorforge.load(engine_path)
    with pytest.raises(InputError, match=pattern):
        session.run({"x": bad})


def test_wrong_names(engine_path):
    session = tensorforge.load(engine_path)
    x = np.zeros((1, 3, 16, 16), np.float32)
    with pytest.raises(InputError, match=r"missing input\(s\) \['x'\].*unexpected input\(s\) \['images'\]"):
        session.run({"images": x})
    with pytest.raises(InputError, match="unexpected"):
        session.run({"x": x, "extra": x})


def test_nan_and_inf_refused_unless_allowed(engine_path):
    session = tensorforge.load(engine_path)
    x = np.zeros((2, 3, 16, 16), np.float32)
    x[1, 0, 0, 0] = np.nan
    with pytest.raises(InputError, match="1 NaN/Inf"):
        session.run(x)
    x[1, 0, 0, 0] = np.inf
    with pytest.raises(InputError, match="NaN/Inf"):
        session.run(x)
    lenient = tensorforge.load(engine_path, check_finite=False)
    assert lenient.run(x)["y"].shape == (2, 5)


def test_large_finite_values_are_not_mistaken_for_inf(engine_path):
    session = tensorforge.load(engine_path)
    x = np.full((1, 3, 16, 16), 3e38, np.float32)      # the fast sum overflows; the full scan says finite
    assert session.run(x)["y"].shape == (1, 5)          # accepted: no InputError about NaN/Inf


def test_max_batch_enforced(tmp_path, conv_bn_path):
    out = tmp_path / "mb.tfe"
    build(conv_bn_path, out, BuildOptions(max_batch=4))
    session = tensorforge.load(out)
    assert session.run(np.zeros((4, 3, 16, 16), np.float32))["y"].shape == (4, 5)
    with pytest.raises(InputError, match="max batch 4"):
        session.run(np.zeros((5, 3, 16, 16), np.float32))


def test_single_array_refused_for_multi_input_model(tmp_path):
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["c"])], "add",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 4]),
                               helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, ["N", 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    engine, _ = build(model)
    session = engine.session()
    with pytest.raises(InputError, match="2 inputs"):
        session.run(np.zeros((1, 4), np.float32))
    with pytest.raises(InputError, match="must agree on N"):
        session.run({"a": np.zeros((1, 4), np.float32), "b": np.zeros((2, 4), np.float32)})
    out = session.run({"a": np.ones((2, 4), np.float32), "b": np.ones((2, 4), np.float32)})
    np.testing.assert_array_equal(out["c"], np.full((2, 4), 2, np.float32))


def test_session_reuses_backend_session(engine_path):
    session = tensorforge.load(engine_path)
    inner = session._backend_session
    for _ in range(3):
        session.run(np.zeros((1, 3, 16, 16), np.float32))
    assert session._backend_session is inner


def test_reference_backend_agrees(engine_path):
    engine = tensorforge.Engine.load(engine_path)
    x = np.random.default_rng(2).standard_normal((2, 3, 16, 16)).astype(np.float32)
    ort_out = engine.session().run(x)["y"]
    ref_out = engine.session(backend="reference").run(x)["y"]
    np.testing.assert_allclose(ort_out, ref_out, rtol=1e-4, atol=1e-5)


def test_host_mismatch_warns(engine_path, tmp_path):
    loaded = tensorforge.Engine.load(engine_path)
    built = loaded.manifest.build
    other_host = replace(built, host=freeze({**thaw(built.host), "cpu_model": "Some Other CPU"}))
    engine = tensorforge.Engine(replace(loaded.manifest, build=other_host), loaded.model_bytes, loaded.path)
    with pytest.warns(UserWarning, match="another host") as record:
        engine.session()
    # the warning says how to re-tune for this machine
    assert "tensorforge build MODEL --tune latency -o conv_bn.tfe" in str(record[0].message)
