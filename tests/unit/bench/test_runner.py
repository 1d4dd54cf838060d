"""bench on a tiny real model: JSON schema, baseline in the same run, refusals."""

from __future__ import annotations

import json

import pytest

from tensorforge.bench import footprint
from tensorforge.bench.runner import BenchOptions, batches_from_text, bench
from tensorforge.errors import InputError, ResourceError

FAST = dict(duration_s=0.2, warmup_s=0.02, min_iterations=3, rounds=2)


def test_bench_json_schema(conv_bn_path):
    result = bench(conv_bn_path, BenchOptions(batches=(1, 4), baseline=True, **FAST))
    d = json.loads(json.dumps(result.to_dict()))
    assert d["schema"] == "tensorforge.bench/1"
    for key in ("model", "options", "host", "libraries", "power_source", "rows", "warnings"):
        assert key in d
    assert [r["batch"] for r in d["rows"]] == [1, 4]
    for r in d["rows"]:
        e = r["engine"]
        assert e["throughput_sps"] > 0 and e["iterations"] >= 3
        lat = e["latency"]
        assert lat["min_ms"] <= lat["p50_ms"] <= lat["p90_ms"] <= lat["p95_ms"] <= lat["p99_ms"] <= lat["max_ms"]
        assert "spread_pct" in e["noise"]
        assert r["baseline"]["throughput_sps"] > 0
        # the verdict agrees with the median speedup: every round won (or lost) puts the median above (below) 1
        speedup, verdict = r["speedup_vs_baseline"], r["verdict_vs_baseline"]
        assert {"faster": speedup > 1, "slower": 0 < speedup < 1, "same": speedup > 0}[verdict]
        assert r["peak_rss_bytes"] > 0
        # power: either a real reading or an explicit reason, never an invented number
        if r["power_w"] is None:
            assert r["power"]["unavailable"] and r["perf_per_watt"] is None and r["energy_j_per_sample"] is None
    assert "baseline" in d["libraries"]


def test_engine_file_bench_finds_original(engine_path):
    result = bench(engine_path, BenchOptions(batches=(2,), baseline=True, **FAST))
    assert result.rows[0].baseline is not None


def test_zoo_name_bench():
    result = bench("tiny_mlp", BenchOptions(batches=(1,), **FAST))
    assert result.model["name"] == "tiny_mlp"


def test_oversized_batch_refused_up_front(conv_bn_path, monkeypatch):
    import tensorforge.bench.runner as runner

    monkeypatch.setattr(runner, "available_memory_bytes", lambda: 64 * 2**20)
    with pytest.raises(ResourceError, match="batch 1000000 .* needs an estimated"):
        bench(conv_bn_path, BenchOptions(batches=(1, 1_000_000), **FAST))


def test_fixed_batch_model_refuses_other_batches(tmp_path):
    import onnx

    from conftest import make_conv_bn_model

    path = tmp_path / "b1.onnx"
    onnx.save(make_conv_bn_model(batch=1), path)
    with pytest.raises(InputError, match="fixed batch of 1.*--max-batch"):
        bench(path, BenchOptions(batches=(1, 8), **FAST))


def test_batches_from_text():
    assert batches_from_text("1,2, 8") == (1, 2, 8)
    for bad in ("", "a,b", "0", "-1"):
        with pytest.raises(InputError):
            batches_from_text(bad)


def test_footprint_estimate_scales_with_batch(conv_bn_model):
    per = footprint.per_sample_activation_bytes(conv_bn_model)
    # conv output 8x16x16 float32 = 8 KiB lives at the peak, together with the input (3 KiB)
    assert per >= 8 * 16 * 16 * 4
    assert footprint.estimate_bytes(conv_bn_model, 10) > footprint.estimate_bytes(conv_bn_model, 1)

