"""Waiting until a query's scheduled send time: sleep most of the way, spin the last microseconds.

``time.sleep`` on Linux wakes late (the thread's timer slack, 50 µs by default, plus the
wake-up); a pure busy-wait would hold a core — and the GIL — that the target needs. The
:class:`Pacer` therefore sleeps until a little before the due time, by an allowance
that tracks the sleeps' recent overshoot, then spins on ``perf_counter_ns`` for the
rest (at most ``max_slack_ns`` plus the margin, 250 µs + 20 µs by default). While active it also lowers the
issuing thread's timer slack to 1 ns (``prctl(PR_SET_TIMERSLACK)``, Linux only, that thread
only, restored on exit), which removes the slack from the overshoot.

    >>> with Pacer() as pacer:                              # doctest: +SKIP
    ...     sent = pacer.wait_until(time.perf_counter_ns() + 1_000_000)

The generator reads time and waits only through a :class:`Clock` (default
:data:`MONOTONIC`, the real one), so a test can run it on simulated time: a clock
whose ``pacer()`` jumps to the due time and whose ``wait`` runs the target's
scheduled completions, which makes every latency of a run exact.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, ContextManager, Protocol

__all__ = ["Pacer", "Clock", "MonotonicClock", "MONOTONIC"]

_PR_SET_TIMERSLACK = 29
_PR_GET_TIMERSLACK = 30


def _prctl() -> Any | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl
    except (OSError, AttributeError):
        return None


class Pacer:
    """Sleep-then-spin waits on the ``perf_counter_ns`` clock; use as a context manager in the issuing thread."""

    def __init__(self, margin_ns: int = 20_000, initial_slack_ns: int = 80_000, max_slack_ns: int = 250_000, *,
                 clock: Callable[[], int] = time.perf_counter_ns,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.clock = clock          # injectable, with ``sleep``, so the overshoot tracking is testable exactly
        self.sleep = sleep
        self.margin_ns = margin_ns
        self.slack_ns = float(initial_slack_ns)
        self.max_slack_ns = max_slack_ns
        self._prctl = None
        self._saved_slack: int | None = None

    def __enter__(self) -> "Pacer":
        self._prctl = _prctl()
        if self._prctl is not None:
            try:
                self._saved_slack = int(self._prctl(_PR_GET_TIMERSLACK, 0, 0, 0, 0))
                self._prctl(_PR_SET_TIMERSLACK, 1, 0, 0, 0)
            except Exception:  # pragma: no cover - exotic libc
                self._prctl = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._prctl is not None and self._saved_slack is not None and self._saved_slack > 0:
            self._prctl(_PR_SET_TIMERSLACK, self._saved_slack, 0, 0, 0)
        self._prctl = None

    def wait_until(self, due_ns: int) -> int:
        """Return at (or as soon as possible after) ``due_ns``; gives the clock reading at return."""
        clock = self.clock
        now = clock()
        early = due_ns - now - int(self.slack_ns) - self.margin_ns
        if early > 0:
            self.sleep(early / 1e9)
            after = clock()
            overshoot = after - (now + early)
            # Track the sleep's overshoot (fast up, slow down) so the spin stays short but rarely late. Capped: a
            # wake-up delayed by a busy CPU (milliseconds) is not timer slack, and spinning longer would only hold
            # the GIL and a core that the target needs.
            alpha = 0.3 if overshoot > self.slack_ns else 0.05
            self.slack_ns += alpha * (min(max(0, overshoot), self.max_slack_ns) - self.slack_ns)
            now = after
        while now < due_ns:
            now = clock()
        return now


class Clock(Protocol):
    """The load generator's time base: nanosecond readings, pacing to a due time, and bounded waits."""

    def now_ns(self) -> int:
        """The current time in ns (``perf_counter_ns`` units for the real clock)."""

    def pacer(self) -> ContextManager[Any]:
        """A context manager giving an object with ``wait_until(due_ns) -> now_ns`` (a :class:`Pacer`)."""

    def wait(self, ready: Callable[[float | None], bool], timeout_s: float | None) -> bool:
        """Block until ``ready`` holds or ``timeout_s`` passes (None: no limit); True if it held.

        ``ready(t)`` is a blocking attempt of at most ``t`` seconds (``Event.wait``,
        ``Semaphore.acquire``...) that returns whether it succeeded.
        """


class MonotonicClock:
    """The real clock: ``time.perf_counter_ns`` (CLOCK_MONOTONIC on Linux), :class:`Pacer`, blocking waits."""

    def now_ns(self) -> int:
        return time.perf_counter_ns()

    def pacer(self) -> Pacer:
        return Pacer()

    def wait(self, ready: Callable[[float | None], bool], timeout_s: float | None) -> bool:
        return ready(timeout_s)


MONOTONIC = MonotonicClock()
