"""``profile``: the time of each layer of an engine, named by its ONNX nodes, and the precision it ran in.

It answers "which layer is slow, and did it really run in INT8". Method:

* random inputs at ``batch`` (seeded), the engine's recorded backend and settings unless
  ``backend`` overrides them;
* ``warmup`` unprofiled runs, then ``runs`` runs under the backend's own profiler (ONNX
  Runtime's trace, OpenVINO's performance counters), each also wall-timed;
* a layer's time is the median over the profiled runs — or the mean, where the backend keeps
  only running means (OpenVINO), and then the run time is a mean as well (stated in ``notes``);
* ``run_ms`` is the wall time of the same profiled runs; ``coverage_pct`` the share of a run spent
  in the layers — the median over the runs of each run's summed layer time over its wall time
  (for means: the sum of the layers' means over the mean run) — and ``layers_total_ms`` that
  share of ``run_ms``. Framework overhead, input/output copies and the profiler itself show as
  the gap. ``share_pct`` is a layer's share of the summed rows;
* a row covering several payload nodes is named ``fused: a, b``; the Quantize/DequantizeLinear
  nodes folded into an int8 kernel are listed in ``onnx_nodes`` but not in the name; a row
  with no payload node (a layout reorder the backend inserted) keeps the backend's name and
  ``mapped=False``; rows that did not run or took no measurable time are kept in ``idle``.

>>> result = profile_engine("m8.tfe", batch=1, runs=20)          # doctest: +SKIP
>>> [(l.name, l.precision, round(l.share_pct)) for l in result.layers[:2]]   # doctest: +SKIP
[('features.16.expand', 'int8', 6), ('features.0', 'int8', 5)]
"""

from __future__ import annotations

import importlib
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import onnx

from ..backends.base import SessionConfig
from ..backends.profiling import QDQ_OPS, GraphIndex, RawLayerTime, RawProfile
from ..backends.registry import get_backend
from ..core.specs import random_inputs
from ..engine.runtime import Engine
from ..errors import BackendUnavailable, InputError

SCHEMA = "tensorforge.profile/1"
PROFILING_BACKENDS = ("onnxruntime", "openvino")     # the backends whose module offers profile_layers
Profiler = Callable[[bytes, SessionConfig, Mapping[str, np.ndarray], int, int], RawProfile]


@dataclass(frozen=True)
class LayerTime:
    """One kernel the backend ran. ``share_pct`` is its share of the summed layer time."""

    name: str                       # the payload node, "fused: a, b", or the backend's name when unmapped
    onnx_nodes: tuple[str, ...]     # every payload node it covers, in graph order (Q/DQ included)
    op_type: str                    # ONNX op type(s) of the named nodes ("Conv+Relu"); the backend's when unmapped
    kernel: str                     # what the backend ran (ORT kernel op, OpenVINO exec type)
    precision: str                  # int8 | fp32 | fp16 | bf16 | int32 | int64 | bool | unknown
    time_ms: float
    share_pct: float
    mapped: bool
    backend_name: str               # the backend's own name for the row


@dataclass(frozen=True)
class ProfileResult:
    engine: str
    engine_precision: str
    backend: str
    device: str
    batch: int
    runs: int
    warmup: int
    statistic: str                  # "median" (per-run times) or "mean" (the backend keeps running means)
    run_ms: float                   # wall time of one profiled run
    layers_total_ms: float          # time a run spent in the layers: coverage_pct of run_ms
    coverage_pct: float             # median per-run share of the wall time spent in the layers
    layers: tuple[LayerTime, ...]   # slowest first
    idle: tuple[LayerTime, ...] = ()                # listed by the backend but not run, or no measurable time
    precision_summary: Mapping[str, float] = field(default_factory=dict)   # precision → % of layer time
    notes: tuple[str, ...] = ()

    def top(self, k: int) -> tuple[LayerTime, ...]:
        return self.layers[:max(k, 0)]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["precision_summary"] = dict(self.precision_summary)
        return {"schema": SCHEMA, **data}


def check_batch(engine: Engine, batch: int, *, name: str = "batch") -> None:
    """Raise InputError when ``batch`` cannot run on ``engine``; ``name`` is what the caller calls it."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise InputError(f"{name} must be a positive integer, got {batch!r}")
    for spec in engine.inputs:
        dim = spec.shape[0] if spec.shape else None
        if isinstance(dim, int) and dim != batch:
            raise InputError(f"{name} {batch} does not fit engine {engine.name!r}: input {spec.name!r} has a fixed "
                             f"batch of {dim} {spec.shape_str()}; profile at {name} {dim}, or rebuild the engine "
                             "with a dynamic batch (max_batch)")
    if engine.max_batch is not None and batch > engine.max_batch:
        raise InputError(f"{name} {batch} exceeds engine {engine.name!r}'s max batch {engine.max_batch}; profile at "
                         f"{name} <= {engine.max_batch}, or rebuild the engine with max_batch >= {batch}")


def profiler_for(backend: str) -> Profiler:
    """The ``profile_layers`` function of ``backend``'s module; BackendUnavailable when it has none."""
    target = get_backend(backend)            # unknown or unusable here: BackendUnavailable with the reason
    module = importlib.import_module(type(target).__module__)
    fn = getattr(module, "profile_layers", None)
    if fn is None:
        raise BackendUnavailable(f"backend {backend!r} has no per-layer profiler; profiling supports "
                                 f"{' and '.join(PROFILING_BACKENDS)} — pass backend='onnxruntime'")
    return fn  # type: ignore[no-any-return]


def profile_engine(engine_or_path: Engine | str | os.PathLike[str], *, batch: int = 1, runs: int = 20,
                   warmup: int = 5, backend: str | None = None, seed: int = 0) -> ProfileResult:
    """Profile ``engine_or_path`` layer by layer (see the module docstring for the method).

    ``backend`` defaults to the one the engine records, with its recorded settings; another
    backend runs with the recorded device and threads but not the recorded backend options.
    """
    engine = engine_or_path if isinstance(engine_or_path, Engine) else Engine.load(engine_or_path)
    check_batch(engine, batch)
    for label, value, low in (("runs", runs, 1), ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InputError(f"{label} must be an integer >= {low}, got {value!r}")
    recorded = engine.manifest.backend
    settings = recorded.settings.session_config()
    recorded_name = recorded.name
    name = backend or recorded_name
    notes: list[str] = []
    options = dict(settings.options)
    if name != recorded_name and options:
        notes.append(f"backend {name} overrides the recorded {recorded_name}; its recorded options {options} "
                     "were not applied")
        options = {}
    config = SessionConfig(device=settings.device, threads=settings.threads, options=options)
    profiler = profiler_for(name)
    opt = engine.manifest.profiles[0].shapes("opt") if engine.manifest.profiles else None
    feeds = random_inputs(engine.inputs, batch, seed, opt=opt)
    if opt:
        notes.append("symbolic non-batch input axes at the shape profile's opt: "
                     + ", ".join(f"{k} {'x'.join(map(str, a.shape))}" for k, a in feeds.items()))
    elif any(isinstance(d, str) or d is None for s in engine.inputs for d in s.shape[1:]):
        notes.append("symbolic non-batch input axes were set to 1")
    raw = profiler(engine.model_bytes, config, feeds, runs, warmup)
    return summarize(raw, engine, batch=batch, runs=runs, warmup=warmup, device=config.device, notes=notes)


def summarize(raw: RawProfile, engine: Engine, *, batch: int, runs: int, warmup: int, device: str = "cpu",
              notes: list[str] | None = None) -> ProfileResult:
    """Turn a backend's raw rows into named, ranked layers with shares, precisions and notes."""
    index = GraphIndex(onnx.load_from_string(engine.model_bytes))
    stat = np.median if raw.statistic == "median" else np.mean
    timed = [(row, float(stat(row.times_ms)) if row.times_ms else 0.0) for row in raw.layers]
    busy = [(row, t) for row, t in timed if row.executed and t > 0.0]
    rows_ms = sum(t for _, t in busy)
    layers = sorted((_layer(row, t, rows_ms, index) for row, t in busy), key=lambda layer: -layer.time_ms)
    idle = tuple(_layer(row, t, rows_ms, index) for row, t in timed if not (row.executed and t > 0.0))
    run_ms = float(stat(raw.run_ms)) if raw.run_ms else 0.0
    # Pair layer time with wall time run by run: the median of the per-run shares (a run slowed inside
    # or outside its kernels moves both or only one), times the median run. The sum of the per-layer
    # medians would leave out every run where some layer was slowed (a busy machine).
    ran = [row.times_ms for row in raw.layers if row.executed and len(row.times_ms) == len(raw.run_ms)]
    walls = np.asarray(raw.run_ms, dtype=np.float64)
    if raw.statistic == "median" and ran and walls.size and np.all(walls > 0):
        share = float(np.median(np.sum(np.asarray(ran, dtype=np.float64), axis=0) / walls))
        total_ms = share * run_ms
    else:
        total_ms = rows_ms          # means add up: the sum of the layers' means is the mean per-run sum
    summary: dict[str, float] = {}
    for layer in layers:
        summary[layer.precision] = summary.get(layer.precision, 0.0) + layer.share_pct
    notes = list(notes or []) + list(raw.notes)
    if total_ms > 0 and abs(rows_ms - total_ms) > 0.1 * total_ms:
        notes.append(f"the layers' medians add up to {rows_ms:.3f} ms but a median run spent {total_ms:.3f} ms in "
                     "layers: runs were slowed at random layers (a busy machine?); profile again on a quiet one, "
                     "or with more runs, for steadier per-layer times")
    unmapped = [layer for layer in layers if not layer.mapped]
    if unmapped:
        notes.append(f"{len(unmapped)} row(s) match no payload node (layout reorders or transposes the backend "
                     f"inserted): kept under the backend's names with mapped=False, "
                     f"{sum(layer.share_pct for layer in unmapped):.1f} % of layer time")
    if idle:
        notes.append(f"{len(idle)} row(s) did not run or took no measurable time (fused into another kernel, "
                     "optimized out, or under the profiler's 1 µs resolution): listed under idle, not in layers")
    seen = {n for layer in (*layers, *idle) for n in layer.onnx_nodes}
    absent = [n for n in index.order if n not in seen]
    if absent:
        shown = ", ".join(absent[:5]) + (", …" if len(absent) > 5 else "")
        notes.append(f"{len(absent)} of {len(index.order)} payload node(s) appear in no row — folded into "
                     f"constants or removed by the backend's optimizer: {shown}")
    return ProfileResult(
        engine=engine.name, engine_precision=engine.manifest.precision, backend=raw.backend,
        device=device, batch=batch, runs=runs, warmup=warmup, statistic=raw.statistic, run_ms=run_ms,
        layers_total_ms=total_ms, coverage_pct=100.0 * total_ms / run_ms if run_ms > 0 else 0.0,
        layers=tuple(layers), idle=idle,
        precision_summary=dict(sorted(summary.items(), key=lambda kv: -kv[1])), notes=tuple(notes))


def _layer(row: RawLayerTime, time_ms: float, total_ms: float, index: GraphIndex) -> LayerTime:
    nodes = index.sort(row.onnx_nodes)
    named = [n for n in nodes if index.op_types[n] not in QDQ_OPS] or list(nodes)
    if not named:
        name, op_type = row.name, row.op_type
    elif len(named) == 1:
        name, op_type = named[0], index.op_types[named[0]]
    else:
        name, op_type = "fused: " + ", ".join(named), "+".join(index.op_types[n] for n in named)
    share = 100.0 * time_ms / total_ms if total_ms > 0 and row.executed and time_ms > 0 else 0.0
    return LayerTime(name=name, onnx_nodes=nodes, op_type=op_type, kernel=row.kernel, precision=row.precision,
                     time_ms=time_ms, share_pct=share, mapped=bool(nodes), backend_name=row.name)
