"""The batching policy, on a fake clock: windows, full batches, preferred sizes, priorities, expiry, skip-ahead.

Deadlines (rules 4-5) are in test_serve_deadline.py.
"""

from concurrent.futures import Future

import numpy as np

from tensorforge.serve.merge import signature
from tensorforge.serve.scheduling import BatchScheduler, QueuedRequest


def req(rows=1, t=0.0, priority=0, width=2, deadline=None, tag=0):
    inputs = {"x": np.full((rows, width), tag, np.float32)}
    return QueuedRequest(inputs=inputs, rows=rows, priority=priority, future=Future(), arrival_s=t,
                         deadline_s=deadline, signature=signature(inputs))


def tags(batch):
    return [int(r.inputs["x"][0, 0]) for r in batch]


def test_empty_queue_waits_for_a_submission():
    d = BatchScheduler(8, 10.0).poll(1.0)
    assert d.batch == [] and d.wake_at_s is None


def test_waits_for_the_window_then_sends_what_it_has():
    s = BatchScheduler(8, 10.0)
    s.push(req(t=1.000, tag=1))
    s.push(req(rows=2, t=1.004, tag=2))
    d = s.poll(1.005)
    assert d.batch == [] and abs(d.wake_at_s - 1.010) < 1e-9
    d = s.poll(1.010)
    assert tags(d.batch) == [1, 2] and len(s) == 0


def test_zero_delay_sends_at_once():
    s = BatchScheduler(8, 0.0)
    s.push(req(tag=1))
    assert tags(s.poll(0.0).batch) == [1]


def test_full_batch_goes_at_once_and_overflow_stays_in_order():
    s = BatchScheduler(4, 1000.0)
    for i, rows in enumerate([2, 1, 2, 1]):
        s.push(req(rows=rows, tag=i))
    d = s.poll(0.0)               # 2+1 = 3, next (2) would not fit: full → now
    assert tags(d.batch) == [0, 1]
    d = s.poll(0.0)               # 2+1 = 3 of 4, window still open
    assert d.batch == [] and d.wake_at_s == 1.0
    s.push(req(rows=1, tag=9))    # reaches max_batch_size 4
    assert tags(s.poll(0.0).batch) == [2, 3, 9]


def test_exact_max_goes_at_once():
    s = BatchScheduler(3, 1000.0)
    s.push(req(rows=3, tag=5))
    assert tags(s.poll(0.0).batch) == [5]


def test_preferred_size_goes_at_once_and_prefix_at_window_end():
    s = BatchScheduler(8, 10.0, preferred_batch_sizes=(2, 4))
    s.push(req(tag=1))
    assert s.poll(0.0).batch == []
    s.push(req(tag=2))
    assert tags(s.poll(0.0).batch) == [1, 2]        # 2 is preferred: no wait
    for i in range(3):
        s.push(req(tag=10 + i))                     # 3 rows: not preferred
    assert s.poll(0.001).batch == []
    assert tags(s.poll(0.011).batch) == [10, 11]    # window over: largest preferred prefix (2)
    assert tags(s.poll(0.011).batch) == [12]        # the rest is overdue: goes next


def test_other_keys_are_skipped_not_blocking_and_stay_queued():
    s = BatchScheduler(8, 10.0)
    s.push(req(width=2, tag=1))
    s.push(req(width=3, tag=2))
    s.push(req(width=2, tag=3))
    d = s.poll(0.0)
    assert d.batch == [] and d.wake_at_s == 0.010   # the width-3 request does not cut the width-2 batch short
    assert tags(s.poll(0.010).batch) == [1, 3]      # skipped ahead of request 2, which stays queued
    assert tags(s.poll(0.010).batch) == [2]         # its own window closed too: it goes next
    assert s.poll(0.010).batch == [] and len(s) == 0


def test_skip_ahead_keeps_submission_order_within_a_key():
    s = BatchScheduler(4, 10.0)
    s.push(req(rows=3, width=2, tag=1))
    s.push(req(rows=1, width=3, tag=2))
    s.push(req(rows=2, width=2, tag=3))             # does not fit next to request 1: the key's batch is full
    s.push(req(rows=1, width=2, tag=4))             # would fit, but must not overtake request 3
    assert tags(s.poll(0.0).batch) == [1]
    d = s.poll(0.0)                                 # oldest live key is now width 3 (request 2)
    assert d.batch == [] and d.wake_at_s == 0.010
    assert tags(s.poll(0.010).batch) == [2]
    assert tags(s.poll(0.010).batch) == [3, 4]


def test_priority_levels_serve_level_zero_first():
    s = BatchScheduler(1, 0.0, priority_levels=3)
    s.push(req(priority=2, tag=1))
    s.push(req(priority=1, tag=2))
    s.push(req(priority=0, tag=3))
    s.push(req(priority=1, tag=4))
    order = [tags(s.poll(0.0).batch)[0] for _ in range(4)]
    assert order == [3, 2, 4, 1]


def test_cancelled_and_expired_requests_never_form_a_batch():
    s = BatchScheduler(8, 0.0)
    a, b, c = req(tag=1), req(tag=2, deadline=0.5), req(tag=3)
    for r in (a, b, c):
        s.push(r)
    assert a.future.cancel()
    d = s.poll(1.0)
    assert tags(d.batch) == [3]
    assert d.expired == [b]
    assert len(s) == 0


def test_flush_ignores_the_window():
    s = BatchScheduler(8, 1000.0)
    s.push(req(tag=1))
    assert tags(s.poll(0.0, flush=True).batch) == [1]


def test_drain_returns_live_requests():
    s = BatchScheduler(8, 1000.0, priority_levels=2)
    a, b = req(tag=1), req(tag=2, priority=1)
    s.push(a)
    s.push(b)
    a.future.cancel()
    assert s.drain() == [b] and len(s) == 0


def test_lone_request_on_an_idle_batcher_goes_at_once():
    s = BatchScheduler(8, 1000.0)
    s.push(req(tag=1))
    assert s.poll(0.0).batch == []                         # Triton's rule (idle=False): the window holds it
    assert tags(s.poll(0.0, idle=True).batch) == [1]       # nothing running, nothing else queued: no wait


def test_idle_dispatch_keeps_the_window_under_load():
    s = BatchScheduler(8, 1000.0)
    s.push(req(tag=1))
    s.push(req(tag=2))
    assert s.poll(0.0, idle=True).batch == []              # two queued: companions exist, the window applies
    assert tags(s.poll(1.0, idle=True).batch) == [1, 2]
    s.push(req(width=2, tag=3))
    s.push(req(width=3, tag=4))
    assert tags(s.poll(1.0, idle=True).batch) == [3]       # alone in its key (4 cannot join it): sent now
    assert tags(s.poll(1.0, idle=True).batch) == [4]
