"""A manual clock for :class:`~tensorforge.serve.batching.DynamicBatcher` tests: time moves only when told.

The batcher's threads wait through the clock; :meth:`ManualClock.advance_to` moves the
time and wakes every waiting thread so it looks again. The test knows when the threads
have looked (and gone back to waiting) from :attr:`entries`, so it can check "not yet"
and "now" at exact times, with no sleep and no dependence on the machine's speed.
"""

from __future__ import annotations

import threading


class ManualClock:
    """A ``BatcherClock`` whose ``now`` changes only by :meth:`advance_to` / :meth:`advance`."""

    HANG_GUARD_S = 10.0   # a real-time limit on each wait, only so a broken test cannot hang

    def __init__(self, start: float = 100.0) -> None:
        self._t = start
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._conds: list[threading.Condition] = []
        self.sleeping = 0        # threads inside wait() now
        self.entries = 0         # calls to wait() so far

    def now(self) -> float:
        with self._lock:
            return self._t

    def wait(self, cond: threading.Condition, timeout_s: float | None) -> None:
        with self._lock:
            if not any(c is cond for c in self._conds):
                self._conds.append(cond)
            self.sleeping += 1
            self.entries += 1
            self._changed.notify_all()
        try:
            cond.wait(self.HANG_GUARD_S)
        finally:
            with self._lock:
                self.sleeping -= 1
                self._changed.notify_all()

    def advance_to(self, t: float) -> None:
        with self._lock:
            assert t >= self._t, "a monotonic clock never goes back"
            self._t = t
            conds = list(self._conds)
        for cond in conds:
            with cond:
                cond.notify_all()

    def advance(self, dt: float) -> None:
        self.advance_to(self.now() + dt)

    def await_waits(self, entries: int, sleeping: int = 1, timeout_s: float = 10.0) -> int:
        """Block until ``wait`` was entered ``entries`` times and ``sleeping`` threads are in it; gives entries."""
        with self._lock:
            ok = self._changed.wait_for(lambda: self.entries >= entries and self.sleeping >= sleeping, timeout_s)
            assert ok, f"batcher threads never settled: entries {self.entries}/{entries}, sleeping {self.sleeping}"
            return self.entries
