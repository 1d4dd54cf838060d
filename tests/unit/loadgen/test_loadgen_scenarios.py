"""The four scenarios, timed exactly on simulated time (:mod:`loadgen_sim`), plus the real batcher end to end.

Latency figures are checked only on the simulated clock, where they are exact; the runs
against the real :class:`BatcherTarget` check structure (request sizes, counts, lower
bounds that a sleep guarantees), never an upper bound on wall-clock time.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from loadgen_sim import SimClock, SimTarget

from tensorforge.errors import InputError
from tensorforge.loadgen.scenarios import ScenarioSettings, run_scenario
from tensorforge.loadgen.targets import BatcherTarget, NoopTarget, open_target
from tensorforge.loadgen.verdict import summarize
from tensorforge.serve.batching import BatcherConfig


def run(target, **kw):
    kw.setdefault("warmup_s", 0.05)
    kw.setdefault("min_duration_s", 0.3)
    settings = ScenarioSettings(**kw)
    return summarize(run_scenario(target, settings), target.describe())


@pytest.fixture
def sleep2():
    """One simulated instance, 2 ms per sample: capacity exactly 500 queries/s."""
    return SimTarget.per_sample(SimClock(), 2.0)


def test_single_stream_reports_the_service_time(sleep2):
    r = run(sleep2, scenario="single-stream")
    assert r.valid, r.reasons
    # 0.3 s of 2 ms queries: the 151st is the first issued at >= 0.3 s after the start
    assert r.query_count == 151 and r.metric_unit == "ms"
    assert r.metric_value == pytest.approx(2.0, abs=1e-9)
    assert r.early_stopping.met
    assert r.throughput_qps == pytest.approx(500.0)    # closed loop: one at a time
    assert r.lateness is None


def test_multi_stream_p99_of_8_sample_queries():
    # 0.25 ms per sample, batches up to 8: a query of 8 samples is one request of exactly 2 ms
    target = SimTarget.per_sample(SimClock(), 0.25, max_batch=8)
    r = run(target, scenario="multi-stream")
    assert r.valid, r.reasons
    assert r.query_count == 662 and r.sample_count == 8 * r.query_count and r.percentile == 0.99
    assert r.metric_value == pytest.approx(2.0, abs=1e-9)
    assert {batch for _, batch in target.requests} == {8}


def test_multi_stream_query_goes_through_the_real_batcher_as_one_request():
    target = BatcherTarget.sleeping(0.25, BatcherConfig(max_batch_size=8, max_queue_delay_ms=0))
    try:
        r = run(target, scenario="multi-stream", max_query_count=40, warmup_s=0)
        stats = target.batcher_stats()
    finally:
        target.close()
    assert r.query_count == 40 and r.sample_count == 320 and r.error_count == 0
    assert r.latency.min_ms >= 2.0                    # 8 samples × a 0.25 ms sleep: never faster
    assert set(stats["batch_sizes"]) == {8} and stats["rows"] == 320   # each query went as one request


def test_multi_stream_query_splits_over_a_smaller_max_batch():
    target = BatcherTarget.sleeping(0.1, BatcherConfig(max_batch_size=3, max_queue_delay_ms=0))
    try:
        r = run(target, scenario="multi-stream", max_query_count=20, warmup_s=0)
        stats = target.batcher_stats()
    finally:
        target.close()
    assert r.query_count == 20 and r.sample_count == 160
    assert stats["rows"] == 160 and set(stats["batch_sizes"]) <= {1, 2, 3}
    assert not r.valid and any(c.name == "min_queries" and not c.passed for c in r.checks)


def test_server_under_capacity_is_valid(sleep2):
    r = run(sleep2, scenario="server", target_qps=100.0, latency_bound_ms=50.0, percentile=0.9)
    assert r.valid, r.reasons
    assert r.offered_qps == pytest.approx(100.0, rel=0.35)    # a Poisson draw of ~64 arrivals
    assert r.latency.min_ms == pytest.approx(2.0, abs=1e-9)  # a query that found the server free
    assert 2.0 <= r.percentile_latency_ms < 50.0
    assert r.lateness.late_count == 0                         # the simulated pacer is never late


def test_server_over_capacity_is_invalid_and_latency_counts_from_the_schedule(sleep2):
    # twice the capacity: the queue grows for the whole run; a closed-loop timer would still say ~2 ms
    r = run(sleep2, scenario="server", target_qps=1000.0, latency_bound_ms=20.0, percentile=0.9,
            min_duration_s=0.4)
    assert not r.valid
    failed = {c.name for c in r.checks if not c.passed}
    assert {"latency_bound", "early_stopping"} <= failed
    assert r.latency.p99_ms > 100.0
    assert r.throughput_qps == pytest.approx(500.0, rel=0.01)   # served at capacity, not at the offer
    assert any("reduce the target QPS" in why for why in r.reasons)


def test_no_coordinated_omission_a_stall_shows_in_the_queries_behind_it():
    # 1 ms per query, but the 60th takes 251 ms: one 250 ms hiccup
    target = SimTarget(SimClock(), lambda batch, i: 251_000_000 if i == 59 else 1_000_000)
    r = run(target, scenario="server", target_qps=200.0, latency_bound_ms=50.0, percentile=0.9,
            warmup_s=0, min_duration_s=0.8)
    # ~50 arrivals land during the stall; each waits for it, measured from its scheduled time
    assert np.count_nonzero(r.latencies_ns > 100_000_000) >= 20
    assert r.latency.max_ms > 250.0


def test_offline_throughput_is_the_capacity():
    # batches of 8 at 0.5 ms per sample: exactly 2000 samples/s on one instance
    target = SimTarget.per_sample(SimClock(), 0.5, max_batch=8)
    r = run(target, scenario="offline", min_duration_s=0.5)
    assert r.valid, r.reasons
    assert r.metric_unit == "samples/s" and r.metric_value == pytest.approx(2000.0)
    assert r.settings["offline_sample_count"] == r.sample_count
    assert r.settings["samples_per_query"] == 8


def test_errors_make_the_run_invalid():
    # a queue of one request, offered far more than it holds: submissions are refused
    target = BatcherTarget.sleeping(2.0, BatcherConfig(max_batch_size=1, max_queue_delay_ms=0, max_queue_size=1))
    try:
        r = run(target, scenario="server", target_qps=2000.0, latency_bound_ms=1000.0, percentile=0.9,
                min_duration_s=0.1, warmup_s=0)
    finally:
        target.close()
    assert not r.valid and r.error_count > 0
    assert any(why.startswith("errors:") and "QueueFullError" in why for why in r.reasons)
    assert r.latency is None or r.latency.count == r.query_count - r.error_count


def test_late_sends_are_counted_when_the_generator_cannot_keep_up():
    # real clock on purpose: 0.5 µs between sends is beyond any machine, so some sends are late
    r = run(NoopTarget(), scenario="server", target_qps=2_000_000.0, latency_bound_ms=1000.0,
            min_duration_s=0.05, min_query_count=1, warmup_s=0)
    assert r.lateness.late_count > 0
    assert any("scheduled time" in w for w in r.warnings)


def test_short_runs_are_invalid_with_the_reason():
    # simulated: ten 1 ms queries last exactly 10 ms, whatever else the machine is doing
    r = run(SimTarget.per_sample(SimClock(), 1.0), scenario="single-stream", max_query_count=10, warmup_s=0)
    names = {c.name for c in r.checks if not c.passed}
    assert names == {"min_queries", "min_duration", "early_stopping"}
    assert any("needs at least 64" in why for why in r.reasons)


def test_completion_callbacks_from_many_threads_are_all_recorded():
    class ThreadedTarget(NoopTarget):
        def issue(self, tag, batch, done, feeds=None):
            threading.Timer(0.0005, done, args=(tag, None, None)).start()

    r = run(ThreadedTarget(), scenario="server", target_qps=3000.0, latency_bound_ms=100.0, percentile=0.9,
            min_duration_s=0.2, warmup_s=0)
    assert r.error_count == 0 and r.latency.count == r.query_count


@pytest.mark.parametrize("kw", [dict(scenario="server", latency_bound_ms=10.0),
                                dict(scenario="server", target_qps=10.0),
                                dict(scenario="bogus"), dict(percentile=99.0), dict(min_duration_s=-1.0),
                                dict(scenario="server", target_qps=-5.0, latency_bound_ms=1.0)])
def test_bad_settings_raise_input_error(kw):
    with pytest.raises(InputError):
        ScenarioSettings(**kw)


def test_open_target_strings():
    assert open_target("noop").kind == "noop"
    t = open_target("sleep:1.5ms")
    try:
        assert t.describe()["service_ms_per_sample"] == 1.5
    finally:
        t.close()
    with pytest.raises(InputError):
        open_target("sleep:fast")
    with pytest.raises(InputError, match="model=NAME"):
        open_target("http://127.0.0.1:1")
    with pytest.raises(InputError):
        open_target("noop", model="m")


def test_in_process_engine_target_runs_a_real_model(engine_path):
    from tensorforge.engine.runtime import Engine

    target = BatcherTarget.from_engine(Engine.load(engine_path), BatcherConfig(max_batch_size=4, max_queue_delay_ms=1))
    try:
        r = run(target, scenario="offline", min_duration_s=0.2)
        # the one query is sized from the warm-up's measured rate, so whether it lasts the minimum duration
        # depends on how steady the machine is: that check is the only one left out
        assert {c.name for c in r.checks if not c.passed} <= {"min_duration"}, r.reasons
        assert r.error_count == 0 and r.sample_count == r.settings["offline_sample_count"] >= 4
        assert target.batcher_stats()["success"] >= r.query_count
    finally:
        target.close()
