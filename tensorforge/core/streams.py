"""Multi-stream execution: N concurrent streams of one session, weights shared.

TensorRT's multi-stream idea on a CPU (or any backend whose ``run`` is safe to call from
several threads, as ONNX Runtime's and OpenVINO's are): one compiled model, N worker
threads each issuing its own requests. The backend releases the GIL while it computes, so
the streams overlap. The caller sizes the session's intra-op threads to ``cores // N``
(see :func:`threads_per_worker`), so N narrow jobs replace one wide one — which wins
depends on the model and batch, and is measured (``bench --streams``, the tuner).

:class:`StreamPool` keeps its threads alive between calls: ``pool(feeds)`` runs ``feeds`` on
every stream at once and returns when all are done — one "wave" of N requests.

>>> pool = StreamPool(session.run, streams=2)          # doctest: +SKIP
>>> outputs = pool(feeds)                               # doctest: +SKIP
>>> len(outputs), len(pool.latencies_ns)                # doctest: +SKIP
(2, 2)
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import InputError

RunFn = Callable[[Mapping[str, np.ndarray]], Any]


def physical_cores() -> int:
    """This host's physical cores (the logical count where psutil cannot tell)."""
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Intra-op threads for each of ``workers`` concurrent sessions sharing ``cores``.

    The one rule for every layer that runs several sessions at once — streams of a
    :class:`StreamPool`, batcher instances of the server and the load generator:
    ``max(1, cores // workers)``, ``cores`` defaulting to the physical cores (what ONNX Runtime
    sizes its own intra-op pool to: two hyper-threads of one core share its vector units).

    >>> threads_per_worker(4, cores=16), threads_per_worker(3, cores=2)
    (4, 1)
    """
    if workers < 1:
        raise InputError(f"workers must be >= 1, got {workers}")
    return max(1, (physical_cores() if cores is None else cores) // workers)


class StreamPool:
    """Run one callable on ``streams`` threads at once.

    ``latencies_ns`` keeps each successful request's duration, in completion order: the time
    inside ``run`` on its stream (waiting for a free stream, when ``run_many`` is given more
    requests than streams, is not counted).
    """

    def __init__(self, run: RunFn, streams: int) -> None:
        if streams < 1:
            raise InputError(f"streams must be >= 1, got {streams}")
        self.run = run
        self.streams = streams
        self.latencies_ns: list[int] = []
        self._lock = threading.Lock()
        self._closed = False
        self._pool = ThreadPoolExecutor(max_workers=streams, thread_name_prefix="tf-stream") if streams > 1 else None

    def _timed(self, feeds: Mapping[str, np.ndarray]) -> Any:
        t = time.perf_counter_ns()
        out = self.run(feeds)
        elapsed = time.perf_counter_ns() - t
        with self._lock:
            self.latencies_ns.append(elapsed)
        return out

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> list[Any]:
        """Run ``feeds`` on every stream concurrently; the outputs, one per stream."""
        return self.run_many([feeds] * self.streams)

    def run_many(self, feeds_list: Sequence[Mapping[str, np.ndarray]]) -> list[Any]:
        """Run each of ``feeds_list`` on the next free stream; outputs in the same order.

        Every request finishes before this returns; then the first failure (in ``feeds_list``
        order) re-raises as it was raised.
        """
        if self._closed:
            raise RuntimeError("this StreamPool is closed; create a new one")
        if self._pool is None:
            return [self._timed(f) for f in feeds_list]
        futures: list[Future[Any]] = [self._pool.submit(self._timed, f) for f in feeds_list]
        wait(futures)
        return [f.result() for f in futures]

    def reset_latencies(self) -> None:
        """Forget the recorded latencies (e.g. those of the warm-up)."""
        with self._lock:
            self.latencies_ns.clear()

    def close(self) -> None:
        """Stop the stream threads (after the requests in flight); idempotent."""
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> "StreamPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
