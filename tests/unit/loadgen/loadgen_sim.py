"""Simulated time for load-generator tests: a discrete-event clock and a queueing target that runs on it.

With :class:`SimClock` the generator's pacer jumps straight to each due time and its
waits fire the target's scheduled completions in time order, so a run is exact and
independent of how busy the machine is: a 2 ms service time gives latencies of exactly
2 ms, and a queue grows exactly as an M/D/c queue would.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
from typing import Any, Callable, Iterable, Iterator

_NS = 1_000_000_000


class SimClock:
    """A :class:`tensorforge.loadgen.pacing.Clock` on simulated nanoseconds, driven by scheduled events."""

    def __init__(self, start_ns: int = 1_000 * _NS) -> None:
        self.t = start_ns
        self._events: list[tuple[int, int, Callable[[], None]]] = []
        self._seq = itertools.count()

    def now_ns(self) -> int:
        return self.t

    def call_at(self, due_ns: int, fn: Callable[[], None]) -> None:
        heapq.heappush(self._events, (max(due_ns, self.t), next(self._seq), fn))

    def _fire_next(self) -> None:
        due, _, fn = heapq.heappop(self._events)
        self.t = due
        fn()

    def advance_to(self, due_ns: int) -> int:
        while self._events and self._events[0][0] <= due_ns:
            self._fire_next()
        self.t = max(self.t, due_ns)
        return self.t

    @contextlib.contextmanager
    def pacer(self) -> Iterator["SimClock"]:
        yield self

    def wait_until(self, due_ns: int) -> int:
        return self.advance_to(due_ns)

    def wait(self, ready: Callable[[float | None], bool], timeout_s: float | None) -> bool:
        deadline = None if timeout_s is None else self.t + int(timeout_s * _NS)
        while not ready(0.0):
            if not self._events or (deadline is not None and self._events[0][0] > deadline):
                if deadline is None:
                    raise RuntimeError("SimClock: an unbounded wait with nothing scheduled would never end")
                self.t = max(self.t, deadline)
                return ready(0.0)
            self._fire_next()
        return True


class SimTarget:
    """``instances`` FIFO servers on a :class:`SimClock`: a request of ``b`` samples takes ``service_ns(b, i)``
    (``i``: the request's index), starting when it arrives or when a server frees up, whichever is later."""

    kind = "sim"

    def __init__(self, clock: SimClock, service_ns: Callable[[int, int], int], *, max_batch: int = 1,
                 instances: int = 1, max_in_flight: int = 1 << 20) -> None:
        self.clock = clock
        self.name = "sim"
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self.service_ns = service_ns
        self.free_at = [0] * instances
        self.requests: list[tuple[int, int]] = []      # (arrival_ns, batch) of every request

    @classmethod
    def per_sample(cls, clock: SimClock, ms_per_sample: float, **kw: Any) -> "SimTarget":
        return cls(clock, lambda batch, i: int(round(ms_per_sample * batch * 1_000_000)), **kw)

    def prepare(self, batch_sizes: Iterable[int]) -> None:
        pass

    def issue(self, tag: int, batch: int, done: Any, feeds: Any = None) -> None:
        now = self.clock.now_ns()
        index = len(self.requests)
        self.requests.append((now, batch))
        server = min(range(len(self.free_at)), key=self.free_at.__getitem__)
        finish = max(now, self.free_at[server]) + self.service_ns(batch, index)
        self.free_at[server] = finish
        self.clock.call_at(finish, lambda: done(tag, None, None))

    def saturating_window(self, batch: int) -> int:
        return 2 * len(self.free_at)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "instances": len(self.free_at)}

    def close(self) -> None:
        pass
