"""The batching policy: which queued requests form the next batch, and when — pure, no threads.

:class:`BatchScheduler` holds one FIFO per priority level (level 0 is served first) and
answers one question, given the time: *what should a free instance do now?* Either run
these requests as a batch, or wait until some time (the queue-delay window of the oldest
candidate closes), or wait for a submission. The rules, in order:

1. Candidates are taken in priority order, FIFO within a level, while their rows fit in
   ``max_batch_size`` and their inputs agree on names, dtypes and per-sample shapes with
   the first one. The scan stops at the first request that does not fit or does not
   agree — it never skips ahead, so requests are dispatched in the order they came.
2. Dispatch at once when the batch is full (``max_batch_size`` rows, or the next request
   would not fit or not agree), when its size is one of ``preferred_batch_sizes``, when
   ``max_queue_delay_ms`` is 0, when flushing (the batcher is closing), or — with ``idle``
   — when a lone request waits on an idle batcher (nothing else queued, no batch running):
   no other request is in sight to join it, so waiting could only make it later. This is
   where we part from Triton, whose dynamic batcher holds even a lone request on an idle
   model for the whole delay; the owner passes ``idle=False`` for Triton's rule
   (``BatcherConfig.idle_dispatch``). Under load the window still applies: requests that
   queue while a batch runs wait for companions as before.
3. Otherwise wait until the oldest candidate has waited ``max_queue_delay_ms``; then send
   the largest prefix whose size is a preferred size if there is one, else all candidates.

Requests whose future is no longer pending (cancelled by a disconnected client, or
claimed by the timeout reaper) are skipped and dropped; requests whose deadline has passed are handed back as
*expired* so the owner fails them — neither ever reaches the model. Clock values are
seconds on the owner's clock (the batcher's ``BatcherClock``, ``time.perf_counter()`` by
default), passed in, so every rule is testable without sleeping.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Hashable, Mapping

import numpy as np


@dataclass(eq=False)
class QueuedRequest:
    """One submitted request waiting in the queue."""

    inputs: Mapping[str, np.ndarray]
    rows: int
    priority: int
    future: "Future[Any]"
    arrival_s: float
    deadline_s: float | None
    signature: Hashable           # the grouping's key: only requests with equal keys share a batch
    seq: int = 0
    busy_clock_s: float = 0.0     # the batcher's all-instances-busy clock at arrival (for the queue-time split)


@dataclass
class Decision:
    """What a free instance should do: run ``batch`` (non-empty), or sleep until ``wake_at_s`` (None: until a
    submission). ``expired`` requests passed their deadline and must be failed by the caller."""

    batch: list[QueuedRequest] = field(default_factory=list)
    wake_at_s: float | None = None
    expired: list[QueuedRequest] = field(default_factory=list)


class BatchScheduler:
    """Priority FIFOs and the batch-forming rules above. Not thread-safe: the owner holds a lock."""

    def __init__(self, max_batch_size: int, max_queue_delay_ms: float, preferred_batch_sizes: tuple[int, ...] = (),
                 priority_levels: int = 1) -> None:
        self.max_batch_size = max_batch_size
        self.delay_s = max_queue_delay_ms / 1000.0
        self.preferred = frozenset(preferred_batch_sizes)
        self.levels: list[deque[QueuedRequest]] = [deque() for _ in range(priority_levels)]

    def push(self, request: QueuedRequest) -> None:
        self.levels[request.priority].append(request)

    def __len__(self) -> int:
        """Entries held, including dead ones (done futures) not yet dropped."""
        return sum(len(q) for q in self.levels)

    def poll(self, now_s: float, flush: bool = False, idle: bool = False) -> Decision:
        """Decide for a free instance at time ``now_s``; a returned batch is removed from the queue.

        ``idle``: no batch is running on any instance — a lone queued request then goes at once (rule 2).
        """
        decision = Decision()
        candidates: list[QueuedRequest] = []
        rows = 0
        blocked = False
        first_sig: Hashable | None = None
        for queue in self.levels:
            if blocked:
                break
            for request in queue:
                if _dead(request):
                    continue
                if request.deadline_s is not None and request.deadline_s <= now_s:
                    decision.expired.append(request)
                    continue
                if first_sig is None:
                    first_sig = request.signature
                elif request.signature != first_sig or rows + request.rows > self.max_batch_size:
                    blocked = True
                    break
                candidates.append(request)
                rows += request.rows
                if rows == self.max_batch_size:
                    blocked = True
                    break
        if not candidates:
            self._remove([], decision.expired)
            return decision
        oldest = min(r.arrival_s for r in candidates)
        due = oldest + self.delay_s <= now_s
        lone = idle and len(candidates) == 1 and not blocked     # not blocked: nothing else is queued
        if blocked or flush or lone or self.delay_s <= 0 or rows in self.preferred:
            take = len(candidates)
        elif due:
            take = self._preferred_prefix(candidates)
        else:
            # Expired entries are dropped now; live ones stay queued until the window closes.
            self._remove([], decision.expired)
            decision.wake_at_s = oldest + self.delay_s
            return decision
        decision.batch = candidates[:take]
        self._remove(candidates[:take], decision.expired)
        return decision

    def _preferred_prefix(self, candidates: list[QueuedRequest]) -> int:
        """Length of the longest prefix whose row count is a preferred size; all of them if none is."""
        best = len(candidates)
        if self.preferred:
            rows = 0
            found = 0
            for i, request in enumerate(candidates):
                rows += request.rows
                if rows in self.preferred:
                    found = i + 1
            if found:
                best = found
        return best

    def _remove(self, taken: list[QueuedRequest], expired: list[QueuedRequest]) -> None:
        gone = {id(r) for r in taken} | {id(r) for r in expired}
        if gone:
            for level, queue in enumerate(self.levels):
                self.levels[level] = deque(r for r in queue if id(r) not in gone and not _dead(r))
        self._drop_dead_heads()

    def _drop_dead_heads(self) -> None:
        for queue in self.levels:
            while queue and _dead(queue[0]):
                queue.popleft()

    def drain(self) -> list[QueuedRequest]:
        """Remove and return every live queued request (used when closing without draining)."""
        live = [r for q in self.levels for r in q if not _dead(r)]
        for q in self.levels:
            q.clear()
        return live


def _dead(request: QueuedRequest) -> bool:
    """No longer waiting: cancelled, or already claimed (running) or finished by someone else."""
    future = request.future
    return future.done() or future.running()
