"""The build pipeline: model source → import → graph passes → verify → Engine file.

Nothing is written unless the optimized graph matches the original within the FP32 tolerance,
on inputs the model accepts (sample data, test data beside the model, else inputs in the model's
own shapes: see verify_inputs.py); the :class:`BuildReport` says what every step changed.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import time
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import onnx

from ..backends.registry import get_backend
from ..core.hashing import sha256
from ..core.host import host_fingerprint, isa_flags, library_versions
from ..core.precisions import BUILD_PRECISIONS
from ..core.profiles import ShapeProfile, parse_shapes
from ..core.progress import report as report_progress
from ..core.specs import io_specs
from ..core.tolerances import TOLERANCES
from ..errors import ConfigError, ModelError, VerificationError
from ..graph import analysis
from ..graph.batch import batch_dim_of, set_batch
from ..graph.io import model_hash, normalize
from ..graph.pipelines import run_pipeline
from ..prune import PruneSpec, parse_prune, prune_model, speed_note
from . import profile_step
from .device import backend_for_device, resolve_device
from .format import MODEL_PAYLOAD, write_engine
from .manifest import BackendRecord, BackendSettings, BuildRecord, Manifest, ModelInfo, freeze
from .runtime import Engine
from .source import ModelSource, resolve_source
from .verify import Verification, verify_build

if TYPE_CHECKING:       # the tune package is imported lazily: only a tuned build needs it
    from ..tune import Candidate, TuneResult
    from ..tune.joint import OptimizeResult


@dataclass(frozen=True)
class BuildOptions:
    """How to build. ``batch`` fixes the batch dimension; ``max_batch`` makes it dynamic
    with an upper bound checked at run time (both rewrite a model exported at batch 1)."""

    pipeline: str = "auto"                  # auto: transformer fusions for transformers (graph/transformer.py)
    batch: int | None = None
    max_batch: int | None = None
    backend: str | None = None               # None: onnxruntime, or the backend that has the device
    device: str = "cpu"                      # cpu | cuda | auto (see engine/device.py)
    threads: int | None = None
    verify: bool = True
    verify_batch: int = 2
    verify_data: Any = None                 # sample inputs to verify on: an .npz path or {input name: array}
    rtol: float = TOLERANCES["fp32"]       # max normalized error of the optimized graph (core.reference)
    seed: int = 0
    # reduced precision (see engine/precision_step.py and the precision package)
    precision: str = "fp32"                 # fp32 | fp16 | bf16 | int8 | best
    calibration: Any = None                 # INT8 data: folder, .npy/.npz, arrays, iterable, dataset name, "random"
    calibration_method: str = "percentile"  # minmax | entropy | percentile | mse
    calibration_cache: str | None = None    # a calibration cache file: read when it fits, else (re)written
    calibration_histograms: str | None = None   # a histogram file (tensorforge calibrate): every method reuses it
    calibration_preprocess: Any = None      # precision.Preprocess (resize, crop, scale, mean/std, layout)
    calibration_samples: int = 512          # at most this many calibration samples are read
    activations: str = "uint8"              # INT8 activations: uint8 (asymmetric) or int8 (symmetric)
    keep_first_last: bool = False           # keep the first and last compute layers in FP32
    accuracy_budget: str | float | None = None   # max top-1 drop in points, or "cosine:0.99"
    eval_data: Any = None                   # held-out data for the guard: EvalData, dataset name or .npz
    precision_rtol: float | None = None     # FP16/BF16 check tolerance (default per precision)
    # auto-tuning (the tune package): time backends × settings here, record the fastest verified one
    tune: str | None = None                 # None | "latency" | "throughput"
    tune_budget_s: float = 120.0
    tune_batch: int | None = None           # default: 1 for latency; `batch`, else min(max batch, 8) for throughput
    tune_cache: Any = None                  # a directory, None for the default one, False for none
    tune_backends: tuple[str, ...] | None = None    # limit the search to these backends
    # the joint search (tune/joint.py): precision × backend × settings under accuracy_budget, for an objective
    optimize: str | None = None             # None | "latency" | "throughput"
    precisions: tuple[str, ...] | None = None       # narrow optimize's precisions (default: all; or `precision`)
    # pruning before the passes (the prune package): "channels:30%" | "2:4" | "unstructured:70%"; a PruneSpec after init
    prune: str | PruneSpec | None = None
    # shape profiles (core/profiles.py): "input_ids:1x16,8x128,32x512", or a list of them (one per profile), or
    # ShapeProfile objects; parsed to a tuple of ShapeProfile. None: defaults derived from the model
    shapes: Any = None
    # a tokenizer.json path (or "auto": the shipped MiniLM's) stored in the engine: the server then takes raw text
    tokenizer: str | None = None

    def __post_init__(self) -> None:
        if self.batch is not None and self.max_batch is not None:
            raise ConfigError("give either batch (a fixed batch size) or max_batch (dynamic, bounded), not both")
        for label, value in (("batch", self.batch), ("max_batch", self.max_batch)):
            if value is not None and value < 1:
                raise ConfigError(f"`{label}` must be >= 1, got {value}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"`threads` must be >= 1 (or None for the backend's default), got {self.threads}")
        if self.precision not in BUILD_PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; use one of {', '.join(BUILD_PRECISIONS)}")
        if self.tune not in (None, "latency", "throughput"):
            raise ConfigError(f"unknown tuning objective {self.tune!r}; use latency or throughput")
        if self.optimize not in (None, "latency", "throughput"):
            raise ConfigError(f"unknown optimize objective {self.optimize!r}; use latency or throughput")
        if self.optimize is not None and self.tune is not None:
            raise ConfigError("give optimize or tune, not both: optimize searches the settings too")
        if self.precisions is not None and self.optimize is None:
            raise ConfigError("precisions narrows the optimize search; without optimize give precision")
        object.__setattr__(self, "prune", parse_prune(self.prune))   # parsed once; ConfigError on a bad spec
        object.__setattr__(self, "shapes", parse_shapes(self.shapes))


@dataclass(frozen=True)
class GraphSummary:
    nodes: int
    ops: dict[str, int]
    params: int
    macs_per_sample: int

    @classmethod
    def of(cls, model: onnx.ModelProto, profiles: Sequence[ShapeProfile] = ()) -> "GraphSummary":
        """The summary; MACs per sample at the first profile's opt shapes when there are profiles
        (a sequence model's work depends on its length), else at batch 1."""
        macs = (profile_step.macs_at(model, profiles[0].shapes("opt")) if profiles
                else analysis.count_macs(model, batch=1))
        return cls(nodes=len(model.graph.node), ops=analysis.op_histogram(model),
                   params=analysis.count_params(model), macs_per_sample=macs)


@dataclass(frozen=True)
class BuildReport:
    name: str
    source: str
    output: str | None
    notes: list[str]
    before: GraphSummary
    after: GraphSummary
    passes: list[dict[str, Any]]
    verification: Verification | None
    timings_s: dict[str, float]
    engine_bytes: int = 0
    warnings: list[str] = field(default_factory=list)
    precision: str = "fp32"
    precision_report: dict[str, Any] | None = None
    precision_check: dict[str, Any] | None = None
    tuning: TuneResult | None = None
    optimization: OptimizeResult | None = None
    backend: str = "onnxruntime"
    backend_settings: BackendSettings = BackendSettings()
    pruning: dict[str, Any] | None = None      # what prune= removed, its check, and what it does to speed

    def to_dict(self) -> dict[str, Any]:
        """The report's JSON (``tensorforge build --json``): the typed parts turned into their own JSON."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d.update(before=asdict(self.before), after=asdict(self.after),
                 verification=asdict(self.verification) if self.verification else None,
                 tuning=self.tuning.to_dict() if self.tuning else None,
                 optimization=_without_tuning(self.optimization), backend_settings=self.backend_settings.to_dict())
        return d


def _model_source(source: Any, name: str | None) -> ModelSource:
    """The resolved source of a build: an ONNX graph (an engine is already built, so it is refused)."""
    src = resolve_source(source, name=name)
    if src.model is None:
        raise ModelError(f"{src.origin} is an engine file: it is already built. Build from its ONNX model, zoo "
                         "name or trained model instead")
    _check_graph(src.model, checker=src.kind == "proto")
    return src


MAX_INPUT_ELEMENTS = 1 << 28     # per sample (symbolic dims as 1): 1 GiB of FP32; a 3x8192x8192 image is 2**27.6


def _check_graph(model: onnx.ModelProto, checker: bool) -> None:
    """Refuse, as ModelError, what would otherwise escape the build as a bare exception (issue 13 fuzz):
    an in-memory model the ONNX checker rejects (a model file is checked when read), and graph inputs
    with a negative dimension or too many elements to make verification data for."""
    if checker:
        try:
            onnx.checker.check_model(model)
        except Exception as exc:  # ValidationError, and ValueError for protos past protobuf's 2 GiB
            raise ModelError(f"the model fails the ONNX checker: {exc}") from exc
    known = set(onnx.TensorProto.DataType.values())
    values = (*model.graph.input, *model.graph.output, *model.graph.value_info)
    typed = [(v.name, v.type.tensor_type.elem_type) for v in values if v.type.HasField("tensor_type")]
    for value, elem_type in typed + [(t.name, t.data_type) for t in model.graph.initializer]:
        if elem_type not in known:
            raise ModelError(f"graph value {value!r} has element type {elem_type}, which ONNX does not define; the "
                             "model is corrupted or from a newer ONNX — re-export it")
    for vi in model.graph.input:
        dims = [d.dim_value for d in vi.type.tensor_type.shape.dim if d.HasField("dim_value")]
        if any(d < 0 for d in dims):
            raise ModelError(f"input {vi.name!r} declares a negative dimension {dims}; dimensions are sizes (>= 0) "
                             "or names — fix the export")
        elements = 1
        for d in dims:
            elements *= max(d, 1)          # a 0 makes the tensor empty, but numpy still refuses [0, 2**40, 2**40]
        if elements > MAX_INPUT_ELEMENTS:
            raise ModelError(f"input {vi.name!r} declares {elements:.3g} elements per sample (fixed dims {dims}), "
                             f"over the {MAX_INPUT_ELEMENTS} TensorForge builds; check the exported shape")


def _normalize(original: onnx.ModelProto, options: BuildOptions) -> tuple[onnx.ModelProto, onnx.ModelProto,
                                                                           int | str | None, list[str]]:
    """(normalized original, with the batch rewrite, the original batch dim, notes): build's first steps."""
    model, notes = normalize(original)
    reference = model
    old_batch = batch_dim_of(model)
    if options.batch is not None or options.max_batch is not None:
        target: int | str = options.batch if options.batch is not None else "N"
        model = set_batch(model, target)
        notes.append(f"batch dimension {old_batch!r} -> {target!r}"
                     + (f" (max batch {options.max_batch})" if options.max_batch else ""))
    elif isinstance(old_batch, int):
        notes.append(f"batch dimension is fixed at {old_batch}; rebuild with max_batch=N to batch requests")
    return reference, model, old_batch, notes


def fp32_graph(source: Any, options: BuildOptions = BuildOptions(), *,
               name: str | None = None) -> tuple[onnx.ModelProto, str, str]:
    """(graph, name, origin): the optimized FP32 graph ``build`` hands to its precision step — the
    source resolved, normalized, its batch rewritten and the pass pipeline run, as ``build`` does —
    so calibration files and layer names made from it match the build's.

    >>> graph, name, _ = fp32_graph("mnist_cnn")          # doctest: +SKIP
    """
    src = _model_source(source, name)
    assert src.model is not None
    _, model, _, _ = _normalize(src.model, options)
    if options.prune is not None:
        model = prune_model(model, options.prune).model
    pipeline = "default" if options.pipeline == "auto" else options.pipeline    # precision work: portable ops
    return run_pipeline(model, pipeline)[0], src.name, src.origin


def build(source: Any, output: str | os.PathLike[str] | None = None,
          options: BuildOptions = BuildOptions(), *, name: str | None = None) -> tuple[Engine, BuildReport]:
    """Optimize and verify a model; write an engine file when ``output`` is given.

    ``source``: anything :func:`~tensorforge.engine.source.resolve_source` takes but an engine. The engine
    is named after it (file stem, zoo name, graph name of an in-memory model), or ``name`` when given.

    >>> engine, report = build("mobilenet_v2", "mobilenet_v2.tfe")   # doctest: +SKIP
    """
    if (options.tune is not None or options.optimize is not None) and _in_spawn_bootstrap():
        # a tuning worker re-running a script without a main guard: leave quietly (no nested traceback per
        # worker); the parent says what to fix, once
        raise SystemExit(1)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    src = _model_source(source, name)
    assert src.model is not None
    original, name, origin = src.model, src.name, src.origin
    device = resolve_device(options.device)
    if (options.tune is None and options.optimize is None) or options.backend is not None:   # fail fast
        backend = get_backend(backend_for_device(device, options.backend))
    timings["import"] = time.perf_counter() - t0

    t = time.perf_counter()
    reference_model, model, old_batch, notes = _normalize(original, options)
    profiles, profile_note = profile_step.resolve(model, options.shapes, options.max_batch, original)
    before = GraphSummary.of(reference_model, profiles)
    timings["normalize"] = time.perf_counter() - t
    if profile_note:
        notes.append(profile_note)
    pruning = None
    if options.prune is not None:
        t = time.perf_counter()
        reference_model, model, pruning = _prune(reference_model, model, old_batch, options, src.path, name)
        timings["prune"] = time.perf_counter() - t

    t = time.perf_counter()
    pipeline = _pipeline(model, options, backend_for_device(device, options.backend))
    optimized, pass_reports = run_pipeline(model, pipeline)
    timings["passes"] = time.perf_counter() - t
    after = GraphSummary.of(optimized, profiles)
    payload = optimized.SerializeToString()

    verification = None
    verification_points: list[dict[str, Any]] = []
    if options.verify:
        report_progress("verifying the optimized graph against the original", 0)
        t = time.perf_counter()
        verification = verify_build(reference_model, old_batch, payload, options,
                                    src.path,
                                    original if _opset(original) < _opset(reference_model) else None)
        timings["verify"] = time.perf_counter() - t
        if not verification.passed:
            raise VerificationError(
                f"the optimized {name!r} differs from the original: max normalized error "
                f"{verification.max_norm_err:.3g} > tolerance {verification.tolerance:.3g} "
                f"(max abs {verification.max_abs_err:.3g}) on {verification.data}; nothing was written. Rebuild "
                "with pipeline='none' to skip graph passes, and please report the model")
        if profiles and options.verify_data is None:      # and at every profile's min, opt and max
            t = time.perf_counter()
            verification_points = profile_step.verify_points(reference_model, old_batch, payload, options, src.path,
                                                             profiles, name)
            timings["verify_profiles"] = time.perf_counter() - t
            notes.append(f"verified at {len(verification_points)} profile points (min, opt, max): max normalized "
                         f"error {max(r['max_norm_err'] for r in verification_points):.3g}")

    step = None
    optimization = None
    if options.optimize is not None:
        from . import precision_step

        report_progress(f"searching precisions x backends for {options.optimize}", 0)
        t = time.perf_counter()
        with _one_main_guard_error():
            optimization = precision_step.optimize(optimized, options, device)
        timings["optimize"] = time.perf_counter() - t
        payload = optimization.model_bytes
        optimized = onnx.load_from_string(payload)
    elif options.precision != "fp32":
        from . import precision_step

        report_progress(f"converting to {options.precision}", 0)
        t = time.perf_counter()
        step = precision_step.apply(optimized, options)
        timings["precision"] = time.perf_counter() - t
        if step.precision != "fp32":
            optimized = step.model
            payload = optimized.SerializeToString()

    if options.optimize is None and options.tune is None and options.precision == "fp32" and device == "cpu":
        hint = _host_hint()
        if hint:
            notes.append(hint)
    tuning: TuneResult | None = None
    winner: Candidate | None = None
    if optimization is not None:
        tuning, winner = optimization.tuning, optimization.candidate
    elif options.tune is not None:
        report_progress(f"tuning for {options.tune} (budget {options.tune_budget_s:g} s)", 0)
        t = time.perf_counter()
        graphs = {pipeline: (optimized, pass_reports)}
        tuning = _tune(payload, optimized, options, device, step.precision if step else "fp32",
                       model if options.pipeline == "auto" and step is None else None, graphs)
        timings["tune"] = time.perf_counter() - t
        winner = tuning.winner
        if winner.variant in graphs and winner.variant != pipeline:     # ship the winning pipeline's graph
            pipeline = winner.variant
            optimized, pass_reports = graphs[pipeline]
            payload = optimized.SerializeToString()
            after = GraphSummary.of(optimized, profiles)
            notes.append(f"tuning picked the {pipeline!r} graph pipeline")
            if options.verify:
                t = time.perf_counter()
                verification = verify_build(reference_model, old_batch, payload, options, src.path,
                                            original if _opset(original) < _opset(reference_model) else None)
                timings["verify"] = timings.get("verify", 0.0) + time.perf_counter() - t
                if not verification.passed:
                    raise VerificationError(
                        f"the {pipeline!r} graph of {name!r} differs from the original: max normalized error "
                        f"{verification.max_norm_err:.3g} > tolerance {verification.tolerance:.3g}; nothing was "
                        "written. Rebuild with pipeline='default', and please report the model")
                if verification_points:
                    verification_points = profile_step.verify_points(reference_model, old_batch, payload, options,
                                                                     src.path, profiles, name)
    settings = BackendSettings(device=device, threads=options.threads)
    if winner is not None:                  # the tuner's pick, as one typed object into the manifest
        backend = get_backend(winner.backend)
        settings = BackendSettings(device=device, threads=winner.threads, options=freeze(dict(winner.options)),
                                   streams=winner.streams)
    if options.prune is not None and backend.name == "openvino":     # 2:4 / unstructured: OpenVINO may pack them
        from ..prune.runtime_sparsity import decompression_rate, openvino_sparse_support

        support = openvino_sparse_support(options.prune)
        if support.supported:
            spec = parse_prune(options.prune)
            assert spec is not None                 # a prune spec was given (checked above)
            rate = decompression_rate(spec)
            settings = BackendSettings(device=settings.device, threads=settings.threads, streams=settings.streams,
                                       options=freeze({**dict(settings.options),
                                                       "sparse_weights_decompression_rate": rate}))

    inputs, outputs = io_specs(optimized)
    manifest = Manifest(
        model=ModelInfo(name=name, source=origin, sha256_original=model_hash(original), sha256=sha256(payload),
                        opset=_opset(optimized)),
        inputs=tuple(inputs), outputs=tuple(outputs), max_batch=options.max_batch, profiles=profiles,
        precision=optimization.precision if optimization else step.precision if step else "fp32",
        accuracy=freeze(_accuracy_record(optimization)),
        backend=BackendRecord(name=backend.name, versions=freeze(backend.versions()),
                              settings=settings),
        build=BuildRecord(
            date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), host=freeze(host_fingerprint()),
            libraries=freeze(library_versions()), pipeline=pipeline,
            passes=freeze([r.to_dict() for r in pass_reports]), notes=tuple(notes),
            verification=freeze(dict(asdict(verification), profile_points=verification_points))
            if verification else None,
            precision=None if step is None else freeze({"report": step.report, "check": step.check}),
            tuning=freeze(tuning.to_dict() if tuning else None),
            optimization=freeze(_without_tuning(optimization)),
            summary=freeze({"before": asdict(before), "after": asdict(after)})),
    )
    payloads = {MODEL_PAYLOAD: payload}
    if options.tokenizer is not None:           # engine/tokenizer.py: a second payload, recorded in the manifest
        from dataclasses import replace

        from .tokenizer import tokenizer_payload

        record, payloads[record.payload] = tokenizer_payload(options.tokenizer, inputs, profiles)
        manifest = replace(manifest, tokenizer=record)
    engine = Engine(manifest, payload)
    engine_bytes = 0
    if output is not None:
        t = time.perf_counter()
        path = write_engine(output, manifest, payloads)
        engine = Engine.load(path)      # what the user gets is what is on disk
        engine_bytes = path.stat().st_size
        timings["write"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    report = BuildReport(name=name, source=origin, output=None if output is None else os.fspath(output),
                         notes=notes, before=before, after=after, passes=[r.to_dict() for r in pass_reports],
                         verification=verification, timings_s={k: round(v, 3) for k, v in timings.items()},
                         engine_bytes=engine_bytes, warnings=step.warnings if step else [],
                         precision=manifest.precision,
                         precision_report=step.report if step else None,
                         precision_check=step.check if step else None,
                         tuning=tuning, optimization=optimization, backend=backend.name,
                         backend_settings=settings,
                         pruning=None if pruning is None or options.prune is None else
                         dict(pruning, speed=speed_note(options.prune, backend.name)))
    return engine, report


def _pipeline(model: onnx.ModelProto, options: BuildOptions, backend: str = "onnxruntime") -> str:
    """The pass pipeline to run: the one named, or for ``auto`` the transformer fusions the backend runs (ONNX
    Runtime's contrib-op fusions for onnxruntime, standard-op fusions elsewhere) when the graph is a transformer
    and the build is a plain FP32 one; the optimizer and INT8 start from the portable default, and the tuner
    from it too, timing the transformer pipelines as variants (:func:`_tune`)."""
    if options.pipeline != "auto":
        return options.pipeline
    if options.tune is not None or options.optimize is not None or options.precision != "fp32":
        return "default"
    from ..graph.transformer import pipeline_for

    return pipeline_for(model, backend)


def _prune(reference: onnx.ModelProto, model: onnx.ModelProto, old_batch: int | str | None, options: BuildOptions,
           path: Any, name: str) -> tuple[onnx.ModelProto, onnx.ModelProto, dict[str, Any]]:
    """(masked reference, pruned graph, summary): prune the batch-rewritten graph, and check it equals the
    original with the same channels masked (or the same sparse weights) within the FP32 tolerance before the
    passes run; that masked original is then the reference the rest of the build verifies against."""
    assert isinstance(options.prune, PruneSpec)
    guarded = None
    if options.eval_data is not None and options.prune.kind == "channels":   # per-group ratios under the budget
        from ..errors import BuildError
        from ..precision import AccuracyBudget
        from ..prune.guarded import guarded_prune
        from .precision_step import resolve_eval_data

        data = resolve_eval_data(options.eval_data, model)
        budget = (AccuracyBudget.parse(options.accuracy_budget) if options.accuracy_budget is not None
                  else AccuracyBudget.default_for(data))
        guarded = guarded_prune(model, options.prune, data, budget, threads=options.threads)
        if guarded.pruned is None:
            raise BuildError(f"{guarded.message}; nothing was written")
        result = guarded.pruned
    else:
        result = prune_model(model, options.prune)
    masked = result.reference(reference)
    summary = dict(result.summary, guard=guarded.to_dict() if guarded else None)
    if options.verify:
        check = verify_build(masked, old_batch, result.model.SerializeToString(), options, path)
        summary["verification"] = asdict(check)
        if not check.passed:
            raise VerificationError(
                f"pruned {name!r} ({result.spec}) differs from the original with the same channels masked: max "
                f"normalized error {check.max_norm_err:.3g} > tolerance {check.tolerance:.3g} on {check.data}; "
                "nothing was written. Please report the model; build without prune meanwhile")
    return masked, result.model, summary


def _host_hint() -> str | None:
    """A plain FP32 build on a CPU that computes BF16 (AVX-512 BF16, AMX) leaves its fastest kernels unused:
    say how to search them (OpenVINO's own default computes in BF16 there)."""
    native = [f for f in ("amx_bf16", "avx512_bf16", "amx_int8", "avx512_vnni") if f in isa_flags()]
    if not any(f.endswith("bf16") for f in native):
        return None
    return (f"this CPU has {', '.join(native)}: BF16 and INT8 kernels may run ~2x faster than this FP32 engine; "
            "build with optimize=latency|throughput (and eval_data= for the accuracy cost) to search them")


def _accuracy_record(optimization: OptimizeResult | None) -> dict[str, Any] | None:
    """What the manifest says of the engine's accuracy: measured against FP32 on held-out data, or unknown."""
    if optimization is None:
        return None
    chosen = optimization.chosen
    if not optimization.accuracy_known:
        return {"known": False, "why": "no held-out evaluation data: the build optimized for speed only",
                "fidelity_on_random_inputs": chosen.score.to_dict() if chosen.score else None}
    return {"known": True, "data": optimization.accuracy_data, "budget": optimization.budget,
            "loss": chosen.loss, "loss_metric": optimization.loss_metric,
            "score": chosen.score.to_dict() if chosen.score else None}


def _without_tuning(optimization: OptimizeResult | None) -> dict[str, Any] | None:
    if optimization is None:
        return None
    d = optimization.to_dict()
    d.pop("tuning", None)       # the manifest's build.tuning / the report's tuning hold it
    return d


def _tune(payload: bytes, model: onnx.ModelProto, options: BuildOptions, device: str, precision: str,
          source: onnx.ModelProto | None = None,
          graphs: dict[str, tuple[onnx.ModelProto, list[Any]]] | None = None) -> TuneResult:
    """Tune ``payload``; with ``source`` (the graph before passes) a transformer's pipelines are timed too, as
    variants, each graph made into ``graphs`` (pipeline -> (model, pass reports)) for the build to ship."""
    from ..tune import TuneOptions, tune
    from ..tune.variants import pipeline_search

    assert options.tune is not None
    batch = options.tune_batch or options.batch
    if batch is None and options.tune == "throughput":
        batch = min(options.max_batch or 8, 8)
    fixed = batch_dim_of(model)
    if isinstance(fixed, int):
        batch = fixed                            # a fixed batch dimension leaves no choice
    inputs, _ = io_specs(model)
    tune_options = TuneOptions(objective=options.tune, batch=batch, budget_s=options.tune_budget_s, device=device,
                               precision=precision, backends=options.tune_backends, cache=options.tune_cache,
                               seed=options.seed)
    payloads = None
    if source is not None and graphs is not None:
        def graph(name: str) -> bytes:
            if name not in graphs:
                graphs[name] = run_pipeline(source, name)
            return graphs[name][0].SerializeToString()

        search = pipeline_search(source, tune_options, graph)
        if search is not None:
            tune_options, payloads = search
    with _one_main_guard_error():
        return tune(payload, inputs, tune_options, payloads=payloads)


_MAIN_GUARD = ("the tuner's worker processes could not start: they start with multiprocessing's 'spawn', which "
               "re-runs your script, so tune (build with tune=/optimize=) under `if __name__ == \"__main__\":`, "
               "or pass isolate=False to TuneOptions")


def _in_spawn_bootstrap() -> bool:
    """True in a child process that is still importing the parent's main module (multiprocessing 'spawn')."""
    import multiprocessing as mp

    return bool(getattr(mp.current_process(), "_inheriting", False))


@contextlib.contextmanager
def _one_main_guard_error() -> Iterator[None]:
    """A script without a main guard makes every worker fail the same way, and the tuner lists each one: say
    it once, as one TuningError with the fix."""
    from ..errors import TuningError

    try:
        yield
    except TuningError as exc:
        if "__main__" in str(exc) and "spawn" in str(exc):
            raise TuningError(_MAIN_GUARD) from None
        raise


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
