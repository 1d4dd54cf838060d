"""The histogram file: every method's ranges reproduced bit for bit, refusals (another model, damage,
versions, lies about sizes), and reuse through calibrate/apply_precision with no model run."""

import io
import json
import zipfile

import numpy as np
import onnx
import pytest

from tensorforge.backends import registry
from tensorforge.core.specs import io_specs, random_inputs
from tensorforge.errors import CalibrationError
from tensorforge.precision import (
    CalibrationData,
    CalibrationSpec,
    HistogramSet,
    PrecisionOptions,
    apply_precision,
    calibrate,
    calibration_histograms,
    load_calibration_data,
    load_histograms,
    model_key,
)
from tensorforge.precision.collect import collect_histograms, ranges_from_histograms
from tensorforge.precision.fp16 import ensure_node_names
from tensorforge.precision.histfile import HISTOGRAM_FORMAT
from tensorforge.precision.methods import METHODS

from conftest import make_conv_bn_model

BINS = 256      # the entropy and mse searches are quadratic in the bins: keep the test quick


def samples(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((1, 3, 16, 16), dtype=np.float32) * (1 + i % 3) for i in range(n)]


@pytest.fixture(scope="module")
def model() -> onnx.ModelProto:
    return make_conv_bn_model()


@pytest.fixture(scope="module")
def hist_file(tmp_path_factory, model):
    path = tmp_path_factory.mktemp("hist") / "conv_bn.hist.npz"
    _, info = calibration_histograms(model, CalibrationSpec(data=samples(40), batch_size=16, num_bins=BINS,
                                                            histograms=path))
    assert info["histograms"] == "written" and info["samples"] == 40
    return path


def test_the_file_reproduces_every_method_exactly(model, hist_file):
    data = load_calibration_data(samples(40), io_specs(model)[0], batch_size=16)
    fresh = collect_histograms(model, data.batches, num_bins=BINS)
    loaded = load_histograms(hist_file, model_sha256=model_key(model))
    assert list(loaded.histograms) == list(fresh)
    assert loaded.samples == 40 and loaded.data_fingerprint == data.fingerprint and loaded.batch_size == 16
    for name, h in fresh.items():
        g = loaded.histograms[name]
        np.testing.assert_array_equal(g.counts, h.counts)
        assert (g.width, g.min, g.max, g.total) == (h.width, h.min, h.max, h.total)
    for method in METHODS:
        for unsigned in (True, False):
            for pct in (99.99, 99.0):
                want = ranges_from_histograms(fresh, method, percentile=pct, unsigned=unsigned)
                assert loaded.ranges(method, percentile=pct, unsigned=unsigned) == want     # == on floats


def test_refused_for_another_model(hist_file):
    other = make_conv_bn_model(seed=1)
    with pytest.raises(CalibrationError, match="computed for another model.*delete it or give another"):
        load_histograms(hist_file, model_sha256=model_key(other))
    with pytest.raises(CalibrationError, match="another model"):
        calibration_histograms(other, CalibrationSpec(data=samples(4), histograms=hist_file))


def _members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _write(path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _header(path) -> dict:
    header = json.loads(np.load(path, allow_pickle=False)["header"].tobytes())
    assert header["format"] == HISTOGRAM_FORMAT
    return header


def _damage(kind: str, good, bad) -> None:
    raw = good.read_bytes()
    members = _members(good)
    if kind == "truncated":
        bad.write_bytes(raw[: len(raw) // 2])
    elif kind == "flipped byte":
        i = raw.index(b"counts.npy") + 400          # inside the counts' data
        bad.write_bytes(raw[:i] + bytes([raw[i] ^ 0xFF]) + raw[i + 1:])
    elif kind == "not a zip":
        bad.write_bytes(b"\x93NUMPY not an archive at all")
    elif kind in ("version", "format"):
        header = _header(good)
        header.update({"version": 99} if kind == "version" else {"format": "something-else"})
        members["header.npy"] = _npy(np.frombuffer(json.dumps(header).encode(), np.uint8))
        _write(bad, members)
    elif kind == "calibration arrays":            # an .npz, but of calibration data
        np.savez(bad, input=np.zeros((2, 3, 16, 16), np.float32))
    elif kind == "checksum":                       # a valid zip whose counts were changed afterwards
        counts = np.load(good, allow_pickle=False)["counts"]
        counts[0, 0] += 1
        members["counts.npy"] = _npy(counts)
        _write(bad, members)
    elif kind == "huge shape":                     # the counts member claims far more data than it holds
        members["counts.npy"] = members["counts.npy"].replace(f"({_shape(good)}".encode(), b"(1000000000, 2048")
        _write(bad, members)
    elif kind == "huge bins":
        header = _header(good)
        header["num_bins"] = 1 << 40
        members["header.npy"] = _npy(np.frombuffer(json.dumps(header).encode(), np.uint8))
        _write(bad, members)
    elif kind == "compressed":                     # deflate would let a small file declare huge arrays
        with zipfile.ZipFile(bad, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in members.items():
                zf.writestr(name, data)


def _shape(path) -> str:
    with zipfile.ZipFile(path) as zf, zf.open("counts.npy") as fh:
        np.lib.format.read_magic(fh)
        shape = np.lib.format.read_array_header_1_0(fh)[0]
    return f"{shape[0]}, {shape[1]}"


@pytest.mark.parametrize("kind, message", [
    ("truncated", "not a readable histogram file"),
    ("flipped byte", "not a readable histogram file|checksum"),
    ("not a zip", "not a readable histogram file"),
    ("version", "version 99; this TensorForge reads version 1"),
    ("format", "is not a TensorForge histogram file \\(format 'something-else'\\)"),
    ("calibration arrays", "has no 'header' array: it is not a TensorForge histogram file"),
    ("checksum", "fails its checksum"),
    ("huge shape", "declares a 'counts' array of shape \\(1000000000, 2048\\) but holds"),
    ("huge bins", "claims num_bins=1099511627776"),
    ("compressed", "compressed \\(zip method 8\\)"),
])
def test_damaged_or_foreign_files_are_refused_naming_the_file_and_the_fix(tmp_path, hist_file, kind, message):
    bad = tmp_path / f"{kind.replace(' ', '_')}.npz"
    _damage(kind, hist_file, bad)
    with pytest.raises(CalibrationError, match=message) as exc:
        load_histograms(bad)
    assert str(bad) in str(exc.value)
    assert "delete it" in str(exc.value) or "give the path of a histogram file" in str(exc.value)
    with pytest.raises(CalibrationError, match="does not exist"):
        load_histograms(tmp_path / "missing.npz")


def test_reuse_runs_no_model(monkeypatch, model, hist_file):
    class NoRuns:
        name = "onnxruntime"

        def availability(self):
            return None

        def create_session(self, *args, **kwargs):
            raise AssertionError("the model was run")

    monkeypatch.setitem(registry._BACKENDS, "onnxruntime", NoRuns)
    with pytest.raises(AssertionError, match="the model was run"):       # the trap works
        calibration_histograms(model, CalibrationSpec(data=samples(4), num_bins=BINS))
    hs, info = calibration_histograms(model, CalibrationSpec(histograms=hist_file))       # no data at all
    assert info["histograms"] == "reused" and info["samples"] == 40 and isinstance(hs, HistogramSet)
    # data given too (a folder, a generator …): not read, the file is the calibration
    hs2, info2 = calibration_histograms(model, CalibrationSpec(data=iter(samples(4)), histograms=hist_file))
    assert info2["histograms"] == "reused" and info2["data"].startswith("not read")
    for method in METHODS:
        ranges, cinfo, batches = calibrate(model, CalibrationSpec(method=method, histograms=hist_file))
        assert cinfo["histograms"] == "reused" and batches == []
        assert ranges == hs.ranges(method) == hs2.ranges(method)


def test_calibrate_writes_then_reuses_and_keeps_the_cache_working(tmp_path, model):
    path, cache = tmp_path / "h.npz", tmp_path / "c.json"
    spec = CalibrationSpec(data=samples(20), method="mse", num_bins=BINS, histograms=path, cache_path=cache)
    r1, i1, batches = calibrate(model, spec)
    assert i1["histograms"] == "written" and i1["cache"] == "written" and path.exists() and cache.exists()
    assert sum(b["x"].shape[0] for b in batches) == 20          # in-memory data: kept for the disjointness check
    # another method: the ranges cache is stale, the histogram file gives it without data
    r2, i2, _ = calibrate(model, CalibrationSpec(method="entropy", histograms=path, cache_path=cache))
    assert i2["cache"].startswith("stale") and i2["histograms"] == "reused"
    assert r2 == load_histograms(path).ranges("entropy")
    r3, i3, _ = calibrate(model, CalibrationSpec(method="entropy", cache_path=cache))
    assert i3["cache"] == "hit" and r3 == r2
    # through apply_precision: same QDQ model from the file alone as from the data
    q1, _ = apply_precision(model, PrecisionOptions("int8", calibration=CalibrationSpec(data=samples(20),
                                                                                       num_bins=BINS)))
    q2, rep = apply_precision(model, PrecisionOptions("int8", calibration=CalibrationSpec(histograms=path)))
    assert rep.calibration["histograms"] == "reused"
    assert q1.SerializeToString() == q2.SerializeToString()
    assert r1 == load_histograms(path).ranges("mse")


def test_other_in_memory_data_recomputes_a_stale_file(tmp_path, model):
    path = tmp_path / "h.npz"
    specs = io_specs(model)[0]
    a = CalibrationData([random_inputs(specs, 8, seed=1)], 8, "set a", "a" * 64)
    b = CalibrationData([random_inputs(specs, 8, seed=2)], 8, "set b", "b" * 64)
    assert calibration_histograms(model, CalibrationSpec(data=a, num_bins=BINS, histograms=path))[1][
        "histograms"] == "written"
    assert calibration_histograms(model, CalibrationSpec(data=a, histograms=path))[1]["histograms"] == "reused"
    _, info = calibration_histograms(model, CalibrationSpec(data=b, num_bins=BINS, histograms=path))
    assert info["histograms"].startswith("stale") and load_histograms(path).data_source == "set b"


def test_no_data_and_no_file_says_what_to_give(tmp_path, model):
    with pytest.raises(CalibrationError, match="no calibration data was given and no histogram file at"):
        calibration_histograms(model, CalibrationSpec(histograms=tmp_path / "none.npz"))
    with pytest.raises(CalibrationError, match="num_bins must be an even number"):
        CalibrationSpec(data=samples(1), num_bins=3)
    assert not list(tmp_path.iterdir())              # nothing half-written


def test_the_model_key_ignores_node_naming_as_apply_precision_does(model):
    unnamed = onnx.ModelProto()
    unnamed.CopyFrom(model)
    for node in unnamed.graph.node:
        node.name = ""
    named = onnx.ModelProto()
    named.CopyFrom(unnamed)
    ensure_node_names(named)
    assert model_key(unnamed) == model_key(named)
