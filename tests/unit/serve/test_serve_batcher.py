"""DynamicBatcher with plain functions as executors: rows, queue bounds, cancel, timeout, priority, failures.

Whatever depends on time (the queue-delay window, timeouts, queue-time accounting) runs
on a :class:`ManualClock` and is checked exactly; nothing here bounds wall-clock time.
"""

import threading
import time
from concurrent.futures import CancelledError

import numpy as np
import pytest
from batcher_clock import ManualClock

from tensorforge.errors import ConfigError, InputError, ModelUnavailable, QueueFullError, RequestTimeout
from tensorforge.serve.batching import BatcherConfig, DynamicBatcher


class Gate:
    """An executor that records what it ran and can be held shut to build up a queue."""

    def __init__(self):
        self.open = threading.Event()
        self.open.set()
        self.started = threading.Event()
        self.seen = []
        self.lock = threading.Lock()

    def __call__(self, inputs):
        with self.lock:
            self.seen.append(inputs["x"][:, 0].tolist())
        self.started.set()
        assert self.open.wait(10)
        return {"y": inputs["x"] * 2.0, "first": inputs["x"][:, :1].copy()}


def x(tag, rows=1, width=3):
    return {"x": np.full((rows, width), float(tag), np.float32)}


def test_concurrent_clients_each_get_their_own_rows():
    def execute(inputs):
        time.sleep(0.001)
        return {"y": inputs["x"] * 3.0 + 1.0}

    config = BatcherConfig(max_batch_size=16, max_queue_delay_ms=2.0, instances=2)
    with DynamicBatcher(execute, config) as batcher:
        errors = []

        def client(cid):
            rng = np.random.default_rng(cid)
            for i in range(25):
                rows = int(rng.integers(1, 6))
                data = rng.standard_normal((rows, 4)).astype(np.float32)
                out = batcher.submit({"x": data}).result(timeout=10)["y"]
                if out.shape != (rows, 4) or not np.allclose(out, data * 3.0 + 1.0):
                    errors.append((cid, i))

        threads = [threading.Thread(target=client, args=(c,)) for c in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = batcher.stats()
    assert errors == []
    assert stats["success"] == 200 and stats["batches"] < 200      # requests were merged
    assert max(stats["batch_sizes"]) <= 16


class Records:
    """An observer that keeps every batch record."""

    def __init__(self):
        self.records = []

    def batch_done(self, record):
        self.records.append(record)


def test_lone_request_on_an_idle_batcher_does_not_wait_for_the_window():
    clock, obs = ManualClock(), Records()
    with DynamicBatcher(lambda inputs: {"y": inputs["x"]}, BatcherConfig(max_queue_delay_ms=5000),
                        clock=clock, observer=obs) as batcher:
        # the manual clock never moves: a request held for the 5 s window would never complete
        assert batcher.submit(x(1)).result(timeout=5)["y"][0, 0] == 1.0
    assert obs.records[0].queue_fill_s == (0.0,)


def test_without_idle_dispatch_the_window_holds_a_lone_request_exactly():
    clock, obs = ManualClock(start=100.0), Records()
    strict = BatcherConfig(max_queue_delay_ms=300, idle_dispatch=False)  # Triton's rule: the window holds it
    with DynamicBatcher(lambda inputs: {"y": inputs["x"]}, strict, clock=clock, observer=obs) as batcher:
        seen = clock.await_waits(1)                  # the instance waits for a submission
        future = batcher.submit(x(1))
        seen = clock.await_waits(seen + 1)           # ... saw it, and waits for the window to close
        clock.advance_to(100.299)
        clock.await_waits(seen + 1)                  # ... looked again at 100.299 s and still waits
        assert not future.done()
        clock.advance_to(100.0 + 0.3)
        assert future.result(timeout=5)["y"][0, 0] == 1.0
    assert obs.records[0].queue_fill_s == (pytest.approx(0.3),)


def test_queue_full_rejects_at_once_and_counts_it():
    gate = Gate()
    gate.open.clear()
    batcher = DynamicBatcher(gate, BatcherConfig(max_batch_size=1, max_queue_delay_ms=0, max_queue_size=2))
    first = batcher.submit(x(0))
    assert gate.started.wait(5)                   # the instance is busy with request 0
    queued = [batcher.submit(x(i)) for i in (1, 2)]
    with pytest.raises(QueueFullError, match="queue full"):
        batcher.submit(x(3))
    assert batcher.stats()["rejected"] == 1 and batcher.stats()["queue_depth"] == 2
    gate.open.set()
    assert [f.result(5)["y"][0, 0] for f in [first, *queued]] == [0.0, 2.0, 4.0]
    batcher.close()


def test_cancelled_request_is_dropped_before_compute():
    gate = Gate()
    gate.open.clear()
    batcher = DynamicBatcher(gate, BatcherConfig(max_batch_size=1, max_queue_delay_ms=0))
    busy = batcher.submit(x(0))
    assert gate.started.wait(5)
    gone = batcher.submit(x(7))
    kept = batcher.submit(x(8))
    assert gone.cancel()
    gate.open.set()
    assert kept.result(5)["y"][0, 0] == 16.0 and busy.result(5)
    with pytest.raises(CancelledError):
        gone.result()
    batcher.close()
    assert [7.0] not in gate.seen and batcher.stats()["cancelled"] == 1


def test_timeout_fails_the_request_without_computing_it():
    gate = Gate()
    gate.open.clear()
    clock = ManualClock(start=100.0)
    batcher = DynamicBatcher(gate, BatcherConfig(max_batch_size=1, max_queue_delay_ms=0), clock=clock)
    batcher.submit(x(0))
    assert gate.started.wait(5)                   # the only instance is busy: nothing else waits on the clock
    late = batcher.submit(x(5), timeout_ms=30)
    seen = clock.await_waits(1)                   # the reaper waits for the deadline, 100.030 s
    clock.advance_to(100.029)
    clock.await_waits(seen + 1)                   # ... looked at 100.029 s and waits again
    assert not late.done()
    clock.advance_to(100.0 + 0.03)
    with pytest.raises(RequestTimeout, match="timed out after 30.0 ms"):
        late.result(5)                            # the reaper fails it while the instance is still busy
    gate.open.set()
    batcher.close()
    assert [5.0] not in gate.seen and batcher.stats()["timed_out"] == 1


def test_default_timeout_from_config():
    gate = Gate()
    gate.open.clear()
    batcher = DynamicBatcher(gate, BatcherConfig(max_batch_size=1, max_queue_delay_ms=0, default_timeout_ms=20))
    batcher.submit(x(0))
    assert gate.started.wait(5)
    with pytest.raises(RequestTimeout):
        batcher.submit(x(1)).result(5)
    gate.open.set()
    batcher.close()


def test_higher_priority_jumps_the_queue():
    gate = Gate()
    gate.open.clear()
    batcher = DynamicBatcher(gate, BatcherConfig(max_batch_size=1, max_queue_delay_ms=0, priority_levels=2))
    batcher.submit(x(0))
    assert gate.started.wait(5)
    low = [batcher.submit(x(10 + i), priority=1) for i in range(3)]
    high = batcher.submit(x(99), priority=0)
    gate.open.set()
    for f in [*low, high]:
        f.result(5)
    batcher.close()
    assert gate.seen == [[0.0], [99.0], [10.0], [11.0], [12.0]]


def test_fifo_dispatch_order_within_a_level():
    gate = Gate()
    gate.open.clear()
    batcher = DynamicBatcher(gate, BatcherConfig(max_batch_size=1, max_queue_delay_ms=0))
    futures = [batcher.submit(x(i)) for i in range(6)]
    gate.open.set()
    assert [f.result(5)["y"][0, 0] for f in futures] == [2.0 * i for i in range(6)]
    batcher.close()
    assert gate.seen == [[float(i)] for i in range(6)]


def test_backend_failure_fails_only_that_batch():
    def execute(inputs):
        if (inputs["x"] < 0).any():
            raise RuntimeError("kernel exploded on a negative input")
        return {"y": inputs["x"] + 1}

    with DynamicBatcher(execute, BatcherConfig(max_batch_size=1, max_queue_delay_ms=0)) as batcher:
        good = batcher.submit(x(1))
        bad = batcher.submit(x(-1))
        after = batcher.submit(x(2))
        assert good.result(5)["y"][0, 0] == 2.0
        with pytest.raises(RuntimeError, match="exploded"):
            bad.result(5)
        assert after.result(5)["y"][0, 0] == 3.0
        assert batcher.submit(x(3)).result(5)["y"][0, 0] == 4.0     # still serving
        stats = batcher.stats()
    assert stats["backend_error"] == 1 and stats["success"] == 3


def test_unsplittable_output_is_a_batch_error():
    with DynamicBatcher(lambda inputs: {"s": np.zeros(())}, BatcherConfig(max_queue_delay_ms=0)) as batcher:
        with pytest.raises(ValueError, match="batch axis"):
            batcher.submit(x(1)).result(5)


def test_instances_run_concurrently():
    barrier = threading.Barrier(2, timeout=5)

    def execute(inputs):
        barrier.wait()          # only passes if two batches run at the same time
        return {"y": inputs["x"]}

    config = BatcherConfig(max_batch_size=1, max_queue_delay_ms=0, instances=2)
    with DynamicBatcher([execute, execute], config) as batcher:
        futures = [batcher.submit(x(i)) for i in range(4)]
        assert [f.result(10)["y"][0, 0] for f in futures] == [0.0, 1.0, 2.0, 3.0]


def open_once_closing(batcher, gate):
    """Open the gate from another thread once ``close`` has begun, so ``close`` meets a busy instance."""
    def run():
        deadline = time.monotonic() + 10.0       # a hang guard only
        while not batcher.closed and time.monotonic() < deadline:
            time.sleep(0.001)
        gate.open.set()

    threading.Thread(target=run, daemon=True).start()


def test_close_drains_queued_work():
    gate = Gate()
    gate.open.clear()
    batcher = DynamicBatcher(gate, BatcherConfig(max_batch_size=2, max_queue_delay_ms=1000))
    futures = [batcher.submit(x(i)) for i in range(5)]
    assert gate.started.wait(5)                  # request 0 runs; 1-4 are queued behind the shut gate
    open_once_closing(batcher, gate)
    batcher.close(drain=True)
    assert [f.result(0)["y"][0, 0] for f in futures] == [0.0, 2.0, 4.0, 6.0, 8.0]
    with pytest.raises(ModelUnavailable):
        batcher.submit(x(9))


def test_close_without_drain_fails_queued_work():
    gate = Gate()
    gate.open.clear()
    batcher = DynamicBatcher(gate, BatcherConfig(max_batch_size=1, max_queue_delay_ms=0))
    running = batcher.submit(x(0))
    assert gate.started.wait(5)
    queued = batcher.submit(x(1))
    open_once_closing(batcher, gate)
    batcher.close(drain=False)
    assert running.result(5)["y"][0, 0] == 0.0      # a started batch completes
    with pytest.raises(ModelUnavailable):
        queued.result(0)


def test_bad_requests_and_configs():
    with DynamicBatcher(lambda i: i, BatcherConfig(max_batch_size=4, priority_levels=2)) as batcher:
        with pytest.raises(InputError, match="max_batch_size is 4"):
            batcher.submit(x(0, rows=5))
        with pytest.raises(InputError, match="priority 2 is outside"):
            batcher.submit(x(0), priority=2)
        with pytest.raises(InputError, match="timeout_ms"):
            batcher.submit(x(0), timeout_ms=-1)
    with pytest.raises(ConfigError):
        BatcherConfig(max_batch_size=0)
    with pytest.raises(ConfigError, match="preferred"):
        BatcherConfig(max_batch_size=4, preferred_batch_sizes=(8,))
    with pytest.raises(ConfigError, match="one callable per instance"):
        DynamicBatcher([lambda i: i], BatcherConfig(instances=2))
    with pytest.raises(ConfigError, match="unknown batcher setting"):
        BatcherConfig.from_dict({"max_batch": 4})
    cfg = BatcherConfig(preferred_batch_sizes=(2, 4))
    assert BatcherConfig.from_dict(cfg.to_dict()) == cfg


def test_observer_sees_batches_and_the_batcher_counts_drops():
    obs = Records()
    gate = Gate()
    gate.open.clear()
    clock = ManualClock(start=100.0)
    batcher = DynamicBatcher(gate, BatcherConfig(max_batch_size=4, max_queue_delay_ms=0, max_queue_size=1),
                             observer=obs, clock=clock)
    batcher.submit(x(0, rows=2))
    assert gate.started.wait(5)
    waiting = batcher.submit(x(1))
    with pytest.raises(QueueFullError):
        batcher.submit(x(2))
    clock.advance(0.02)                           # the first batch computes for 20 ms of the clock
    gate.open.set()
    waiting.result(5)
    batcher.close()
    assert batcher.stats()["rejected"] == 1 and batcher.stats()["success"] == 2
    assert [r.rows for r in obs.records] == [2, 1]
    first, second = obs.records
    assert first.compute_s == pytest.approx(0.02) and first.queue_fill_s == (0.0,)
    # it waited the whole 20 ms for the busy instance, none of it for the batch to fill
    assert second.queue_instance_s == (pytest.approx(0.02),) and second.queue_fill_s == (0.0,)
    assert second.error is None


def test_adapter_outcomes_are_counted_in_the_batcher():
    with DynamicBatcher(lambda inputs: {"y": inputs["x"]}, BatcherConfig()) as batcher:
        batcher.count_request("served", 0.002)
        batcher.count_request("served", 0.003)
        batcher.count_request("bad_request")
        batcher.count_request("client_gone")
        with pytest.raises(ValueError, match="unknown request outcome"):
            batcher.count_request("success")
        stats = batcher.stats()
    assert (stats["served"], stats["bad_request"], stats["client_gone"]) == (2, 1, 1)
    assert stats["served_ns"] == 5_000_000
