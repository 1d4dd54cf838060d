"""``bench``: the trtexec/giexec analog — throughput, latency percentiles, memory, power per batch size.

Method (the whitepapers' "Test Methodology", made explicit):
  * random inputs shaped by the model (seeded), the same arrays for us and the peer;
  * per batch size: warm up for ``warmup_s``, then time back-to-back calls for
    ``duration_s`` (and at least ``min_iterations``) with a monotonic clock;
  * with ``baseline``, our engine and bare ONNX Runtime alternate in ``rounds`` slices
    (ABAB…), so drift on a shared machine hits both alike;
  * report min/mean/p50/p90/p95/p99/max, the spread of per-window medians (noise), and
    a warning when the run is too noisy to trust;
  * power, perf/W and J/sample only from a real sensor (RAPL, NVML); otherwise "n/a"
    with the reason;
  * with ``streams`` N > 1: one session (weights shared) with ``cores // N`` intra-op
    threads unless ``threads`` is given, driven by N threads at once (a
    :class:`~tensorforge.core.streams.StreamPool`); each timed call is one wave of N
    requests, throughput is samples/s over the wall time of all streams together and the
    latencies are per request. The baseline peer runs the same N streams on its own
    session with the same threads, so the speedup stays like for like. With
    ``split_threads=False`` (the CLI's ``--concurrency``) the thread count stays as given (or the
    backend's default) at every level: a load sweep of N requests in flight against one fixed
    session, as perf_analyzer's ``--concurrency-range`` does;
  * ``iterations`` replaces the time budget by a fixed count of timed calls per row (after the
    warm-up), spread over the rounds; ``keep_times`` keeps each request's latency in the row
    (``times_ms``) for export; ``input_data`` (a .npy/.npz file or an image folder,
    :mod:`tensorforge.bench.inputs`) replaces the random inputs, the calls cycling through its rows;
  * ``backend`` builds an ONNX file or zoo name for that backend (an engine file keeps its own);
  * ``seq_lengths`` (sequence models): one row per batch × length, the first dynamic non-batch axis of
    each input set to the length (other axes at the profile's "opt"), random token ids as above (every
    position real, no padding), so ``tokens_per_s`` = samples/s × length. Every (batch, length) must lie
    inside one of the engine's shape profiles, checked before any measuring.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Callable

import onnx

from ..core.host import host_fingerprint, library_versions
from ..core.profiles import ShapeProfile, profile_for
from ..core.specs import TensorSpec, concrete_shape, random_inputs
from ..core.streams import StreamPool
from ..core.timing import Measurement, Timer, paired_timing
from ..engine.build import BuildOptions, build
from ..engine.runtime import Engine
from ..engine.source import resolve_source
from ..errors import InputError, ResourceError, TensorForgeError
from . import footprint
from .inputs import read_inputs
from .memory import PeakMemory, available_memory_bytes
from .options import (  # noqa: F401  (BenchRow, the parsers and WHITEPAPER_BATCHES: re-exported, as before the split)
    WHITEPAPER_BATCHES,
    BenchOptions,
    BenchResult,
    BenchRow,
    batches_from_text,
    lengths_from_text,
    streams_from_text,
)
from .peers import bare_onnxruntime, ort_version
from .power import PowerReading, PowerUnavailable, detect_power_meter

MEMORY_SAFETY = 0.8    # refuse a batch whose estimate exceeds this share of available memory
ProgressFn = Callable[[str, float], None]


def _load_target(target: Any, options: BenchOptions) -> tuple[Engine, bytes | None, str, list[str]]:
    """(engine, original ONNX bytes for the baseline or None, label, build warnings).

    ``input_data`` is read and checked against the model's inputs before any build starts."""
    src = resolve_source(target)
    engine = src.engine
    if options.input_data is not None:
        from ..core.specs import io_specs

        read_inputs(options.input_data, engine.inputs if engine is not None else io_specs(src.onnx_model())[0],
                    model=src.name)
    if engine is not None:
        if options.backend is not None and options.backend != engine.manifest.backend.name:
            raise InputError(f"{engine.name!r} is an engine file built for {engine.manifest.backend.name!r}; its "
                             f"backend is fixed at build time. Bench the ONNX file or zoo name with "
                             f"backend={options.backend}, or rebuild it with that backend")
        built = engine.manifest.precision
        if options.precision != "fp32" and options.precision != built:
            raise InputError(f"{engine.name!r} is a {built} engine; its precision is fixed at build time. Bench the "
                             "ONNX file or zoo name to compare precisions")
        if options.shapes is not None:
            raise InputError(f"{engine.name!r} is an engine file: its shape profiles were fixed when it was built; "
                             "rebuild it with `shapes`, or bench the ONNX file or zoo name with `shapes`")
        return engine, _original_bytes(engine), engine.name, []
    model = src.onnx_model()
    calibration = options.calibration
    if options.precision == "int8" and calibration is None:
        calibration = "random"
    engine, report = build(src, options=BuildOptions(threads=options.threads, precision=options.precision,
                                                     calibration=calibration, shapes=options.shapes,
                                                     backend=options.backend))
    return engine, model.SerializeToString(), src.name, list(report.warnings)


def _original_bytes(engine: Engine) -> bytes | None:
    """The model an engine was built from, if it can still be found and its hash matches."""
    from ..graph.io import model_hash

    model_info = engine.manifest.model
    source = model_info.source or ""
    try:
        model = resolve_source(source).model       # "zoo:NAME" / "trained:NAME" / a path, as recorded
    except TensorForgeError:
        return None
    if model is None or model_hash(model) != model_info.sha256_original:
        return None
    return model.SerializeToString()


def bench(target: Any, options: BenchOptions = BenchOptions(), progress: ProgressFn | None = None) -> BenchResult:
    """Measure an engine file, ONNX file or zoo model at each batch size.

    >>> result = bench("mobilenet_v2", BenchOptions(batches=(1, 8), baseline=True))   # doctest: +SKIP
    >>> result.rows[0].engine.throughput_sps                                           # doctest: +SKIP
    """
    engine, original, label, warnings = _load_target(target, options)
    if options.baseline and original is None:
        warnings.append("baseline skipped: the engine's original model could not be found (or its hash differs); "
                        "bench the ONNX file or zoo name instead of the engine to get a baseline")
    optimized = onnx.load_from_string(engine.model_bytes)
    spec0 = engine.inputs[0] if engine.inputs else None
    fixed_batch = spec0.shape[0] if spec0 and spec0.shape and isinstance(spec0.shape[0], int) else None
    for b in options.batches:
        if fixed_batch is not None and b != fixed_batch:
            raise InputError(f"{label!r} has a fixed batch of {fixed_batch}; it cannot run batch {b}. Rebuild it "
                             f"with BuildOptions(max_batch={max(options.batches)}) to make it dynamic (command line: "
                             f"`tensorforge build MODEL --max-batch {max(options.batches)}`)")
        if engine.max_batch is not None and b > engine.max_batch:
            raise InputError(f"batch {b} exceeds the engine's max batch {engine.max_batch}")

    # Non-batch dynamic axes (a sequence length) at the engine's shape profile "opt", not 1.
    opt_shapes = engine.manifest.profiles[0].shapes("opt") if engine.manifest.profiles else None
    # seq_lengths: each (batch, length) checked against the profiles before anything is measured
    length_shapes = _length_shapes(engine.inputs, list(engine.manifest.profiles), options, label, opt_shapes)

    # Refuse, up front, the batch sizes that would not fit in memory.
    per_sample = footprint.per_sample_activation_bytes(optimized)
    available = available_memory_bytes()
    estimates: dict[tuple[int, int], int] = {}
    for b in options.batches:
        for n in options.streams:      # N streams share the weights; each holds its own activations
            est = footprint.estimate_bytes(optimized, (1 if fixed_batch else b) * n, per_sample=per_sample)
            est *= 2 if options.baseline and original is not None else 1
            estimates[b, n] = est
            if est > MEMORY_SAFETY * available:
                fits = [x for x in options.batches if estimates.get((x, n), 0) <= MEMORY_SAFETY * available]
                raise ResourceError(
                    f"batch {b}{f' × {n} streams' if n > 1 else ''} of {label!r} needs an estimated "
                    f"{est / 2**30:.1f} GiB (weights + peak activations"
                    f"{' for engine and baseline' if options.baseline else ''}); this machine has "
                    f"{available / 2**30:.1f} GiB available. Use smaller batch sizes"
                    + (f" (e.g. up to {max(fits)})" if fits else "") + (" or fewer streams" if n > 1 else ""))

    meter = detect_power_meter("cpu")
    power_source = meter.reason if isinstance(meter, PowerUnavailable) else meter.name
    # One session (and one peer) per thread count: the streams of a row share its weights.
    thread_counts = dict.fromkeys(options.threads_for(n) for n in options.streams)
    sessions = {t: engine.session(threads=t, warn_host=False) for t in thread_counts}
    peers = ({t: bare_onnxruntime(original, t) for t in thread_counts}
             if options.baseline and original is not None else {})

    rows = []
    samples = read_inputs(options.input_data, engine.inputs, model=label) if options.input_data else None
    lengths: tuple[int | None, ...] = options.seq_lengths or (None,)
    cases = [(b, length, n) for b in options.batches for length in lengths for n in options.streams]
    for step, (batch, length, n) in enumerate(cases):
        where = (f"batch {batch}" + (f", length {length}" if length is not None else "")
                 + (f", {n} streams" if n > 1 else ""))
        if progress:
            progress(where, step / len(cases))
        threads = options.threads_for(n)
        if samples is None:
            shapes = opt_shapes if length is None else length_shapes[length]
            feeds = random_inputs(engine.inputs, batch, seed=options.seed + batch, opt=shapes)
            ours = _Contender(sessions[threads].run, n)
            theirs = _Contender(peers[threads], n) if peers else None
        else:
            cycle = samples.feeds(batch)
            feeds = cycle[0]
            ours = _Contender(_cycling(sessions[threads].run, cycle), n)
            theirs = _Contender(_cycling(peers[threads], cycle), n) if peers else None
        try:
            row = _measure_row(options, meter, power_source, feeds, ours, theirs, batch=batch, streams=n,
                               threads=threads, estimated_bytes=estimates[batch, n], where=where, warnings=warnings,
                               seq_len=length)
        finally:
            ours.close()
            if theirs:
                theirs.close()
        rows.append(row)
    if progress:
        progress("done", 1.0)
    model_info = {
        "name": label,
        "source": engine.manifest.model.source,
        "inputs": [{"name": s.name, "dtype": s.dtype, "shape": list(s.shape),
                    "bench_shape_at_batch_1": list(concrete_shape(s, 1, opt_shapes))} for s in engine.inputs],
        "precision": engine.manifest.precision,
        "backend": engine.manifest.backend.name,
        "input_data": samples.describe() if samples is not None else "random (seeded)",
    }
    libraries = library_versions()
    if peers:
        libraries["baseline"] = (f"onnxruntime {ort_version()} InferenceSession, default SessionOptions"
                                 + (", the engine's streams and threads" if options.streams != (1,) else ""))
    return BenchResult(model=model_info, options=asdict(options), host=host_fingerprint(), libraries=libraries,
                       power_source=power_source, rows=rows, warnings=warnings)


def _length_shapes(specs: list[TensorSpec], profiles: list[ShapeProfile], options: BenchOptions, label: str,
                   opt: dict[str, tuple[int, ...]] | None) -> dict[int, dict[str, tuple[int, ...]]]:
    """``{length: {input: shape at batch 1}}`` for ``options.seq_lengths``: each input's first dynamic non-batch
    axis set to the length, its other axes as :func:`concrete_shape` puts them. InputError (naming
    ``seq_lengths``, the length and the profile's range) when a length or a (batch, length) fits no profile."""
    if not options.seq_lengths:
        return {}
    axes = {s.name: i for s in specs for i in [next((a for a, d in enumerate(s.shape) if a > 0
                                                      and not isinstance(d, int)), None)] if i is not None}
    if not axes:
        shapes = ", ".join(f"{s.name} {list(s.shape)}" for s in specs)
        raise InputError(f"`seq_lengths` needs a sequence model, but no input of {label!r} has a dynamic axis beyond "
                         f"the batch ({shapes}); leave `seq_lengths` out")

    def ranges() -> str:     # "input_ids 8..128" per profile
        return " or ".join(", ".join(f"{ip.name} {ip.min[axes[ip.name]]}..{ip.max[axes[ip.name]]}"
                                     for ip in p.inputs if ip.name in axes) for p in profiles)

    out = {}
    for length in options.seq_lengths:
        at_1 = {}
        for s in specs:
            if s.name in axes:
                shape = list(concrete_shape(s, 1, opt))
                shape[axes[s.name]] = length
                at_1[s.name] = tuple(shape)
        out[length] = at_1
        if not profiles:
            continue
        inside = [p for p in profiles if all(ip is None or ip.min[a] <= length <= ip.max[a]
                                             for ip, a in ((p.get(name), a) for name, a in axes.items()))]
        if not inside:
            raise InputError(f"`seq_lengths` {length} is outside the shape profile of {label!r} (sequence length "
                             f"{ranges()}); give lengths inside it, or rebuild with `shapes` covering {length}")
        for b in options.batches:
            at_b = {s.name: concrete_shape(s, b, at_1) for s in specs if s.name in at_1}
            if profile_for(profiles, at_b) is None:
                raise InputError(f"batch {b} at `seq_lengths` {length} fits none of the shape profiles of {label!r} "
                                 f"({' | '.join(p.text() for p in profiles)}); choose batches and lengths inside "
                                 "one profile, or rebuild with `shapes` covering them")
    return out


def _cycling(run: Callable[[Any], Any], cycle: list[dict[str, Any]]) -> Callable[[Any], Any]:
    """``run`` on the next feeds of ``cycle`` at each call (the feeds passed are ignored): real input rows
    taken in turn. ``next`` of an itertools.cycle is atomic under the GIL, so streams may share it."""
    import itertools

    if len(cycle) == 1:
        return run
    feeds = itertools.cycle(cycle)
    return lambda _ignored: run(next(feeds))


class _Contender:
    """A Timer over one run function — through a StreamPool when N > 1, one call being one wave of N requests."""

    def __init__(self, run: Callable[[Any], Any], streams: int) -> None:
        self.pool = StreamPool(run, streams) if streams > 1 else None
        self.timer = Timer(self.pool if self.pool is not None else run, requests_per_call=streams)

    def warm(self, feeds: Any, seconds: float) -> None:
        self.timer.warm(feeds, seconds)
        if self.pool is not None:     # per-request latencies of the timed rounds only
            self.pool.reset_latencies()

    def measurement(self, batch: int, threshold_pct: float) -> Measurement:
        return self.timer.measurement(batch, threshold_pct, self.pool.latencies_ns if self.pool is not None else None)

    def times_ms(self) -> list[float]:
        """Each timed request's latency in ms, in completion order (a stream pool's per request)."""
        return [t / 1e6 for t in (self.pool.latencies_ns if self.pool is not None else self.timer.samples)]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()


def _measure_row(options: BenchOptions, meter: Any, power_source: str, feeds: Any, ours: _Contender,
                 theirs: _Contender | None, *, batch: int, streams: int, threads: int | None, estimated_bytes: int,
                 where: str, warnings: list[str], seq_len: int | None = None) -> BenchRow:
    """Warm both contenders, run the paired rounds (ABBA), and summarise one (batch, streams) row."""
    with PeakMemory(interval_s=0.02) as mem:   # a light sampler: the timing runs beside it
        ours.warm(feeds, options.warmup_s)
        if theirs:
            theirs.warm(feeds, options.warmup_s)
        energy_j, metered_s, readings = 0.0, 0.0, []
        counts = options.round_counts()        # --iterations: exact calls per round, no time budget
        rounds = len(counts) if counts else options.rounds
        slice_s = 0.0 if counts else options.duration_s / options.rounds
        per_round_min = max(1, -(-options.min_iterations // options.rounds))
        done = {"ours": 0, "theirs": 0}

        def calls(who: str) -> int:          # this round's count of timed calls for `who`
            r = done[who]
            done[who] += 1
            return counts[r] if counts else per_round_min

        def our_round() -> float:            # metered: the power reading covers our rounds only
            nonlocal energy_j, metered_s
            if not isinstance(meter, PowerUnavailable):
                meter.start()
            rate = ours.timer.run_for(feeds, slice_s, calls("ours"))
            if not isinstance(meter, PowerUnavailable):
                reading: PowerReading = meter.stop()
                energy_j += reading.energy_j
                metered_s += reading.duration_s
                readings.append(reading)
            return rate

        paired = paired_timing(our_round, (lambda: theirs.timer.run_for(feeds, slice_s, calls("theirs")))
                               if theirs else None, rounds)
    m = ours.measurement(batch, options.noise_threshold_pct)
    power_w = perf_w = j_per_sample = None
    if readings and metered_s > 0:
        power_w = energy_j / metered_s
        perf_w = m.throughput_sps / power_w if power_w > 0 else None
        j_per_sample = energy_j / (batch * m.iterations)      # iterations count requests
        power = {"source": power_source, "energy_j": energy_j, "duration_s": metered_s, "avg_power_w": power_w}
    else:
        power = {"unavailable": power_source}
    base = theirs.measurement(batch, options.noise_threshold_pct) if theirs else None
    speedup, speedup_noise, verdict = paired.median, paired.noise_pct, paired.verdict
    if m.noise["noisy"]:
        warnings.append(f"{where}: per-window medians spread {m.noise['spread_pct']:.1f}% "
                        f"(> {options.noise_threshold_pct:.0f}%): too noisy to trust; close other programs "
                        f"or raise `{'iterations' if options.iterations else 'duration_s'}`")
    return BenchRow(batch=batch, engine=m, peak_rss_bytes=mem.peak_bytes, estimated_bytes=estimated_bytes,
                    power=power, power_w=power_w, perf_per_watt=perf_w, energy_j_per_sample=j_per_sample,
                    baseline=base, speedup_vs_baseline=speedup, speedup_noise_pct=speedup_noise,
                    verdict_vs_baseline=verdict, streams=streams, threads=threads,
                    times_ms=ours.times_ms() if options.keep_times else None, seq_len=seq_len,
                    tokens_per_s=m.throughput_sps * seq_len if seq_len is not None else None)
