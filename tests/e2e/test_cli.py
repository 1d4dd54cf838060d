"""The CLI end to end: every command on tiny real models, its output, its JSON, and its errors (no tracebacks)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest

from tensorforge.cli.main import main


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_for_every_command(capsys):
    for cmd in (["--help"], ["bench", "--help"], ["build", "--help"], ["run", "--help"], ["zoo", "--help"],
                ["info", "--help"], ["backends", "--help"], ["zoo", "export", "--help"]):
        with pytest.raises(SystemExit) as exc:
            main(cmd)
        assert exc.value.code == 0
        out = capsys.readouterr().out
        assert "usage: tensorforge" in out


def test_entry_point_subprocess():
    proc = subprocess.run([sys.executable, "-m", "tensorforge", "--version"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("tensorforge ")


def test_zoo_list_info_export(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "zoo", "list")
    assert code == 0 and "resnet50" in out and "tiny_cnn" not in out
    code, out, _ = run_cli(capsys, "zoo", "list", "--all")
    assert "tiny_cnn" in out
    code, out, _ = run_cli(capsys, "zoo", "info", "tiny_cnn")
    assert code == 0 and "params" in out and "MACs" in out
    path = tmp_path / "t.onnx"
    code, out, _ = run_cli(capsys, "zoo", "export", "tiny_cnn", "-o", str(path))
    assert code == 0
    onnx.checker.check_model(onnx.load(path))


def test_build_info_run_topk(capsys, tmp_path, conv_bn_path):
    engine = tmp_path / "m.tfe"
    report = tmp_path / "report.json"
    code, out, _ = run_cli(capsys, "build", str(conv_bn_path), "-o", str(engine), "--report", str(report))
    assert code == 0 and "BatchNormalization" in out and "passed" in out and engine.exists()
    assert json.loads(report.read_text())["verification"]["passed"] is True
    code, out, _ = run_cli(capsys, "info", str(engine))
    assert code == 0 and "x: float32 (N, 3, 16, 16)" in out
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32))
    code, out, _ = run_cli(capsys, "run", str(engine), "--input", str(x), "--topk", "3", "-o", str(tmp_path / "o.npz"))
    assert code == 0 and "row 1:" in out and out.count("class") >= 6
    saved = np.load(tmp_path / "o.npz")
    assert saved["y"].shape == (2, 5)


def test_cli_and_api_agree(capsys, tmp_path, engine_path):
    import tensorforge

    xs = np.random.default_rng(3).standard_normal((1, 3, 16, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", xs)
    run_cli(capsys, "run", str(engine_path), "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "o.npz"))
    np.testing.assert_array_equal(np.load(tmp_path / "o.npz")["y"], tensorforge.load(engine_path).run(xs)["y"])


def test_bench_json_csv(capsys, tmp_path, engine_path):
    js, cs = tmp_path / "b.json", tmp_path / "b.csv"
    code, out, _ = run_cli(capsys, "bench", str(engine_path), "--batch", "1,2", "--duration", "0.2", "--warmup",
                           "0.05", "--baseline", "--json", str(js), "--csv", str(cs))
    assert code == 0
    assert "perf (samples/s)" in out and "p99" in out and "speedup" in out
    assert "power: n/a" in out or "power (W)" in out
    data = json.loads(js.read_text())
    assert [r["batch"] for r in data["rows"]] == [1, 2]
    lines = cs.read_text().strip().splitlines()
    assert lines[0].startswith("precision,batch,throughput_sps") and len(lines) == 3


def test_bench_streams_json(capsys, tmp_path):
    js, cs = tmp_path / "s.json", tmp_path / "s.csv"
    code, out, _ = run_cli(capsys, "bench", "tiny_mlp", "--batch", "1", "--streams", "1,2", "--duration", "0.1",
                           "--warmup", "0.02", "--json", str(js), "--csv", str(cs))
    assert code == 0 and "streams" in out and "per request" in out
    data = json.loads(js.read_text())
    assert data["options"]["streams"] == [1, 2]
    assert [(r["batch"], r["streams"]) for r in data["rows"]] == [(1, 1), (1, 2)]
    assert all(r["engine"]["throughput_sps"] > 0 for r in data["rows"])
    header, *rows = cs.read_text().strip().splitlines()
    assert header.endswith(",streams,threads") and len(rows) == 2
    code, out, _ = run_cli(capsys, "bench", "tiny_mlp", "--batch", "1", "--duration", "0.05", "--warmup", "0.01")
    assert code == 0 and "streams" not in out          # no streams column unless asked for


@pytest.mark.parametrize("argv, pattern", [
    (["run", "missing.tfe", "--input", "x.npy"], "no such engine file"),
    (["build", "nonexistent_model", "-o", "x.tfe"], "neither an ONNX file nor a zoo model"),
    (["zoo", "info", "resnet5"], "resnet50"),
    (["bench", "tiny_cnn", "--batch", "a,b"], "comma-separated integers"),
    (["bench", "tiny_cnn", "--streams", "0"], "--streams takes positive integers"),
])
def test_errors_are_one_line_no_traceback(capsys, argv, pattern):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert err.startswith("error: ") and "Traceback" not in err
    assert pattern in err


def test_run_rejects_wrong_dtype_file(capsys, tmp_path, engine_path):
    np.save(tmp_path / "x64.npy", np.zeros((1, 3, 16, 16), np.float64))
    code, _, err = run_cli(capsys, "run", str(engine_path), "--input", str(tmp_path / "x64.npy"))
    assert code == 2 and "expects float32 — cast the data to float32" in err


def test_run_refuses_pickled_npy(capsys, tmp_path, engine_path):
    bad = tmp_path / "obj.npy"
    np.save(bad, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    code, _, err = run_cli(capsys, "run", str(engine_path), "--input", str(bad))
    assert code == 2 and "cannot read" in err


def test_build_fp16_and_bench_precisions_side_by_side(capsys, tmp_path, conv_bn_path):
    code, out, _ = run_cli(capsys, "build", str(conv_bn_path), "--precision", "fp16", "-o", str(tmp_path / "h.tfe"))
    assert code == 0 and "precision: fp16 → fp16" in out and "passed" in out
    js = tmp_path / "p.json"
    code, out, _ = run_cli(capsys, "bench", str(conv_bn_path), "--batch", "1", "--precision", "fp32,int8",
                           "--duration", "0.1", "--warmup", "0.02", "--json", str(js))
    assert code == 0 and "FP32" in out and "INT8" in out and "random inputs" in out
    data = json.loads(js.read_text())
    assert data["schema"] == "tensorforge.bench-precisions/1"
    assert [r["model"]["precision"] for r in data["results"]] == ["fp32", "int8"]


def test_build_int8_without_calibration_is_a_clear_error(capsys, conv_bn_path, tmp_path):
    code, _, err = run_cli(capsys, "build", str(conv_bn_path), "--precision", "int8", "-o", str(tmp_path / "x.tfe"))
    assert code == 2 and "INT8 needs calibration data" in err and "Traceback" not in err


def test_build_int8_from_an_image_folder_with_preprocessing_and_cache(capsys, tmp_path, conv_bn_path):
    from PIL import Image

    images = tmp_path / "calib"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (24, 30, 3), dtype=np.uint8)).save(images / f"{i}.png")
    argv = ["build", str(conv_bn_path), "--precision", "int8", "--calib", str(images), "--calib-resize", "20",
            "--calib-crop", "16", "--calib-mean", "0.5,0.5,0.5", "--calib-std", "0.25,0.25,0.25",
            "--calib-cache", str(tmp_path / "m.calib"), "-o", str(tmp_path / "m8.tfe")]
    code, out, _ = run_cli(capsys, *argv)
    assert code == 0 and "precision: int8 → int8" in out and "6 samples" in out and "cache written" in out
    code, out, _ = run_cli(capsys, *argv)
    assert code == 0 and "cache hit" in out


def test_build_bad_preprocessing_flag_is_a_clear_error(capsys, tmp_path, conv_bn_path):
    code, _, err = run_cli(capsys, "build", str(conv_bn_path), "--precision", "int8", "--calib", "random",
                           "--calib-crop", "big", "-o", str(tmp_path / "x.tfe"))
    assert code == 2 and "--calib-crop takes N or HxW" in err


def test_build_tune_prints_candidates_and_uses_the_cache(capsys, tmp_path, conv_bn_path):
    args = ["build", str(conv_bn_path), "--tune", "latency", "--tune-budget", "3s", "--tune-backends",
            "onnxruntime", "--tune-cache", str(tmp_path / "cache"), "-o", str(tmp_path / "t.tfe"),
            "--report", str(tmp_path / "r.json")]
    code, out, _ = run_cli(capsys, *args)
    assert code == 0 and "tuning for latency at batch 1 on cpu" in out and "onnxruntime defaults" in out
    assert "winner" in out and "timing cache: stored" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["tuning"]["winner"]["backend"] == "onnxruntime"
    code, out, _ = run_cli(capsys, *args)
    assert code == 0 and "timing cache: used" in out
    code, _, err = run_cli(capsys, "build", str(conv_bn_path), "--tune", "latency", "--tune-budget", "soon",
                           "-o", str(tmp_path / "x.tfe"))
    assert code != 0 and "--tune-budget takes seconds" in err


def test_build_verbose_prints_the_build_log(tmp_path, capsys):
    """--verbose: time per stage, every pass (also the ones that changed nothing), verification, host."""
    from tensorforge.cli.main import main as cli

    assert cli(["build", "tiny_mlp", "-o", str(tmp_path / "v.tfe"), "--verbose"]) == 0
    out = capsys.readouterr().out
    log = out[out.index("build log"):]
    assert "stages: import" in log and "total" in log
    assert "dropout_removal: no change" in log and "matmul_add_fusion: matmul_add_to_gemm 2" in log
    assert "verification: batch 2 on random inputs" in log and "ISA " in log and "onnxruntime " in log
