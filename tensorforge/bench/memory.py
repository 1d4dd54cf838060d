"""Peak resident memory of this process during a block, for ``tensorforge bench``.

:class:`PeakMemory` samples the process's RSS (psutil) in a daemon thread every
``interval_s``. A spike shorter than the interval could slip between samples, so on
Linux it also reads the kernel's high-water mark (``VmHWM`` in ``/proc/self/status``):
if that mark rose during the block, the new lifetime peak was reached inside the block
and is exact. Reading it has no side effects (we never reset it via ``clear_refs``).

Example::

    with PeakMemory() as mem:
        session.run(batch)
    print(mem.peak_delta_bytes / 2**20, "MiB above the baseline")
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Callable

__all__ = ["PeakMemory", "available_memory_bytes"]


def _rss_bytes() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _hwm_bytes() -> int | None:
    """The process's peak RSS so far (Linux ``VmHWM``), or None where unavailable."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # the kernel reports kB
    except (OSError, ValueError, IndexError):
        pass
    return None


class PeakMemory:
    """Context manager measuring this process's peak RSS while the block runs.

    ``baseline_bytes`` is the RSS on entry, ``peak_bytes`` the highest RSS seen during
    the block (never below the baseline), ``peak_delta_bytes`` their difference. Both are
    0 until the block has been entered; ``peak_bytes`` is final once the block exits.
    """

    def __init__(self, interval_s: float = 0.005, rss: "Callable[[], int] | None" = None) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0 seconds, got {interval_s}")
        self.interval_s = interval_s
        self._rss = rss if rss is not None else _rss_bytes      # injectable: a test drives the readings
        self.baseline_bytes = 0
        self.peak_bytes = 0
        self._hwm0: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def peak_delta_bytes(self) -> int:
        return self.peak_bytes - self.baseline_bytes

    def _observe(self, rss: int) -> None:
        with self._lock:
            if rss > self.peak_bytes:
                self.peak_bytes = rss

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._observe(self._rss())
            except Exception:  # the process is exiting or psutil failed: keep what we have
                return

    def __enter__(self) -> PeakMemory:
        if self._thread is not None:
            raise RuntimeError("PeakMemory is already measuring; use a new instance per block")
        self._hwm0 = _hwm_bytes()
        self.baseline_bytes = self.peak_bytes = self._rss()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="tf-peak-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._observe(self._rss())
        hwm = _hwm_bytes()
        if hwm is not None and self._hwm0 is not None and hwm > self._hwm0:
            self._observe(hwm)  # a new lifetime peak can only have happened inside the block


def available_memory_bytes() -> int:
    """Memory the OS can give without swapping (``psutil.virtual_memory().available``)."""
    import psutil

    return int(psutil.virtual_memory().available)
