"""The calibration cache: round trip, a rebuild that skips calibration, refusal for another model."""

import json

import numpy as np
import onnx
import pytest

from tensorforge.core.specs import io_specs, random_inputs
from tensorforge.engine.build import build
from tensorforge.errors import CalibrationError
from tensorforge.graph.io import model_hash
from tensorforge.precision import CalibrationSpec, PrecisionOptions, apply_precision
from tensorforge.precision.cache import CalibrationCache, load_cache, save_cache


@pytest.fixture(scope="module")
def models():
    a = onnx.load_from_string(build("tiny_cnn")[0].model_bytes)
    b = onnx.load_from_string(build("tiny_mobilenet")[0].model_bytes)
    return a, b


def test_round_trip(tmp_path):
    cache = CalibrationCache("ab" * 32, "percentile", 99.9, "uint8", 64, "f" * 64, "folder x", {"t": (-1.5, 2.25)})
    path = save_cache(tmp_path / "c.json", cache)
    assert load_cache(path, model_sha256="ab" * 32) == cache
    raw = json.loads(path.read_text())
    assert raw["format"] == "tensorforge-calibration-cache" and raw["ranges"] == {"t": [-1.5, 2.25]}


def test_rebuild_uses_the_cache_without_data_and_refuses_another_model(tmp_path, models):
    a, b = models
    path = tmp_path / "a.calib.json"
    cal = [random_inputs(io_specs(a)[0], 8, seed=s) for s in range(2)]
    q1, r1 = apply_precision(a, PrecisionOptions("int8", calibration=CalibrationSpec(data=cal, cache_path=path)))
    assert r1.calibration["cache"] == "written" and path.exists()
    assert load_cache(path).model_sha256 == model_hash(a)
    # rebuild: no data at all, the cache alone
    q2, r2 = apply_precision(a, PrecisionOptions("int8", calibration=CalibrationSpec(cache_path=path)))
    assert r2.calibration["cache"] == "hit" and r2.calibration["samples"] == 16
    x = random_inputs(io_specs(a)[0], 2, seed=7)
    import onnxruntime as ort
    y1 = ort.InferenceSession(q1.SerializeToString()).run(None, x)[0]
    y2 = ort.InferenceSession(q2.SerializeToString()).run(None, x)[0]
    np.testing.assert_array_equal(y1, y2)
    with pytest.raises(CalibrationError, match="computed for another model"):
        apply_precision(b, PrecisionOptions("int8", calibration=CalibrationSpec(cache_path=path)))
    # another method with no data to recompute: refused, saying why
    with pytest.raises(CalibrationError, match="no calibration data"):
        apply_precision(a, PrecisionOptions("int8", calibration=CalibrationSpec(method="mse", cache_path=path)))
    # other data: recalibrated and rewritten
    cal2 = [random_inputs(io_specs(a)[0], 8, seed=42)]
    _, r3 = apply_precision(a, PrecisionOptions("int8", calibration=CalibrationSpec(data=cal2, cache_path=path)))
    assert r3.calibration["cache"].startswith("stale") and load_cache(path).samples == 8


@pytest.mark.parametrize("content, message", [
    ("{not json", "not readable JSON"),
    ('{"format": "something-else"}', "not a TensorForge calibration cache"),
    ('{"format": "tensorforge-calibration-cache", "version": 99}', "version 99"),
    ('{"format": "tensorforge-calibration-cache", "version": 1, "ranges": {}}', "malformed"),
])
def test_broken_caches_say_what_is_wrong(tmp_path, content, message):
    p = tmp_path / "c.json"
    p.write_text(content)
    with pytest.raises(CalibrationError, match=message):
        load_cache(p)
    with pytest.raises(CalibrationError, match="does not exist"):
        load_cache(tmp_path / "missing.json")
