"""bench's trtexec / perf_analyzer options: --iterations, --export-times, --concurrency, --strict, --backend,
--input (real data). Real ONNX Runtime on a tiny model; the noise gate is fed fake timings from an injected
clock, never the machine's own noise."""

from __future__ import annotations

import csv
import itertools
import json

import numpy as np
import pytest

from tensorforge.bench.inputs import read_inputs
from tensorforge.bench.runner import BenchOptions, BenchResult, BenchRow, bench
from tensorforge.bench.strict import noisy_rows
from tensorforge.bench.times import times_rows, write_times
from tensorforge.core.specs import TensorSpec
from tensorforge.core.timing import Timer
from tensorforge.errors import BackendUnavailable, ConfigError, InputError

QUICK = dict(warmup_s=0.0, rounds=3)
X = TensorSpec("x", "float32", ("N", 3, 16, 16))


def test_round_counts_add_up_to_iterations():
    assert BenchOptions(iterations=7, rounds=3).round_counts() == (3, 2, 2)
    assert BenchOptions(iterations=2, rounds=6).round_counts() == (1, 1)      # no empty rounds
    assert BenchOptions().round_counts() is None
    for bad in (0, -3):
        with pytest.raises(ConfigError, match="`iterations` must be a positive count"):
            BenchOptions(iterations=bad)


def test_fixed_iterations_and_times_per_row(conv_bn_path):
    result = bench(conv_bn_path, BenchOptions(batches=(1, 2), iterations=7, keep_times=True, baseline=True,
                                              **QUICK))
    for r in result.rows:
        assert r.engine.iterations == 7 and r.engine.latency["count"] == 7
        assert r.baseline is not None and r.baseline.iterations == 7        # the peer runs as many calls
        assert r.times_ms is not None and len(r.times_ms) == 7 and all(t > 0 for t in r.times_ms)
        # the export holds exactly the latencies the row's statistics were computed from
        assert min(r.times_ms) == pytest.approx(r.engine.latency["min_ms"], rel=1e-6)
        assert max(r.times_ms) == pytest.approx(r.engine.latency["max_ms"], rel=1e-6)
    assert bench(conv_bn_path, BenchOptions(batches=(1,), iterations=3, **QUICK)).rows[0].times_ms is None


def test_concurrency_sweep_keeps_threads_fixed(conv_bn_path):
    levels = (1, 2, 4)
    result = bench(conv_bn_path, BenchOptions(batches=(1,), streams=levels, split_threads=False, threads=1,
                                              iterations=5, keep_times=True, **QUICK))
    d = json.loads(json.dumps(result.to_dict()))
    assert [(r["batch"], r["streams"], r["threads"]) for r in d["rows"]] == [(1, n, 1) for n in levels]
    for r in d["rows"]:
        # one call is one wave of `streams` requests in flight; each request is timed and exported
        assert r["engine"]["iterations"] == 5 * r["streams"] == len(r["times_ms"])
        assert r["engine"]["throughput_sps"] > 0
        assert set(r["engine"]["latency"]) >= {"p50_ms", "p90_ms", "p99_ms"}
    assert d["options"]["split_threads"] is False


def test_export_times_csv_and_json(conv_bn_path, tmp_path):
    result = bench(conv_bn_path, BenchOptions(batches=(1, 2), iterations=4, keep_times=True, **QUICK))
    with open(write_times(tmp_path / "t.csv", [result]), newline="") as fh:
        lines = list(csv.reader(fh))
    assert lines[0] == ["precision", "batch", "streams", "index", "latency_ms"]
    assert [(b, i) for _, b, _, i, _ in lines[1:]] == [(str(b), str(i)) for b in (1, 2) for i in range(4)]
    assert [float(x[4]) for x in lines[1:5]] == pytest.approx(result.rows[0].times_ms, rel=1e-5)
    data = json.loads(write_times(tmp_path / "t.json", result).read_text())
    assert [(x["precision"], x["batch"], x["streams"]) for x in data] == [("fp32", 1, 1), ("fp32", 2, 1)]
    assert data[1]["times_ms"] == result.rows[1].times_ms
    no_times = bench(conv_bn_path, BenchOptions(batches=(1,), iterations=2, **QUICK))
    with pytest.raises(InputError, match="keep_times=True"):
        times_rows(no_times)


def _measured(step_ns):  # type: ignore[no-untyped-def]
    """A Measurement timed by a fake clock: each reading advances by ``next(step_ns)``, so the call
    durations are exactly what the test decides."""
    now = [0]

    def clock() -> int:
        now[0] += next(step_ns)
        return now[0]

    timer = Timer(lambda feeds: None, clock=clock)
    timer.run_for({}, 0.0, 20)
    return timer.measurement(1, 10.0)


def _result(*measurements) -> BenchResult:  # type: ignore[no-untyped-def]
    rows = [BenchRow(batch=1, engine=m, peak_rss_bytes=0, estimated_bytes=0, power={}, power_w=None,
                     perf_per_watt=None, energy_j_per_sample=None) for m in measurements]
    return BenchResult(model={"precision": "fp32"}, options={}, host={}, libraries={}, power_source="", rows=rows)


def test_noise_gate_on_fake_timings():
    steady = _measured(itertools.repeat(1_000_000))                         # every call 1 ms: CV 0, spread 0
    drifting = _measured(iter([1_000_000] * 21 + [3_000_000] * 100))       # 1 ms, then 3 ms: drift
    assert steady.noise["cv_pct"] == 0 and steady.noise["spread_pct"] == 0
    assert noisy_rows(_result(steady), max_cv_pct=0, max_spread_pct=0) == []
    reasons = noisy_rows(_result(steady, drifting), max_cv_pct=10, max_spread_pct=10)
    assert len(reasons) == 2 and all(r.startswith("batch 1: ") for r in reasons)
    assert "latency CV" in reasons[0] and "> 10%" in reasons[0] and "spread" in reasons[1]
    assert noisy_rows(_result(drifting), max_cv_pct=None, max_spread_pct=None) == []
    assert noisy_rows(_result(drifting), max_cv_pct=1e6, max_spread_pct=1e6) == []
    with pytest.raises(ConfigError, match="`max_cv_pct` is a percentage"):
        noisy_rows([], max_cv_pct=-1)


def test_backend_builds_in_process(conv_bn_path, engine_path):
    pytest.importorskip("openvino")
    result = bench(conv_bn_path, BenchOptions(batches=(1,), iterations=3, backend="OpenVINO", **QUICK))
    assert result.model["backend"] == "openvino" and result.rows[0].engine.iterations == 3
    with pytest.raises(BackendUnavailable, match="did you mean 'openvino'"):
        BenchOptions(backend="openvin")
    with pytest.raises(InputError, match="built for 'onnxruntime'; its backend is fixed at build time"):
        bench(engine_path, BenchOptions(batches=(1,), iterations=1, backend="openvino", **QUICK))


def test_real_inputs_cycle_through_rows(conv_bn_path, tmp_path):
    data = np.arange(5 * 3 * 16 * 16, dtype=np.float32).reshape(5, 3, 16, 16)
    np.save(tmp_path / "x.npy", data)
    samples = read_inputs(tmp_path / "x.npy", [X])
    feeds = samples.feeds(2)
    # rows in order, wrapping around: [0, 1], [2, 3], [4, 0]
    assert [f["x"][:, 0, 0, 0].tolist() for f in feeds] == [[data[i, 0, 0, 0] for i in ix]
                                                            for ix in ((0, 1), (2, 3), (4, 0))]
    assert len(samples.feeds(8)) == 1 and samples.feeds(8)[0]["x"].shape == (8, 3, 16, 16)
    result = bench(conv_bn_path, BenchOptions(batches=(2,), iterations=6, input_data=tmp_path / "x.npy", **QUICK))
    assert result.model["input_data"]["rows"] == 5 and result.rows[0].engine.iterations == 6
    assert result.options["input_data"] == str(tmp_path / "x.npy")


def test_real_inputs_npz_and_images(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.ones((3, 3, 16, 16), np.float32), labels=np.arange(3))
    assert read_inputs(tmp_path / "d.npz", [X]).rows == 3
    np.save(tmp_path / "one.npy", np.ones((3, 16, 16), np.float32))          # one sample, no batch axis
    assert read_inputs(tmp_path / "one.npy", [X]).arrays["x"].shape == (1, 3, 16, 16)
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (20, 24), (i * 80, 10, 200)).save(folder / f"{i}.png")
    s = read_inputs(folder, [X])
    x = s.arrays["x"]
    assert s.rows == 3 and x.shape == (3, 3, 16, 16) and x.dtype == np.float32
    assert x[1, 0, 0, 0] == pytest.approx(80 / 255) and x[0, 2, 5, 5] == pytest.approx(200 / 255)   # NCHW, [0, 1]


@pytest.mark.parametrize("make,expected", [
    (lambda d: np.save(d / "f.npy", np.zeros((2, 3, 8, 8), np.float32)),
     r"`input_data` .*f\.npy: input 'x' has shape \[2, 3, 8, 8\]; model 'm' expects \[N, 3, 16, 16\] \(axis 2"),
    (lambda d: np.save(d / "f.npy", np.zeros((2, 3, 16, 16))),
     r"f\.npy: input 'x' has dtype float64; model 'm' expects float32 — cast the data"),
    (lambda d: np.save(d / "f.npy", np.full((1, 3, 16, 16), np.nan, np.float32)), r"f\.npy: .*NaN/Inf"),
    (lambda d: np.savez(d / "f.npz", a=np.zeros(1), b=np.zeros(1)),
     r"f\.npz holds arrays \['a', 'b'\]; the model's inputs are \['x'\] \(missing \['x'\]\)"),
    (lambda d: (d / "f.txt").write_text("1"), r"f\.txt: unsupported file type '\.txt'"),
    (lambda d: (d / "f").mkdir(), r"f: no images"),
    (lambda d: None, r"`input_data` .*nothere\.npy does not exist"),
])
def test_real_input_errors_name_file_array_and_shape(tmp_path, make, expected):
    make(tmp_path)
    name = next((p.name for p in tmp_path.iterdir()), "nothere.npy")
    with pytest.raises(InputError, match=expected):
        read_inputs(tmp_path / name, [X], model="m")


def test_npy_for_a_two_input_model_is_refused(tmp_path):
    np.save(tmp_path / "f.npy", np.zeros((1, 4), np.float32))
    specs = [TensorSpec("a", "float32", ("N", 4)), TensorSpec("b", "float32", ("N", 4))]
    with pytest.raises(InputError, match=r"model has 2 inputs \['a', 'b'\]; give an \.npz"):
        read_inputs(tmp_path / "f.npy", specs)
