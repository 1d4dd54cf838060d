"""The batching policy: which queued requests form the next batch, and when — pure, no threads.

:class:`BatchScheduler` holds one FIFO per priority level (level 0 is served first) and
answers one question, given the time: *what should a free instance do now?* Either run
these requests as a batch, or wait until some time (the queue-delay window of the oldest
candidate closes), or wait for a submission. The rules, in order:

1. Candidates are the live requests whose grouping key equals the oldest live request's
   key (priority order, FIFO within a level), while their rows fit in ``max_batch_size``.
   Requests of other keys are skipped and stay queued — they do not block, so a stream of
   mixed shapes (or length buckets) still batches; within a key the scan stops at the first
   request that does not fit, so a key's requests are dispatched in the order they came.
2. Dispatch at once when the batch is full (``max_batch_size`` rows, or the next request of
   its key would not fit), when its size is one of ``preferred_batch_sizes``, when
   ``max_queue_delay_ms`` is 0, when flushing (the batcher is closing), or — with ``idle``
   — when a lone request waits on an idle batcher (nothing else of its key queued, no batch
   running): no other request is in sight to join it, so waiting could only make it later.
   This is where we part from Triton, whose dynamic batcher holds even a lone request on an
   idle model for the whole delay; the owner passes ``idle=False`` for Triton's rule
   (``BatcherConfig.idle_dispatch``). Under load the window still applies: requests that
   queue while a batch runs wait for companions as before.
3. Otherwise wait until the oldest candidate has waited ``max_queue_delay_ms``; then send
   the largest prefix whose size is a preferred size if there is one, else all candidates.
4. Deadlines (a request's timeout, or the model's ``slo_ms``), planned with the
   :class:`~tensorforge.serve.batch_curve.BatchCurve` (rows → compute seconds): a batch
   grows only while every member still ends by its deadline if started now (the next
   request of the key that would make one late is left for a later batch, and this one
   goes at once), and it never waits past the latest time one more row could still join
   (tightest deadline − compute(rows + 1) − ``margin_s``): then waiting cannot help, and it
   goes at once — before the window closes (``Decision.early``). Nor does it wait when one
   more row would not cut the curve's time per sample by ``MIN_BATCH_GAIN`` (a linear curve,
   common on a CPU): a companion would add only its own compute, so the batch goes now; and
   of the requests already queued it takes only as many as each cut the time per sample that
   much (on a linear curve: one at a time, which ends each no later than a batch would).
   Without deadlines rules 1–3 alone apply, exactly as before.
5. A request that cannot end by its deadline even if started now, alone (now +
   compute(its rows) > deadline), is *shed*: handed back so the owner fails it before any
   compute (``DeadlineUnmeetable``, 503), instead of spending an instance on a late answer —
   except that with ``quiet`` (nothing running) and nothing else live, the oldest doomed
   request runs anyway (``Decision.probe``): the instance would idle, and its timing
   refreshes a curve that shedding alone would never correct.

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

from .batch_curve import BatchCurve

DEADLINE_MARGIN_S = 0.001   # slack kept between a batch's planned end and its tightest deadline (rule 4)
MIN_BATCH_GAIN = 0.05       # with deadlines, wait for a companion only if it cuts the time per sample this much


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
    shed: list[QueuedRequest] = field(default_factory=list)
    early: bool = False     # the batch went before its window closed because waiting could not help (rule 4)
    probe: bool = False     # the batch is a doomed request run on an idle batcher instead of shed (rule 5)


class BatchScheduler:
    """Priority FIFOs and the batch-forming rules above. Not thread-safe: the owner holds a lock."""

    def __init__(self, max_batch_size: int, max_queue_delay_ms: float, preferred_batch_sizes: tuple[int, ...] = (),
                 priority_levels: int = 1, curve: BatchCurve | None = None,
                 margin_s: float = DEADLINE_MARGIN_S) -> None:
        self.max_batch_size = max_batch_size
        self.delay_s = max_queue_delay_ms / 1000.0
        self.curve = curve           # batch rows → compute seconds; None: deadlines only expire (no planning)
        self.margin_s = margin_s
        self.preferred = frozenset(preferred_batch_sizes)
        self.levels: list[deque[QueuedRequest]] = [deque() for _ in range(priority_levels)]

    def push(self, request: QueuedRequest) -> None:
        self.levels[request.priority].append(request)

    def __len__(self) -> int:
        """Entries held, including dead ones (done futures) not yet dropped."""
        return sum(len(q) for q in self.levels)

    def poll(self, now_s: float, flush: bool = False, idle: bool = False, quiet: bool | None = None) -> Decision:
        """Decide for a free instance at time ``now_s``; a returned batch is removed from the queue.

        ``idle``: no batch is running on any instance — a lone queued request then goes at once (rule 2).
        ``quiet``: no batch is running (default: ``idle``) — a doomed request then runs instead of being
        shed when nothing else is live (rule 5); the owner passes it apart from ``idle`` under Triton's rule.
        """
        decision = Decision()
        candidates: list[QueuedRequest] = []
        rows = 0
        full = False            # the batch cannot grow: max rows, or the next of its key does not fit
        capped = False          # ... because the next of its key would make a member miss its deadline
        more = False            # another live request of the candidates' key stays queued behind them
        key: Hashable | None = None
        tightest: float | None = None      # the earliest deadline among the candidates
        curve = self.curve
        solo: dict[int, float] = {}         # compute(rows) of one request alone, per poll (the queue may be long)

        def alone(n: int) -> float:
            if n not in solo:
                solo[n] = curve.compute_s(n) if curve is not None else 0.0
            return solo[n]

        for queue in self.levels:
            for request in queue:
                if _dead(request):
                    continue
                deadline = request.deadline_s
                if deadline is not None:
                    if deadline <= now_s:
                        decision.expired.append(request)
                        continue
                    if curve is not None and now_s + alone(request.rows) > deadline:
                        decision.shed.append(request)       # even alone, now, it would finish late
                        continue
                if key is None:
                    key = request.signature
                elif request.signature != key:
                    continue                                # another key: skipped, stays queued (rule 1)
                if full:
                    more = True
                    continue
                if candidates and (rows + request.rows > self.max_batch_size
                                   or not self._meets(now_s, rows + request.rows, tightest, deadline)):
                    full = more = True                      # keeps submission order within the key
                    capped = rows + request.rows <= self.max_batch_size
                    continue
                candidates.append(request)
                rows += request.rows
                if deadline is not None:
                    tightest = deadline if tightest is None else min(tightest, deadline)
                if rows == self.max_batch_size:
                    full = True
        if not candidates and decision.shed and (idle if quiet is None else quiet) and not flush:
            # Every live request is doomed and nothing runs: run the oldest anyway rather than shed them all.
            # The instance would idle otherwise, and the timing keeps the curve honest — a curve that only
            # ever sheds would never be refreshed, and one slow batch would shed the model's traffic for good.
            candidates = [decision.shed.pop(0)]
            decision.probe = True
        if not candidates:
            self._remove([], decision)
            return decision
        oldest = min(r.arrival_s for r in candidates)
        window_end = oldest + self.delay_s
        lone = idle and len(candidates) == 1 and not more      # nothing else of its key queued, nothing running
        if decision.probe or (full and not capped) or flush or lone or self.delay_s <= 0 or rows in self.preferred:
            take = len(candidates)
        elif window_end <= now_s:
            take = self._preferred_prefix(candidates)
        elif capped:                 # one more member would make the batch late: it goes as it is
            take = len(candidates)
            decision.early = True
        elif tightest is not None and curve is not None and curve.known and not self._gains(rows):
            take = len(candidates)   # a companion would not lower the cost per sample: waiting cannot help
            decision.early = True
        else:
            wake = window_end
            if tightest is not None and curve is not None:
                # the latest time one more row could join and the batch still start in time (rule 4)
                wake = min(wake, tightest - curve.compute_s(rows + 1) - self.margin_s)
            if wake > now_s:
                # Expired and shed entries are dropped now; live ones stay queued until the wake time.
                self._remove([], decision)
                decision.wake_at_s = wake
                return decision
            take = len(candidates)
            decision.early = True
        if tightest is not None and curve is not None and curve.known and not (decision.probe or flush):
            take = self._gainful(candidates[:take])     # only as many as make each sample cheaper (rule 4)
        decision.batch = candidates[:take]
        self._remove(candidates[:take], decision)
        return decision

    def _gainful(self, candidates: list[QueuedRequest]) -> int:
        """How many of ``candidates`` (at least one) to run together: a batch grows while each next request
        cuts the time per sample by MIN_BATCH_GAIN. On a linear curve that is one request: batching k queued
        requests would end them all at k × compute(1) instead of one after another, and save nothing."""
        rows, take = candidates[0].rows, 1
        assert self.curve is not None
        for request in candidates[1:]:
            grown = rows + request.rows
            if not self.curve.compute_s(grown) / grown < self.curve.compute_s(rows) / rows * (1.0 - MIN_BATCH_GAIN):
                break
            rows, take = grown, take + 1
        return take

    def _gains(self, rows: int) -> bool:
        """Whether one more row lowers the curve's compute time per sample by at least MIN_BATCH_GAIN (rule 4):
        on a curve that grows linearly (common on a CPU) a companion only adds its own compute, so waiting for
        one costs latency and buys nothing."""
        assert self.curve is not None
        per_now = self.curve.compute_s(rows) / rows
        return self.curve.compute_s(rows + 1) / (rows + 1) < per_now * (1.0 - MIN_BATCH_GAIN)

    def _meets(self, now_s: float, rows: int, tightest: float | None, deadline: float | None) -> bool:
        """Whether a batch of ``rows`` started now still ends by every member's deadline (rule 4)."""
        if self.curve is None:
            return True
        bound = tightest if deadline is None else deadline if tightest is None else min(tightest, deadline)
        return bound is None or now_s + self.curve.compute_s(rows) <= bound

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

    def _remove(self, taken: list[QueuedRequest], decision: Decision) -> None:
        gone = {id(r) for r in (*taken, *decision.expired, *decision.shed)}
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
