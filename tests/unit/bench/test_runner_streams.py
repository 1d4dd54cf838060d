"""bench --streams: one row per (batch, streams), counted per request, the peer on the same streams."""

from __future__ import annotations

import json

import onnx
import pytest

import tensorforge.bench.runner as runner
from tensorforge.bench import footprint
from tensorforge.bench.runner import BenchOptions, bench, streams_from_text
from tensorforge.core.streams import threads_per_worker
from tensorforge.core.timing import Timer
from tensorforge.errors import InputError, ResourceError

FAST = dict(duration_s=0.1, warmup_s=0.01, min_iterations=3, rounds=2)


def test_streams_rows_in_json(conv_bn_path):
    result = bench(conv_bn_path, BenchOptions(batches=(1, 2), streams=(1, 2), baseline=True, **FAST))
    d = json.loads(json.dumps(result.to_dict()))
    assert d["options"]["streams"] == [1, 2]
    assert [(r["batch"], r["streams"]) for r in d["rows"]] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    for r in d["rows"]:
        e = r["engine"]
        assert e["throughput_sps"] > 0
        # iterations count requests: whole waves of `streams`, each request timed once
        assert e["iterations"] % r["streams"] == 0 and e["iterations"] >= 3 * r["streams"]
        assert e["latency"]["count"] == e["iterations"]
        assert e["throughput_sps"] == pytest.approx(r["batch"] * e["iterations"] / e["wall_s"], rel=1e-3)
        assert "spread_pct" in e["noise"] and "noisy" in e["noise"]
        assert r["baseline"]["iterations"] % r["streams"] == 0
        # the verdict agrees with the median speedup: every round won (or lost) puts the median above (below) 1
        speedup, verdict = r["speedup_vs_baseline"], r["verdict_vs_baseline"]
        assert {"faster": speedup > 1, "slower": 0 < speedup < 1, "same": speedup > 0}[verdict]
    single, multi = d["rows"][0], d["rows"][1]
    assert single["threads"] is None and multi["threads"] == threads_per_worker(2)
    assert multi["estimated_bytes"] > single["estimated_bytes"]      # a second stream's activations
    assert "streams" in d["libraries"]["baseline"]


def test_default_is_one_stream_as_before(conv_bn_path):
    assert BenchOptions().streams == (1,)
    result = bench(conv_bn_path, BenchOptions(batches=(1,), **FAST))
    row = result.rows[0]
    assert row.streams == 1 and row.engine.latency["count"] == row.engine.iterations


def test_threads_given_are_kept_for_every_stream_count(conv_bn_path):
    result = bench(conv_bn_path, BenchOptions(batches=(1,), streams=(3,), threads=1, **FAST))
    assert result.rows[0].threads == 1 and result.rows[0].streams == 3


def test_streams_options_validated():
    assert BenchOptions(streams=2).streams == (2,)      # a lone int or a list is accepted
    assert BenchOptions(streams=[1, 2]).streams == (1, 2)
    for bad in ((), (0,), (1, -2)):
        with pytest.raises(InputError, match="streams must be positive integers"):
            BenchOptions(streams=bad)
    assert streams_from_text("1, 2,4") == (1, 2, 4)
    for bad in ("", "two", "0"):
        with pytest.raises(InputError, match="--streams"):
            streams_from_text(bad)


def test_memory_refusal_names_the_streams(conv_bn_path, monkeypatch):
    one = footprint.estimate_bytes(onnx.load(conv_bn_path), 1)
    monkeypatch.setattr(runner, "available_memory_bytes", lambda: int(one * 50 / runner.MEMORY_SAFETY))
    with pytest.raises(ResourceError, match="batch 1 × 10000 streams .* or fewer streams"):
        bench(conv_bn_path, BenchOptions(batches=(1,), streams=(1, 10_000), **FAST))


def test_timer_counts_requests_per_call():
    t = Timer(lambda feeds: None, requests_per_call=4)
    t.run_for({}, 0.0, min_iterations=5)
    m = t.measurement(batch=2, threshold_pct=10.0, request_latencies_ns=[1_000_000] * 20)
    assert m.iterations == 20 and m.latency["count"] == 20 and m.latency["p50_ms"] == 1.0
    assert m.throughput_sps == pytest.approx(2 * 20 / (t.wall_ns / 1e9), rel=1e-3)
    # round rates are requests per second, so a 4-stream contender compares with a 1-stream one
    assert t.round_rates[0] == pytest.approx(20 * 1e9 / t.wall_ns)
    with pytest.raises(ValueError, match="requests_per_call"):
        Timer(lambda feeds: None, requests_per_call=0)
