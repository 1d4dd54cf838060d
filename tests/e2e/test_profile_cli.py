"""``tensorforge profile`` end to end on tiny real engines: the table, --json, --chart and the one-line errors."""

from __future__ import annotations

import json

import pytest

from tensorforge.cli.main import main
from tensorforge.engine.build import BuildOptions, build

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    out = tmp_path_factory.mktemp("profile_cli")
    fp32, int8 = out / "fp32.tfe", out / "int8.tfe"
    build("tiny_cnn", fp32, BuildOptions(max_batch=4, threads=1))
    build("tiny_cnn", int8, BuildOptions(max_batch=4, threads=1, precision="int8", calibration="random"))
    return {"fp32": str(fp32), "int8": str(int8)}


def test_help_explains_the_command_with_examples(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["profile", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: tensorforge profile" in out and "examples:" in out and "--chart" in out


def test_table_json_and_chart(capsys, tmp_path, engines):
    report, chart = tmp_path / "p.json", tmp_path / "p.png"
    code, out, err = run_cli(capsys, "profile", engines["int8"], "--runs", "5", "--warmup", "2", "--top", "4",
                             "--json", str(report), "--chart", str(chart))
    assert code == 0, err
    assert "layer (ONNX node)" in out and "top 4 of" in out and "coverage" in out
    assert "precision: int8" in out and "of layer time" in out
    data = json.loads(report.read_text())
    assert data["schema"] == "tensorforge.profile/1" and data["backend"] == "onnxruntime" and data["runs"] == 5
    for key in ("run_ms", "layers_total_ms", "coverage_pct", "precision_summary", "layers", "idle", "notes"):
        assert key in data
    assert len(data["layers"]) > 4                                    # the JSON has every row, not only the top K
    assert data["precision_summary"]["int8"] > 50.0
    assert chart.read_bytes().startswith(PNG_MAGIC) and "chart written" in err


def test_fp32_engine_shows_no_int8(capsys, tmp_path, engines):
    report = tmp_path / "p.json"
    code, out, err = run_cli(capsys, "profile", engines["fp32"], "--batch", "4", "--runs", "5", "--json", str(report))
    assert code == 0, err
    data = json.loads(report.read_text())
    assert data["batch"] == 4 and "int8" not in data["precision_summary"]
    assert all(layer["precision"] != "int8" for layer in data["layers"])


def test_openvino_backend_override(capsys, tmp_path, engines):
    pytest.importorskip("openvino", reason="openvino is not installed (pip install 'tensorforge[openvino]')")
    report = tmp_path / "p.json"
    code, out, err = run_cli(capsys, "profile", engines["int8"], "--backend", "openvino", "--runs", "5",
                             "--json", str(report))
    assert code == 0, err
    assert "openvino" in out and "mean of 5 profiled runs" in out
    data = json.loads(report.read_text())
    assert data["backend"] == "openvino" and data["precision_summary"]["int8"] > 50.0


@pytest.mark.parametrize("argv, message", [
    (["--batch", "9"], "error: --batch 9 exceeds"),
    (["--batch", "0"], "error: --batch must be a positive integer, got 0"),
    (["--runs", "0"], "error: --runs must be >= 1, got 0"),
    (["--backend", "nosuch"], "error: unknown backend 'nosuch'"),
    (["--backend", "reference"], "profiling supports onnxruntime and openvino"),
])
def test_bad_arguments_are_one_line_errors(capsys, engines, argv, message):
    code, out, err = run_cli(capsys, "profile", engines["fp32"], *argv)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
