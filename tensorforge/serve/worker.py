"""Model instances: what runs a merged batch. One per batcher instance thread.

* :class:`ThreadInstance` — a Session in this process. ONNX Runtime releases the GIL
  while it computes, so N thread instances do run concurrently; this is the default.
* :class:`ProcessInstance` — a Session in a child process (``python -m
  tensorforge.serve.worker ENGINE``), driven over its stdin/stdout pipes. It isolates a
  crashing backend (the child is restarted on the next batch) and sidesteps the GIL for
  the Python around the model. Tensors cross through two shared-memory arenas
  (:mod:`tensorforge.serve.shm`: one ``memcpy`` each way, only a JSON layout on the pipe)
  where the platform has them, else through the pipe itself (``transport="pipe"``).
  ``benchmarks/serve_instances.py`` measures threads, shared-memory and pipe processes.

The pipe protocol is data, never code (no pickle): each message is a 4-byte
little-endian header length, a JSON header ``{"tensors": [{"name", "dtype", "shape",
"nbytes"}]}`` (or ``{"error": "...", "type": "InputError"}``), then the raw tensor bytes in
that order; with shared memory the header is ``{"shm": LAYOUT}`` and no bytes follow. A
TensorForge error raised in the child crosses as its class name and message and is raised again
as the same :mod:`tensorforge.errors` class in the parent (looked up by name in that module, never
unpickled), so a bad request is a 400 with process instances as with thread ones.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any, Mapping, Protocol

import numpy as np

from .. import errors
from ..engine.runtime import Engine
from ..errors import ModelError, TensorForgeError
from . import shm

log = logging.getLogger(__name__)
_restarts_lock = threading.Lock()
RESTARTS = {"total": 0}        # child processes restarted after dying, process-wide (soak tests read it)


class Instance(Protocol):
    def run(self, inputs: dict[str, np.ndarray]) -> Mapping[str, np.ndarray]: ...

    def close(self) -> None: ...


class ThreadInstance:
    """A Session in this process; inputs were validated per request, so the finite check is off here."""

    def __init__(self, engine: Engine, threads: int) -> None:
        self.session = engine.session(threads=threads, check_finite=False, warn_host=False)

    def run(self, inputs: dict[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        return self.session.run(inputs)

    def close(self) -> None:
        pass


# -- the pipe protocol ---------------------------------------------------------------------------
def write_message(stream: IO[bytes], tensors: Mapping[str, np.ndarray] | None = None,
                  error: BaseException | str | None = None, arena: shm.SharedArena | None = None) -> None:
    """Send tensors (through ``arena`` when given), or an error: an exception travels as its class name and
    message, a str as plain text."""
    blobs: list[bytes | memoryview] = []
    if error is not None:
        header: dict[str, Any] = _error_header(error)
    elif arena is not None:
        assert tensors is not None
        header = {"shm": arena.write(tensors)}
    else:
        assert tensors is not None
        arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
        header = {"tensors": [{"name": k, "dtype": v.dtype.str, "shape": list(v.shape), "nbytes": v.nbytes}
                              for k, v in arrays.items()]}
        blobs = [v.reshape(-1).view(np.uint8).data for v in arrays.values()]
    head = json.dumps(header).encode()
    stream.write(struct.pack("<I", len(head)))
    stream.write(head)
    for blob in blobs:
        stream.write(blob)
    stream.flush()


def _read_exact(stream: IO[bytes], n: int) -> bytes:
    data = stream.read(n)
    if data is None or len(data) != n:
        raise EOFError(f"pipe closed after {0 if not data else len(data)} of {n} bytes")
    return data


def read_message(stream: IO[bytes], arena: shm.SharedArena | None = None,
                 copy: bool = True) -> dict[str, np.ndarray]:
    """Read one message; a child's error is raised again: a TensorForge error as its own class, anything
    else as RuntimeError("Type: message"). Shared-memory tensors are copied out of ``arena`` unless not
    ``copy`` (then they are views, valid until the arena is written again)."""
    (n,) = struct.unpack("<I", _read_exact(stream, 4))
    header = json.loads(_read_exact(stream, n))
    if "error" in header:
        raise _error_from_header(header)
    if "shm" in header:
        if arena is None:
            raise ModelError("got a shared-memory message on a pipe-only channel")
        return arena.read(header["shm"], copy=copy)
    out = {}
    for t in header["tensors"]:
        dtype = np.dtype(t["dtype"])
        if dtype.kind == "O":
            raise ModelError("object tensors cannot cross the instance pipe; use instance_kind 'thread'")
        out[t["name"]] = np.frombuffer(_read_exact(stream, int(t["nbytes"])), dtype=dtype).reshape(t["shape"])
    return out


def _error_header(error: BaseException | str) -> dict[str, Any]:
    if isinstance(error, str):
        return {"error": error}
    return {"error": str(error), "type": type(error).__name__}


def _error_from_header(header: Mapping[str, Any]) -> Exception:
    """The exception an error message stands for. Only classes of :mod:`tensorforge.errors` are rebuilt,
    by name (data, not code); an unknown or foreign type comes back as RuntimeError("Type: message")."""
    text, kind = str(header["error"]), header.get("type")
    if kind is None:
        return RuntimeError(text)
    cls = getattr(errors, str(kind), None)
    if isinstance(cls, type) and issubclass(cls, TensorForgeError):
        try:
            return cls(text)
        except Exception:  # a class whose constructor wants more than a message: keep the text
            pass
    return RuntimeError(f"{kind}: {text}")


TRANSPORTS = ("shm", "pipe")


class ProcessInstance:
    """A Session in a child process; restarted on the next batch if it dies.

    ``transport``: ``"shm"`` (shared-memory arenas, the default where :func:`shm.available`) or ``"pipe"``.
    """

    def __init__(self, engine_path: str | os.PathLike[str], threads: int, transport: str | None = None) -> None:
        if transport is None:
            transport = "shm" if shm.available() else "pipe"
        if transport not in TRANSPORTS:
            raise errors.ConfigError(f"transport must be one of {list(TRANSPORTS)}, got {transport!r}")
        if transport == "shm" and not shm.available():
            raise errors.ConfigError("transport 'shm' needs os.memfd_create (Linux); use transport 'pipe'")
        self.engine_path = str(Path(engine_path).resolve())
        self.threads = threads
        self.transport = transport
        self._arenas = (shm.SharedArena(name="tf-in"), shm.SharedArena(name="tf-out")) if transport == "shm" else None
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0          # times this instance's child died (crash, OOM kill, SIGKILL) and was restarted
        self._start()

    def _start(self) -> None:
        fds = () if self._arenas is None else tuple(a.fd for a in self._arenas)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tensorforge.serve.worker", self.engine_path, str(self.threads), *map(str, fds)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,   # the child's stderr is ours: its warnings show
            pass_fds=fds)
        assert self._proc.stdout is not None
        try:
            read_message(self._proc.stdout)          # the child's "ready" (an empty tensor list)
        except (EOFError, RuntimeError, ValueError, TensorForgeError) as exc:
            self._proc.kill()
            self._proc.wait(5)
            raise ModelError(f"instance process for {self.engine_path} failed to start: {exc}") from exc

    def run(self, inputs: dict[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                if self._proc is not None:
                    self._note_restart(self._proc)
                self._start()
            proc = self._proc
            assert proc is not None and proc.stdin is not None and proc.stdout is not None
            try:
                arena_in, arena_out = self._arenas if self._arenas is not None else (None, None)
                write_message(proc.stdin, inputs, arena=arena_in)
                return read_message(proc.stdout, arena=arena_out)
            except (EOFError, BrokenPipeError, OSError) as exc:
                proc.kill()
                proc.wait(5)           # reap it now: the next batch sees it dead and restarts it
                raise RuntimeError(f"instance process died while running a batch ({exc}); it restarts on the "
                                   "next batch") from exc

    def _note_restart(self, dead: "subprocess.Popen[bytes]") -> None:
        """Count and log a restart of a dead child (the log line and counter are what operators watch)."""
        code = dead.returncode
        how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        self.restarts += 1
        with _restarts_lock:
            RESTARTS["total"] += 1
        log.warning("instance process %d for %s died (%s); restarting it (restart %d of this instance)",
                    dead.pid, self.engine_path, how, self.restarts)
        for stream in (dead.stdin, dead.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass

    def close(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()
        if self._arenas is not None:
            for arena in self._arenas:
                arena.close()
            self._arenas = None


def _child_main(engine_path: str, threads: int, fds: tuple[int, ...] = ()) -> int:
    """The child side: load the engine, say ready, then answer batches until stdin closes. ``fds``: the
    parent's input and output shared-memory arenas (empty: tensors come through the pipe)."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    arena_in = arena_out = None
    if fds:
        arena_in, arena_out = shm.SharedArena(fds[0]), shm.SharedArena(fds[1])
    sys.stdout = sys.stderr                       # stray prints must not corrupt the pipe
    try:
        session = Engine.load(engine_path).session(threads=threads, check_finite=False, warn_host=False)
    except Exception as exc:
        write_message(stdout, error=exc)
        return 1
    write_message(stdout, {})
    while True:
        try:
            inputs = read_message(stdin, arena=arena_in, copy=False)
        except EOFError:
            return 0
        except TensorForgeError as exc:       # a bad layout: refuse this batch, keep serving
            write_message(stdout, error=exc)
            continue
        try:
            outputs = session.run(inputs)
        except Exception as exc:  # reported to the parent, which fails that batch only
            write_message(stdout, error=exc)
            continue
        finally:
            del inputs                        # drop the views into the input arena before it can be remapped
        write_message(stdout, outputs, arena=arena_out)


if __name__ == "__main__":  # pragma: no cover - runs in the child process
    sys.exit(_child_main(sys.argv[1], int(sys.argv[2]), tuple(int(a) for a in sys.argv[3:5])))
