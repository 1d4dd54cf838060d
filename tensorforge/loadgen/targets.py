"""What the load generator drives: the :class:`Target` protocol and the in-process targets.

A target accepts *requests* — ``batch`` samples at once — without blocking the caller,
and reports each one's completion through a callback, from whichever thread finished
it. The generator takes the completion time in that callback (one clock read and a
list store), so the target's hot path carries no more of the generator than that.

* :class:`BatcherTarget` — in-process: requests go through the very
  :class:`~tensorforge.serve.batching.DynamicBatcher` the server uses, in front of
  engine sessions (or any ``execute`` callable). Input arrays are made once, before
  the run (seeded random data shaped by the engine's specs), so issuing is just
  ``submit``.
* :class:`NoopTarget` — completes every request inside ``issue``; measures the
  generator itself (its self-capacity and its clock accuracy).
* ``sleep:5ms`` — the batcher in front of an executor that sleeps 5 ms per sample: a
  target with a known service time, to check the generator's arithmetic end to end.

Remote KServe v2 targets (``http://``, ``grpc://``) live in :mod:`.remote`; :func:`open_target`
picks the right one from a target string.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Protocol, Sequence

import numpy as np

from ..core.specs import TensorSpec, random_inputs
from ..core.streams import threads_per_worker
from ..errors import InputError

if TYPE_CHECKING:
    from ..engine.runtime import Engine
    from ..serve.batching import BatcherConfig, DynamicBatcher
    from ..serve.merge import Grouping

__all__ = ["DoneFn", "Target", "NoopTarget", "BatcherTarget", "sleep_executor", "open_target", "parse_sleep_spec"]

DoneFn = Callable[[int, "BaseException | None", "Mapping[str, np.ndarray] | None"], None]
"""``done(tag, error, outputs)``: called once per request; ``outputs`` may be None (remote targets)."""

_PAYLOAD_BUDGET_BYTES = 64 << 20     # pre-made input arrays per batch size, at most this much


class Target(Protocol):
    """Anything the generator can load. ``issue`` must not block (beyond a refusal it raises).

    A target may also carry a ``clock`` attribute (a :class:`~.pacing.Clock`): the generator then
    reads time and waits on it instead of the real clock — how a simulated target runs on
    simulated time (the tests' ``loadgen_sim``)."""

    name: str
    kind: str               # "in-process" | "noop" | "http" | "grpc"
    max_batch: int          # most samples one request may carry
    max_in_flight: int      # most requests the target should hold at once (back-pressure for Offline)

    def prepare(self, batch_sizes: Iterable[int]) -> None:
        """Make the request payloads for these batch sizes before the run (off the timed path)."""

    def issue(self, tag: int, batch: int, done: DoneFn, feeds: Mapping[str, np.ndarray] | None = None) -> None:
        """Send one request of ``batch`` samples (the prepared payload, or ``feeds``); ``done`` fires once."""

    def saturating_window(self, batch: int) -> int:
        """About how many outstanding requests of ``batch`` samples keep the target fully busy."""

    def describe(self) -> dict[str, Any]:
        """Every setting of the target, for the results JSON."""

    def close(self) -> None:
        """Release threads, sessions and connections."""


class NoopTarget:
    """Completes each request at once, in the issuing thread: the generator's own cost, nothing else."""

    kind = "noop"

    def __init__(self, max_batch: int = 1) -> None:
        self.name = "noop"
        self.max_batch = max_batch
        self.max_in_flight = 1 << 20

    def prepare(self, batch_sizes: Iterable[int]) -> None:
        pass

    def issue(self, tag: int, batch: int, done: DoneFn, feeds: Mapping[str, np.ndarray] | None = None) -> None:
        done(tag, None, None)

    def saturating_window(self, batch: int) -> int:
        return 1

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name}

    def close(self) -> None:
        pass


class BatcherTarget:
    """In-process target: the server's :class:`DynamicBatcher` in front of ``execute`` callables."""

    kind = "in-process"

    def __init__(self, execute: Callable[[dict[str, np.ndarray]], Mapping[str, np.ndarray]]
                 | Sequence[Callable[[dict[str, np.ndarray]], Mapping[str, np.ndarray]]],
                 input_specs: Sequence[TensorSpec], config: "BatcherConfig | None" = None, *,
                 name: str = "model", details: Mapping[str, Any] | None = None, seed: int = 0,
                 opt_shapes: Mapping[str, Sequence[int]] | None = None, inputs: Any = None,
                 grouping: "Grouping | None" = None) -> None:
        from ..serve.batching import BatcherConfig, DynamicBatcher

        self.config = config if config is not None else BatcherConfig()
        self.name = name
        self.max_batch = self.config.max_batch_size
        self.max_in_flight = self.config.max_queue_size
        self.input_specs = list(input_specs)
        self._opt = opt_shapes      # the engine's profile "opt": non-batch dynamic axes (sequence length), not 1
        self._details = dict(details or {})
        self._seed = seed
        self._inputs = inputs       # real data: an object whose feeds(batch) gives feed dicts (bench.inputs)
        self._payloads: dict[int, list[dict[str, np.ndarray]]] = {}
        self.grouping = grouping    # how the batcher merges requests (None: rows of equal shape)
        self.batcher: DynamicBatcher = DynamicBatcher(execute, self.config, name=name, grouping=grouping)

    def prepare(self, batch_sizes: Iterable[int]) -> None:
        for b in sorted(set(batch_sizes)):
            if b in self._payloads:
                continue
            if b > self.max_batch:
                raise InputError(f"a request of {b} samples exceeds the batcher's max_batch_size {self.max_batch}")
            if self._inputs is not None:     # the data's rows in turn, checked against this target's inputs
                from ..core.feeds import check_feeds

                self._payloads[b] = [check_feeds(f, self.input_specs, model=self.name) for f in self._inputs.feeds(b)]
                continue
            first = random_inputs(self.input_specs, b, self._seed + b, opt=self._opt)
            size = sum(a.nbytes for a in first.values())
            copies = int(max(1, min(4, _PAYLOAD_BUDGET_BYTES // max(size, 1))))
            self._payloads[b] = [first] + [random_inputs(self.input_specs, b, self._seed + b + 7919 * i, opt=self._opt)
                                           for i in range(1, copies)]

    def issue(self, tag: int, batch: int, done: DoneFn, feeds: Mapping[str, np.ndarray] | None = None) -> None:
        if feeds is None:
            pool = self._payloads.get(batch)
            if pool is None:
                self.prepare([batch])
                pool = self._payloads[batch]
            feeds = pool[tag % len(pool)]
        try:
            future = self.batcher.submit(feeds)
        except Exception as exc:  # QueueFullError, ModelUnavailable: the request failed, the run goes on
            done(tag, exc, None)
            return

        def _finished(f: Any) -> None:
            exc = f.exception()
            done(tag, exc, None if exc is not None else f.result())

        future.add_done_callback(_finished)

    def saturating_window(self, batch: int) -> int:
        # every instance busy with a full batch, and as many requests again queued behind them
        per_batch = -(-self.config.max_batch_size // max(1, batch))
        return min(self.max_in_flight, 2 * self.config.instances * per_batch)

    def describe(self) -> dict[str, Any]:
        from ..core.specs import concrete_shape

        # each input's shape as sent at batch 1: what the non-batch dynamic axes (a sequence length) were set to
        # (with given data — files or a length distribution — the data's own shapes are sent instead)
        given = self._inputs is not None
        return {"kind": self.kind, "name": self.name, "batcher": self.config.to_dict(),
                "inputs": [{**s.to_dict(), **({} if given else
                                              {"load_shape_at_batch_1": list(concrete_shape(s, 1, self._opt))})}
                           for s in self.input_specs], **self._details,
                **({"padding": pad} if (pad := self.padding_stats()) is not None else {})}

    def batcher_stats(self) -> dict[str, Any]:
        return self.batcher.stats()

    def padding_stats(self) -> dict[str, Any] | None:
        """Real and padding positions sent so far, when the batcher pads by length (else None)."""
        stats = getattr(self.grouping, "padding_stats", None)
        return stats() if stats is not None else None

    def close(self) -> None:
        self.batcher.close(drain=True, timeout_s=30.0)

    # -- constructors ---------------------------------------------------------------------------
    @classmethod
    def from_engine(cls, engine: "Engine", config: "BatcherConfig | None" = None, *, threads: int | None = None,
                    seed: int = 0, inputs: Any = None, grouping: "Grouping | None" = None) -> "BatcherTarget":
        """One engine session per batcher instance; ``threads`` intra-op threads each (default: cores/instances).

        As the server loads it: the batch capped at the profiles' max batch, and requests grouped the way
        the server groups them (a sequence model with an attention mask: padded by length bucket,
        :mod:`tensorforge.serve.padding`); ``grouping`` overrides that (``RowGrouping()``: equal shapes only)."""
        from ..serve.batching import BatcherConfig
        from ..serve.config import ModelConfig
        from ..serve.repository import cap_to_profiles, grouping_for

        config = config if config is not None else BatcherConfig()
        if engine.max_batch is not None and engine.max_batch < config.max_batch_size:
            raise InputError(f"engine {engine.name!r} accepts at most {engine.max_batch} samples per call; "
                             f"use max_batch_size={engine.max_batch} or less, or rebuild with a larger max_batch=")
        if threads is None:
            threads = threads_per_worker(config.instances)
        # the server's own thread instance (a Session; inputs are made valid here, so no per-call finite scan)
        from ..serve.worker import ThreadInstance

        instances = [ThreadInstance(engine, threads) for _ in range(config.instances)]
        details = {"engine": str(engine.path) if engine.path else None, "threads_per_instance": threads,
                   "backend": engine.manifest.backend.name}
        profiles = engine.manifest.profiles
        static = any(s.shape and isinstance(s.shape[0], int) for s in engine.inputs)
        if not static:
            config = cap_to_profiles(config, profiles)
            if grouping is None:
                grouping = grouping_for(engine.name, engine, ModelConfig(batcher=config), profiles)
        details["grouping"] = type(grouping).__name__ if grouping is not None else "RowGrouping"
        return cls([i.run for i in instances], engine.inputs, config, name=engine.name, details=details, seed=seed,
                   opt_shapes=profiles[0].shapes("opt") if profiles else None, inputs=inputs, grouping=grouping)

    @classmethod
    def sleeping(cls, ms_per_sample: float, config: "BatcherConfig | None" = None, *, ms_per_batch: float = 0.0,
                 seed: int = 0) -> "BatcherTarget":
        """The batcher before executors sleeping ``ms_per_batch + rows * ms_per_sample``: a known service time."""
        from ..serve.batching import BatcherConfig

        config = config if config is not None else BatcherConfig(max_batch_size=1, max_queue_delay_ms=0.0)
        spec = TensorSpec("x", "float32", ("N", 1))
        details = {"service_ms_per_sample": ms_per_sample, "service_ms_per_batch": ms_per_batch,
                   "capacity_sps": _sleep_capacity(ms_per_sample, ms_per_batch, config)}
        execs = [sleep_executor(ms_per_sample, ms_per_batch) for _ in range(config.instances)]
        return cls(execs, [spec], config, name=f"sleep:{ms_per_sample:g}ms", details=details, seed=seed)


def _sleep_capacity(ms_per_sample: float, ms_per_batch: float, config: "BatcherConfig") -> float:
    per_batch_ms = ms_per_batch + ms_per_sample * config.max_batch_size
    return config.instances * config.max_batch_size * 1000.0 / per_batch_ms if per_batch_ms > 0 else float("inf")


def sleep_executor(ms_per_sample: float, ms_per_batch: float = 0.0
                   ) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """An ``execute`` whose service time is a real sleep of ``ms_per_batch + rows * ms_per_sample``."""
    if ms_per_sample < 0 or ms_per_batch < 0:
        raise InputError("sleep service times must be >= 0 ms")

    def execute(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = int(next(iter(feeds.values())).shape[0])
        time.sleep((ms_per_batch + rows * ms_per_sample) / 1000.0)
        return {"y": np.zeros((rows, 1), np.float32)}

    return execute


def parse_sleep_spec(text: str) -> float:
    """``sleep:5ms`` → 5.0 (ms per sample)."""
    body = text.split(":", 1)[1].strip().lower()
    number = body[:-2] if body.endswith("ms") else body
    try:
        value = float(number)
    except ValueError:
        raise InputError(f"bad synthetic target {text!r}; write the service time per sample, e.g. sleep:5ms") from None
    if not value >= 0:
        raise InputError(f"bad synthetic target {text!r}: the service time must be >= 0 ms")
    return value


def open_target(spec: str, *, config: "BatcherConfig | None" = None, threads: int | None = None,
                model: str | None = None, version: str | None = None, concurrency: int = 64,
                max_batch: int | None = None, seed: int = 0, inputs: Any = None) -> Target:
    """A target from a string: ``noop``, ``sleep:5ms``, an ``http://``/``grpc://`` KServe v2 URL, or an
    engine file / ONNX file / zoo name (built in memory, run in-process through the batcher).

    >>> t = open_target("tiny_mlp")          # doctest: +SKIP
    """
    text = os.fspath(spec)
    low = text.lower()
    if inputs is not None and (low.startswith(("http://", "https://", "grpc://", "sleep:")) or low == "noop"):
        raise InputError(f"`inputs` (real input data) feed an in-process model (engine file, ONNX file, zoo name); "
                         f"target {text} sends its own data — leave `inputs` out for it")
    if low.startswith(("http://", "https://", "grpc://")):
        from .remote import open_remote

        if not model:
            raise InputError(f"target {text} is a server: name the model with model=NAME")
        return open_remote(text, model, version=version, concurrency=concurrency, max_batch=max_batch, seed=seed)
    if model is not None or version is not None:
        raise InputError("`model` and `model_version` apply to server URLs (http://…, grpc://…); an engine file or "
                         "zoo name is loaded in-process")
    if low == "noop":
        return NoopTarget()
    if low.startswith("sleep:"):
        return BatcherTarget.sleeping(parse_sleep_spec(text), config, seed=seed)
    return BatcherTarget.from_engine(_load_engine(text, threads), config, threads=threads, seed=seed, inputs=inputs)


def _load_engine(source: str, threads: int | None) -> "Engine":
    """The engine of an engine file, or one built in memory (named after its source) from any other source."""
    from ..engine.build import BuildOptions, build
    from ..engine.source import resolve_source

    src = resolve_source(source)
    if src.engine is not None:
        return src.engine
    return build(src, options=BuildOptions(threads=threads))[0]
