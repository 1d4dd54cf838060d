"""StreamPool: requests really run at once, outputs keep their order, errors surface, latencies are kept."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tensorforge.core.streams import StreamPool, threads_per_worker
from tensorforge.engine.runtime import Engine
from tensorforge.errors import InputError


class Concurrency:
    """A run function that counts how many callers are inside it at once."""

    def __init__(self, barrier_parties: int | None = None) -> None:
        self.lock = threading.Lock()
        self.inside = 0
        self.max_inside = 0
        self.threads: set[int] = set()
        self.barrier = threading.Barrier(barrier_parties, timeout=5) if barrier_parties else None

    def __call__(self, feeds):
        with self.lock:
            self.inside += 1
            self.max_inside = max(self.max_inside, self.inside)
            self.threads.add(threading.get_ident())
        try:
            if self.barrier is not None:
                self.barrier.wait()     # passes only when every stream is inside at the same time
            return feeds["i"]
        finally:
            with self.lock:
                self.inside -= 1


def test_one_wave_runs_every_stream_at_once():
    fn = Concurrency(barrier_parties=3)
    with StreamPool(fn, streams=3) as pool:
        for _ in range(4):     # the threads live on between waves
            assert pool({"i": 7}) == [7, 7, 7]
    assert fn.max_inside == 3
    assert len(fn.threads) == 3 and threading.get_ident() not in fn.threads
    assert len(pool.latencies_ns) == 12 and all(t > 0 for t in pool.latencies_ns)


def test_run_many_keeps_order_and_never_exceeds_the_streams():
    fn = Concurrency()
    with StreamPool(fn, streams=2) as pool:
        assert pool.run_many([{"i": i} for i in range(10)]) == list(range(10))
        assert pool.run_many([]) == []
    assert fn.max_inside <= 2
    assert len(pool.latencies_ns) == 10


def test_single_stream_runs_on_the_caller():
    fn = Concurrency()
    with StreamPool(fn, streams=1) as pool:
        assert pool({"i": 1}) == [1]
    assert fn.threads == {threading.get_ident()}
    assert len(pool.latencies_ns) == 1


@pytest.mark.parametrize("streams", [1, 3])
def test_errors_propagate_after_every_request_finished(streams):
    done = []

    def run(feeds):
        if feeds["i"] == 1:
            raise InputError("bad request 1")
        done.append(feeds["i"])
        return feeds["i"]

    with StreamPool(run, streams=streams) as pool:
        with pytest.raises(InputError, match="bad request 1"):
            pool.run_many([{"i": i} for i in range(3)])
        if streams > 1:
            assert sorted(done) == [0, 2]       # the others were not abandoned
        assert pool.run_many([{"i": 5}]) == [5]     # a failure does not break the pool
    assert len(pool.latencies_ns) == len(done)    # failed requests are not timed


def test_reset_latencies_and_close():
    pool = StreamPool(lambda feeds: None, streams=2)
    pool({"i": 0})
    assert len(pool.latencies_ns) == 2
    pool.reset_latencies()
    assert pool.latencies_ns == []
    pool.close()
    pool.close()    # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        pool({"i": 0})
    assert all(not t.name.startswith("tf-stream") for t in threading.enumerate())


def test_bad_stream_counts():
    with pytest.raises(InputError, match="streams must be >= 1"):
        StreamPool(lambda feeds: None, streams=0)
    with pytest.raises(InputError, match="workers must be >= 1"):
        threads_per_worker(0)


def test_threads_per_worker_splits_the_cores():
    assert threads_per_worker(1, cores=8) == 8
    assert threads_per_worker(2, cores=8) == 4
    assert threads_per_worker(3, cores=8) == 2
    assert threads_per_worker(16, cores=8) == 1     # never zero
    assert threads_per_worker(1) >= 1               # the machine's physical cores


def test_streams_share_one_real_session(engine_path):
    session = Engine.load(engine_path).session(threads=1, warn_host=False)
    rng = np.random.default_rng(0)
    feeds = [{"x": rng.standard_normal((2, 3, 16, 16)).astype(np.float32)} for _ in range(6)]
    with StreamPool(session.run, streams=3) as pool:
        outputs = pool.run_many(feeds)
    for f, out in zip(feeds, outputs):
        np.testing.assert_allclose(out["y"], session.run(f)["y"], rtol=1e-5, atol=1e-6)
