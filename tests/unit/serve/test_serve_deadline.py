"""Deadline-aware batching on a fake clock: the batch curve, shedding, "never later than needed", growth caps.

The scheduler is pure (times passed in); the batcher runs on a :class:`ManualClock`. Nothing
here reads the real time or bounds how long anything takes.
"""

from concurrent.futures import Future

import numpy as np
import pytest
from batcher_clock import ManualClock

from tensorforge.core.specs import TensorSpec
from tensorforge.errors import ConfigError, DeadlineUnmeetable, QueueFullError
from tensorforge.serve.batch_curve import BatchCurve, curve_sizes, measure_at_load
from tensorforge.serve.batching import BatcherConfig, DynamicBatcher
from tensorforge.serve.merge import signature
from tensorforge.serve.scheduling import BatchScheduler, QueuedRequest

MS = 0.001


def req(rows=1, t=0.0, deadline=None, tag=0, width=2):
    inputs = {"x": np.full((rows, width), tag, np.float32)}
    return QueuedRequest(inputs=inputs, rows=rows, priority=0, future=Future(), arrival_s=t,
                         deadline_s=deadline, signature=signature(inputs))


def tags(batch):
    return [int(r.inputs["x"][0, 0]) for r in batch]


# -- the curve ------------------------------------------------------------------------------------
def test_curve_interpolates_extrapolates_and_refreshes():
    curve = BatchCurve({1: 4 * MS, 4: 10 * MS, 8: 18 * MS})
    assert curve.compute_s(4) == pytest.approx(10 * MS)
    assert curve.compute_s(2) == pytest.approx(6 * MS)            # between 1 and 4
    assert curve.compute_s(6) == pytest.approx(14 * MS)           # between 4 and 8
    assert curve.compute_s(16) == pytest.approx(34 * MS)          # past 8, along the last segment
    curve.observe(4, 20 * MS)                                     # EWMA, alpha 0.2
    assert curve.compute_s(4) == pytest.approx(12 * MS) and curve.observed == 1
    curve.observe(2, 5 * MS)                                      # a new size starts at its timing
    assert curve.points() == pytest.approx({1: 4 * MS, 2: 5 * MS, 4: 12 * MS, 8: 18 * MS})
    curve.observe(2, float("nan"))                                # a broken timing is ignored
    assert curve.compute_s(2) == pytest.approx(5 * MS)
    assert curve.throughput_gain(8) == pytest.approx((8 / 18) / (1 / 4))


def test_curve_with_one_point_or_none():
    assert not BatchCurve().known and BatchCurve().compute_s(8) == 0.0
    one = BatchCurve({2: 6 * MS})
    assert one.compute_s(4) == pytest.approx(12 * MS) and one.compute_s(1) == pytest.approx(3 * MS)


def test_curve_measure_times_each_size_on_the_given_clock():
    ticks = iter(np.arange(0.0, 100.0, 0.5))
    ran = []

    def execute(feeds):
        ran.append(feeds["x"].shape[0])
        return {}

    curve = BatchCurve.measure(execute, {"x": np.ones((3, 2), np.float32)}, [4, 1], repeats=2,
                               clock=lambda: float(next(ticks)))
    assert ran == [1, 1, 1, 4, 4, 4]                              # a warm-up, then the repeats, per size
    assert curve.points() == {1: 0.5, 4: 0.5}


def test_measure_at_load_times_random_inputs_of_the_specs():
    shapes = []

    def execute(feeds):
        shapes.append(feeds["x"].shape)
        return {"y": feeds["x"]}

    assert curve_sizes(8) == [1, 2, 8] and curve_sizes(1) == [1] and curve_sizes(32) == [1, 2, 8, 32]
    curve = measure_at_load(execute, [TensorSpec("x", "float32", ("N", 3))], 8, repeats=1)
    assert sorted(set(shapes)) == [(1, 3), (2, 3), (8, 3)]
    assert sorted(curve.points()) == [1, 2, 8] and curve.observed == 0


def test_curve_rejects_bad_points():
    with pytest.raises(ConfigError, match="rows >= 1"):
        BatchCurve({0: 1.0})
    with pytest.raises(ConfigError, match="alpha"):
        BatchCurve(alpha=0.0)
    with pytest.raises(ConfigError, match="sizes"):
        BatchCurve.measure(lambda f: f, {"x": np.ones((1, 1))}, [])


# -- the scheduler ----------------------------------------------------------------------------------
def test_sheds_what_cannot_finish_in_time_even_alone():
    s = BatchScheduler(8, 100.0, curve=BatchCurve({1: 9 * MS, 8: 20 * MS}))    # batching pays: the kept one waits
    late, ok = req(deadline=50 * MS, tag=1), req(deadline=100 * MS, tag=2)
    s.push(late)
    s.push(ok)
    d = s.poll(42 * MS)                   # 42 + 9 > 50: shed; 42 + 9 <= 100: kept
    assert d.shed == [late] and d.expired == [] and d.batch == []
    assert len(s) == 1


def test_an_idle_batcher_runs_the_oldest_doomed_request_instead_of_shedding_everything():
    s = BatchScheduler(8, 100.0, curve=BatchCurve({1: 9 * MS}))
    first, second = req(deadline=5 * MS, tag=1), req(deadline=6 * MS, tag=2)
    s.push(first)
    s.push(second)
    d = s.poll(0.0, idle=True)            # nothing runs, nothing else is live: the oldest runs, the rest is shed
    assert d.batch == [first] and d.probe and d.shed == [second] and len(s) == 0
    s.push(third := req(deadline=5 * MS, tag=3))
    d = s.poll(0.0, idle=False)           # a batch is running: shed
    assert d.batch == [] and d.shed == [third] and not d.probe
    s.push(fourth := req(deadline=5 * MS, tag=4))
    d = s.poll(0.0, idle=False, quiet=True)   # Triton's rule (idle False), but nothing runs: still a probe
    assert d.batch == [fourth] and d.probe


def test_waits_no_later_than_the_tightest_members_latest_start():
    curve = BatchCurve({1: 4 * MS, 2: 6 * MS, 8: 20 * MS})
    s = BatchScheduler(8, 100.0, curve=curve)             # a 100 ms window alone would hold it far longer
    s.push(req(t=0.0, deadline=50 * MS, tag=1))
    d = s.poll(0.0)
    assert d.batch == [] and d.wake_at_s == pytest.approx(50 * MS - 6 * MS - 1 * MS)   # − compute(2) − margin
    s.push(req(t=10 * MS, deadline=200 * MS, tag=2))      # a looser companion: the tightest still rules
    d = s.poll(10 * MS)
    assert d.wake_at_s == pytest.approx(50 * MS - curve.compute_s(3) - 1 * MS)
    d = s.poll(d.wake_at_s)
    assert tags(d.batch) == [1, 2] and d.early


def test_growth_stops_when_a_member_would_miss_its_deadline():
    s = BatchScheduler(8, 100.0, curve=BatchCurve({1: 10 * MS, 2: 15 * MS, 8: 30 * MS}))
    s.push(req(deadline=20 * MS, tag=1))
    s.push(req(deadline=500 * MS, tag=2))
    s.push(req(deadline=500 * MS, tag=3))
    d = s.poll(10 * MS)                   # together: 10 + 15 > 20 — request 1 goes alone, at once
    assert tags(d.batch) == [1] and d.early
    d = s.poll(10 * MS)                   # 2 and 3 are loose: they wait to grow
    assert d.batch == [] and d.wake_at_s == pytest.approx(100 * MS)


def test_no_wait_for_companions_when_the_curve_is_linear():
    """A linear curve (each row costs the same, as on many CPUs): a companion would not lower the cost per
    sample, so a request that finds a free instance goes at once instead of waiting out the window."""
    s = BatchScheduler(8, 100.0, curve=BatchCurve({1: 20 * MS, 8: 160 * MS}))
    s.push(req(t=0.0, deadline=1.0, tag=1))
    d = s.poll(0.0)                        # not idle (another batch runs), deadline far: still no reason to wait
    assert tags(d.batch) == [1] and d.early
    s = BatchScheduler(8, 100.0, curve=BatchCurve({1: 20 * MS, 8: 40 * MS}))     # batching pays: it waits
    s.push(req(t=0.0, deadline=1.0, tag=1))
    assert s.poll(0.0).batch == []


def test_queued_requests_batch_only_as_far_as_the_curve_gains():
    """With deadlines, the batch takes the queued requests while each cuts the time per sample: all of them on
    a curve that gains, one at a time on a linear one (each then ends sooner than in one big batch)."""
    for points, expected in (({1: 20 * MS, 8: 160 * MS}, [0]), ({1: 20 * MS, 8: 40 * MS}, [0, 1, 2, 3])):
        s = BatchScheduler(8, 0.0, curve=BatchCurve(points))          # delay 0: dispatch at once
        for i in range(4):
            s.push(req(deadline=1.0, tag=i))
        assert tags(s.poll(0.0).batch) == expected
    s = BatchScheduler(8, 0.0, curve=BatchCurve({1: 20 * MS, 8: 160 * MS}))   # no deadlines: unchanged
    for i in range(4):
        s.push(req(tag=i))
    assert tags(s.poll(0.0).batch) == [0, 1, 2, 3]


def test_window_still_bounds_the_wait_with_deadlines():
    s = BatchScheduler(8, 5.0, curve=BatchCurve({1: 1 * MS, 8: 2 * MS}))
    s.push(req(deadline=1.0, tag=1))
    assert s.poll(0.0).wake_at_s == pytest.approx(5 * MS)
    d = s.poll(5 * MS)
    assert tags(d.batch) == [1] and not d.early


def test_without_deadlines_a_curve_changes_nothing():
    for curve in (None, BatchCurve({1: 30 * MS, 8: 200 * MS})):
        s = BatchScheduler(4, 10.0, preferred_batch_sizes=(2,), curve=curve)
        for i in range(2):
            s.push(req(tag=i))
        assert tags(s.poll(0.0).batch) == [0, 1]          # preferred size: at once
        s.push(req(tag=2))
        d = s.poll(0.001)
        assert d.batch == [] and d.wake_at_s == pytest.approx(0.010) and not d.shed
        d = s.poll(0.010)
        assert tags(d.batch) == [2] and not d.early


# -- the batcher ------------------------------------------------------------------------------------
def x(tag):
    return {"x": np.full((1, 3), float(tag), np.float32)}


def test_slo_and_timeouts_validate():
    with pytest.raises(ConfigError, match="slo_ms"):
        BatcherConfig(slo_ms=0)
    assert BatcherConfig(slo_ms=50, default_timeout_ms=80).default_deadline_ms() == 50
    assert BatcherConfig(slo_ms=50, default_timeout_ms=20).default_deadline_ms() == 20
    assert BatcherConfig().default_deadline_ms() is None


def test_batcher_sheds_with_a_503_error_before_compute():
    from tensorforge.serve.core import error_status

    clock = ManualClock(start=100.0)
    ran = []

    def execute(inputs):
        ran.append(float(inputs["x"][0, 0]))
        return {"y": inputs["x"]}

    config = BatcherConfig(max_batch_size=8, max_queue_delay_ms=100, slo_ms=50, idle_dispatch=False)
    with DynamicBatcher(execute, config, clock=clock, curve=BatchCurve({1: 9 * MS, 2: 12 * MS})) as batcher:
        seen = clock.await_waits(1)
        kept = batcher.submit(x(2))                      # slo 50 ms: may wait until 50 − 12 − 1 = 37 ms
        seen = clock.await_waits(seen + 2, sleeping=2)   # the instance and the timeout reaper both wait
        doomed = batcher.submit(x(1), timeout_ms=5)      # its own timeout: 5 ms, under compute(1) = 9 ms
        with pytest.raises(DeadlineUnmeetable, match=r"deadline 5 ms cannot be met: 0 ms queued \+ 9 ms compute"):
            doomed.result(5)
        seen = clock.await_waits(seen + 2, sleeping=2)
        clock.advance_to(100.036)
        clock.await_waits(seen + 2, sleeping=2)
        assert not kept.done()
        clock.advance_to(100.037)
        assert kept.result(5)["y"][0, 0] == 2.0
        stats = batcher.stats()
    assert ran == [2.0]
    assert stats["shed"] == 1 and stats["dispatched_early"] == 1 and stats["probes"] == 0
    assert stats["batch_curve"]["observed"] == 1           # the live batch refreshed the curve
    assert error_status(DeadlineUnmeetable("x")) == (503, "UNAVAILABLE")
    assert issubclass(DeadlineUnmeetable, QueueFullError)


def test_batcher_learns_its_curve_from_live_batches():
    clock = ManualClock(start=100.0)

    def execute(inputs):
        clock.advance(0.004 * inputs["x"].shape[0])        # "compute" moves the manual clock
        return {"y": inputs["x"]}

    with DynamicBatcher(execute, BatcherConfig(max_batch_size=4, max_queue_delay_ms=0), clock=clock) as batcher:
        for i in range(3):
            batcher.submit(x(i)).result(5)
        curve = batcher.stats()["batch_curve"]
    assert curve["observed"] == 3 and curve["points_ms"] == {"1": pytest.approx(4.0)}


def test_no_deadline_no_shedding_even_with_a_slow_curve():
    clock = ManualClock(start=100.0)
    config = BatcherConfig(max_batch_size=4, max_queue_delay_ms=0)
    with DynamicBatcher(lambda i: {"y": i["x"]}, config, clock=clock, curve=BatchCurve({1: 10.0})) as batcher:
        assert batcher.submit(x(3)).result(5)["y"][0, 0] == 3.0
        assert batcher.stats()["shed"] == 0 and batcher.stats()["dispatched_early"] == 0


def test_a_curve_too_pessimistic_recovers_through_probes_on_an_idle_batcher():
    clock = ManualClock(start=100.0)

    def execute(inputs):
        clock.advance(0.004)                               # the real compute: 4 ms
        return {"y": inputs["x"]}

    config = BatcherConfig(max_batch_size=4, max_queue_delay_ms=0, slo_ms=50)
    with DynamicBatcher(execute, config, clock=clock, curve=BatchCurve({1: 0.100})) as batcher:
        for i in range(8):                                 # one at a time: the batcher is idle at each
            assert batcher.submit(x(i)).result(5)["y"][0, 0] == float(i)
        stats = batcher.stats()
    assert stats["shed"] == 0 and 1 <= stats["probes"] < 8   # probes until the curve came under the SLO
    assert stats["batch_curve"]["points_ms"]["1"] < 50
