"""Candidates in processes of their own, so that one library cannot slow another while it is timed.

Once OpenVINO has compiled a model in a process, its default pins threads to cores, and
every other library in that process (ONNX Runtime included) runs slower from then on, idle
or not; spinning thread pools (ONNX Runtime's, OpenMP's) also linger after a run. A user
runs the engine in a process of its own, so the tuner times each candidate the same way:
one spawned worker per candidate holds its session and answers commands over a pipe —
outputs, warm-up, a timed round — while the other workers wait idle.

Backends registered at run time by ``"module:Class"`` path travel to the workers (the
module must be importable there: ``sys.path`` is passed on by ``spawn``); a backend
registered as a Python object cannot, and its candidates fail with that reason.

Between its commands a worker is stopped (``SIGSTOP``; ``SIGCONT`` before the next one, on
POSIX systems): an idle library can still spin or yield in a loop for a while after a run
(OpenVINO's TBB workers do), taking CPU time from the process being timed, and a stopped
process takes no CPU time at all.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from typing import Any, Mapping

import numpy as np

from ..errors import TensorForgeError

_START_TIMEOUT_S = 600.0          # a worker's import + session creation (torch.compile included)


class WorkerError(TensorForgeError):
    """A worker process failed or answered with an error."""


def _serve(conn: Any, registry: dict[str, str], candidate: dict[str, Any], device: str, batch: int) -> None:
    model_bytes, feeds = conn.recv()      # the big parts come over the pipe, not as spawn arguments
    from ..backends.registry import register_backend
    from ..core.timing import Timer
    from .measure import open_candidate
    from .space import Candidate

    for name, target in registry.items():
        register_backend(name, target)
    try:
        opened = open_candidate(Candidate.from_dict(candidate), model_bytes, device, batch)
    except Exception as exc:     # any library's failure to build the candidate is reported, not raised
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ok", opened.setup_s))
    timer = Timer(opened.call)
    while True:
        cmd, arg = conn.recv()
        try:
            if cmd == "outputs":
                out = opened.call(feeds)
                answer: Any = [list(a) for a in out] if opened.pool is not None else [list(out)]
            elif cmd == "warm":
                timer.warm(feeds, arg)
                answer = None
            elif cmd == "run":
                # warm already, so one long call may be the whole round
                answer = timer.run_for(feeds, arg, min_iterations=1) * opened.samples_per_call
            elif cmd == "p50_ms":
                answer = timer.p50_ms()
            else:
                opened.close()
                conn.send(("ok", None))
                return
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
            continue
        conn.send(("ok", answer))


class IsolatedContender:
    """One candidate in a spawned worker process; same methods as :class:`.measure.LocalContender`."""

    def __init__(self, candidate: Any, model_bytes: bytes, device: str, batch: int,
                 feeds: Mapping[str, np.ndarray]) -> None:
        from ..backends.registry import string_registry

        self.candidate = candidate
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        # Only small arguments go to the spawned process: ``Process.start()`` writes them into a pipe whose
        # read end it holds itself until the write ends, so a child that dies while starting (a script
        # without a main guard re-runs the tuning and fails) would block a big write there for ever.
        self._proc = ctx.Process(target=_serve, daemon=True, args=(
            child, string_registry(), candidate.to_dict(), device, batch))
        self._proc.start()
        child.close()
        self._stopped = False
        try:
            try:
                self._conn.send((model_bytes, dict(feeds)))    # a dead child: EPIPE here, not a hang
            except (BrokenPipeError, ConnectionResetError, EOFError, OSError):
                self._proc.join(timeout=5)
                raise WorkerError(f"the worker for {candidate.label} died (exit code {self._proc.exitcode})")
            self.setup_s = float(self._call(None, timeout=_START_TIMEOUT_S))
        except WorkerError as exc:
            if self._proc.exitcode is None or "died" not in str(exc):
                self.close()
                raise
            self.close()
            raise WorkerError(
                f"the worker process for {candidate.label} exited (code {self._proc.exitcode}) before it was "
                "ready. If the tuner ran from a script: workers start with multiprocessing's 'spawn', which "
                "re-imports the main module, so the script must tune under `if __name__ == \"__main__\":`, "
                "or pass TuneOptions(isolate=False)") from exc

    def _signal(self, stop: bool) -> None:
        sig = getattr(signal, "SIGSTOP" if stop else "SIGCONT", None)
        if sig is None or self._proc.pid is None or stop == self._stopped:
            return
        try:
            os.kill(self._proc.pid, sig)
            self._stopped = stop
        except ProcessLookupError:
            pass

    def _call(self, message: tuple[str, Any] | None, timeout: float | None = None) -> Any:
        try:
            self._signal(stop=False)
            if message is not None:
                self._conn.send(message)
            self._wait(timeout)
            status, value = self._conn.recv()
            self._signal(stop=True)
        except (EOFError, OSError, BrokenPipeError) as exc:
            self.close()
            raise WorkerError(f"the worker for {self.candidate.label} died (exit code {self._proc.exitcode})") \
                from exc
        if status != "ok":
            self.close()
            raise WorkerError(str(value))
        return value

    def _wait(self, timeout: float | None) -> None:
        """Until an answer is ready; a worker that dies first is reported at once. (Its end of the pipe
        can outlive it: ``spawn`` hands the pipe over through a helper thread of this process, which
        keeps a copy until the child fetches it, so a worker dying while it starts up never shows
        as end-of-file and a bare ``recv()`` would wait forever.)"""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._conn.poll(0.2):
            if not self._proc.is_alive() and not self._conn.poll(0):
                raise EOFError("worker exited")
            if deadline is not None and time.monotonic() > deadline:
                raise WorkerError(f"the worker for {self.candidate.label} did not answer in {timeout:.0f} s")

    def outputs(self) -> list[list[np.ndarray]]:
        return self._call(("outputs", None))  # type: ignore[no-any-return]

    def warm(self, seconds: float) -> None:
        self._call(("warm", seconds))

    def run(self, seconds: float) -> float:
        return float(self._call(("run", seconds)))

    def p50_ms(self) -> float:
        return float(self._call(("p50_ms", None)))

    def close(self) -> None:
        self._signal(stop=False)
        if self._proc.is_alive():
            try:
                self._conn.send(("close", None))
                if self._conn.poll(30):
                    self._conn.recv()
            except (EOFError, OSError, BrokenPipeError):
                pass
            self._proc.join(timeout=30)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(timeout=5)
        self._conn.close()
