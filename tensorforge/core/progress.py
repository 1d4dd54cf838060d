"""One process-wide progress hook for long library work (calibration batches, build stages, tuning candidates).

Library code calls :func:`report` at each step; it costs one global read when nobody listens. The CLI
installs a sink with :func:`reporting` and draws it (a bar on a terminal, a line per step when piped), so no
progress parameter has to be threaded through every layer between the command and the loop, and the
library never prints. Worker processes have no sink (their steps are reported by the parent).
"""

from __future__ import annotations

import contextlib
import threading
from typing import Callable, Iterator

# sink(stage, done, total, detail): total is None when the number of steps is not known up front
Sink = Callable[[str, int, "int | None", str], None]

_lock = threading.Lock()
_sink: Sink | None = None


def report(stage: str, done: int, total: int | None = None, detail: str = "") -> None:
    """Tell the installed sink (if any) that ``done`` of ``total`` steps of ``stage`` are finished."""
    sink = _sink
    if sink is not None:
        sink(stage, done, total, detail)


@contextlib.contextmanager
def reporting(sink: Sink) -> Iterator[None]:
    """Install ``sink`` for the duration of the block (the previous one comes back after)."""
    global _sink
    with _lock:
        previous, _sink = _sink, sink
    try:
        yield
    finally:
        with _lock:
            _sink = previous
