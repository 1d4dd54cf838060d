"""bench at several precisions: engines built per precision; an engine's fixed precision is respected."""

from __future__ import annotations

import pytest

from tensorforge.bench.runner import BenchOptions, bench
from tensorforge.engine.build import BuildOptions, build
from tensorforge.errors import InputError

FAST = dict(batches=(1,), duration_s=0.05, warmup_s=0.01, min_iterations=2, rounds=2)


def test_int8_bench_builds_with_random_calibration_and_says_so(conv_bn_path):
    result = bench(conv_bn_path, BenchOptions(precision="int8", **FAST))
    assert result.model["precision"] == "int8"
    assert any("random inputs" in w for w in result.warnings)
    assert result.options["precision"] == "int8"


def test_engine_precision_is_fixed(conv_bn_path, tmp_path):
    engine, _ = build(conv_bn_path, tmp_path / "h.tfe", BuildOptions(precision="fp16"))
    assert bench(tmp_path / "h.tfe", BenchOptions(precision="fp16", **FAST)).model["precision"] == "fp16"
    with pytest.raises(InputError, match="fp16 engine; its precision is fixed"):
        bench(tmp_path / "h.tfe", BenchOptions(precision="int8", **FAST))


def test_best_is_not_a_bench_precision():
    with pytest.raises(InputError, match="needs held-out data"):
        BenchOptions(precision="best")
