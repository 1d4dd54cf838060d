"""The joint search's candidates: the model variants (FP32, reduced floats, INT8 per granularity and
calibration method, the guard's mixed one) and the numerics each backend computes them in; and a
tuned build's graph-pipeline variants (:func:`pipeline_search`: a transformer's fused graphs)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable

import onnx

from ..backends.registry import get_backend
from ..models.accuracy_data import CalibrationData, EvalData
from ..precision.evaluate import AccuracyBudget, check_disjoint
from ..precision.fp16 import convert_float, missing_kernels
from ..precision.guard import run_guard
from ..precision.histfile import HistogramSet
from ..precision.histpass import calibration_histograms
from ..precision.int8 import Int8Options, compute_layers, quantize_qdq
from ..precision.sensitivity import int8_converter
from .front import BASELINE, Point
from .search import Payloads, TuneOptions
from .space import Candidate, default_space, pipeline_variants

if TYPE_CHECKING:
    from .joint import OptimizeOptions

__all__ = ["Variant", "make_variants", "mixed_variant", "numerics", "pipeline_search", "short_error"]

_OV_COMPUTE = {"bf16": "bf16", "fp16": "f16"}


@dataclass(frozen=True)
class Variant:
    name: str
    precision: str          # fp32 | fp16 | bf16 | int8
    graph: str              # variants with the same graph run at the same speed
    model_bytes: bytes = field(repr=False)
    method: str | None = None
    kept_fp32: tuple[str, ...] = ()


def make_variants(fp32: onnx.ModelProto, options: OptimizeOptions, wanted: list[str], eval_data: EvalData | None,
              say: Callable[[str], None], notes: list[str]
              ) -> tuple[list[Variant], dict[str, Any] | None, HistogramSet | None]:
    out = [Variant(BASELINE, "fp32", "fp32", fp32.SerializeToString())]
    for low in ("fp16", "bf16"):
        if low not in wanted:
            continue
        model, _ = convert_float(fp32, low)
        lacking = missing_kernels(model) if options.device == "cpu" else []
        if lacking:
            notes.append(f"{low} graph skipped for onnxruntime: its CPU kernels lack {', '.join(lacking)}, which "
                         f"would compute in FP32 between casts (slower than FP32); OpenVINO computes {low} "
                         "natively where the CPU can")
        else:
            out.append(Variant(low, low, low, model.SerializeToString()))
    calibration: dict[str, Any] | None = None
    if "int8" in wanted:
        spec = options.calibration
        if spec is None:
            notes.append("int8 skipped: no calibration data (give calibration data, or 'random' for speed only)")
            return out, None, None
        say("calibrating (one streaming pass over the calibration data)")
        if eval_data is not None and isinstance(spec.data, CalibrationData):
            check_disjoint(spec.data.batches, eval_data)       # data streamed from files is checked by no one
        hists, info = calibration_histograms(fp32, spec, threads=options.threads)
        methods = options.methods if eval_data is not None else (spec.method,)
        if eval_data is None and len(options.methods) > 1:
            notes.append(f"one calibration method ({spec.method}) without held-out data: the others differ only "
                         "in accuracy, which cannot be judged here")
        calibration = {"source": info.get("source"), "samples": info.get("samples"), "methods": list(methods),
                       "seconds": info.get("seconds"), "tensors": info.get("tensors"),
                       "histograms": info.get("histograms"), "histograms_path": info.get("histograms_path")}
        for gran in options.granularities:
            for method in methods:
                ranges = hists.ranges(method, percentile=spec.percentile, unsigned=options.activations == "uint8")
                qdq, _ = quantize_qdq(fp32, ranges, Int8Options(per_channel=gran == "per-channel",
                                                                 activations=options.activations))
                out.append(Variant(f"int8 {gran} {method}", "int8", f"int8 {gran}", qdq.SerializeToString(),
                                    method=method))
        return out, calibration, hists
    return out, calibration, None


def numerics(variants: list[Variant], backends: list[str], wanted: list[str], device: str,
              notes: list[str]) -> list[Point]:
    native: frozenset[str] = frozenset()
    if "openvino" in backends:
        try:
            native = get_backend("openvino").capabilities(device).precisions
        except Exception as exc:      # an SDK that cannot say: assume FP32 only
            notes.append(f"openvino's native precisions unknown ({short_error(exc)}): FP32 and INT8 only")
    lows = [p for p in ("bf16", "fp16") if p in wanted and p in native]
    if "openvino" in backends and not lows and any(p in wanted for p in ("bf16", "fp16")):
        notes.append("openvino bf16/fp16 skipped: this CPU does not compute them natively (it does "
                     f"{sorted(native) or ['fp32', 'int8']}); emulated they run slower than FP32")
    out: list[Point] = []
    torch_note = ("torch runs the FP32 graph only: TensorForge's ONNX → torch converter takes float graphs, "
                  "not Q/DQ ones")
    if "torch" in backends and any(v.precision != "fp32" for v in variants) and torch_note not in notes:
        notes.append(torch_note)
    for v in variants:
        for backend in backends:
            if backend == "torch" and v.precision != "fp32":
                continue        # the ONNX → torch converter runs float graphs, not Q/DQ ones
            if v.precision in ("fp16", "bf16") and backend != "onnxruntime":
                continue        # the others compute reduced floats from the FP32 graph themselves
            if v.precision != "fp32" or "fp32" in wanted:
                out.append(Point(v.name, v.name, backend, v.precision, {"inference_precision": "f32"}
                                 if backend == "openvino" else {}))
            if backend == "openvino" and v.precision in ("fp32", "int8"):
                for low in lows:
                    label = low if v.precision == "fp32" else f"int8+{low}"
                    out.append(Point(f"{v.name} @{low}", v.name, backend, label,
                                     {"inference_precision": _OV_COMPUTE[low]}))
    if not any(p.name == BASELINE and p.backend == "onnxruntime" for p in out):
        out.insert(0, Point(BASELINE, BASELINE, "onnxruntime", "fp32", {}, note="baseline only (fp32 not asked)",
                            status="baseline only"))
    return out


def mixed_variant(fp32: onnx.ModelProto, variants: list[Variant], points: list[Point], options: OptimizeOptions,
           hists: HistogramSet | None, eval_data: EvalData, budget: AccuracyBudget, say: Callable[[str], None],
           notes: list[str]) -> Variant | None:
    """The guard's mixed-precision variant of the most accurate INT8 variant (on ONNX Runtime)."""
    spec = options.calibration
    assert spec is not None and hists is not None
    ort = [p for p in points if p.backend == "onnxruntime" and p.loss is not None
           and next(v for v in variants if v.name == p.variant).precision == "int8"]
    if not ort:
        return None
    best = min(ort, key=lambda p: p.loss or 0.0)
    base = next(v for v in variants if v.name == best.variant)
    say(f"no INT8 variant within the budget: the guard keeps sensitive layers of {base.name} in FP32")
    ranges = hists.ranges(base.method or spec.method, percentile=spec.percentile,
                          unsigned=options.activations == "uint8")
    convert = int8_converter(fp32, ranges, Int8Options(per_channel=base.graph.endswith("per-channel"),
                                                       activations=options.activations))
    result = run_guard(fp32, convert, compute_layers(fp32), eval_data, budget, threads=options.threads)
    if not result.met or result.model is None:
        notes.append(f"mixed precision: {result.message}")
        return None
    kept = tuple(result.kept_fp32)
    notes.append(f"mixed precision from {base.name}: {result.message}")
    return Variant(f"{base.name} +{len(kept)} fp32", "int8", f"{base.graph} keep {','.join(sorted(kept))}",
                    result.model.SerializeToString(), method=None, kept_fp32=kept)


def short_error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
    return text[:300]




def pipeline_search(model: onnx.ModelProto, options: TuneOptions, graph: Callable[[str], bytes],
                    ) -> tuple[TuneOptions, Payloads] | None:
    """A tuned build's candidates over graph pipelines, or None for a model that is no transformer.

    ``model`` is the graph before any pass (every variant's outputs are checked against it);
    ``graph(pipeline)`` gives the payload a pipeline makes of it. Each backend's best-bet settings are
    tried on ``default`` and on every transformer pipeline the backend runs (:func:`~.space.pipeline_variants`),
    variant named after the pipeline; the winner's backend then tries its other settings on the winning
    pipeline (``Payloads.expand``)."""
    wanted = list(options.backends) if options.backends else None
    per_backend = pipeline_variants(model, wanted)
    if all(p == ("default",) for p in per_backend.values()):
        return None
    base = list(options.candidates) if options.candidates is not None else default_space(
        options.objective, options.device, batch=options.tuning_batch, backends=wanted)[0]
    first: dict[str, Candidate] = {}
    rest: list[Candidate] = []
    for cand in base:
        if cand.backend in first:
            rest.append(cand)
        else:
            first[cand.backend] = cand
    tried = [c.with_variant(p) for b, c in first.items()
             for p in dict.fromkeys(("default", *per_backend.get(b, ("transformer-portable",))))]
    models = {p: graph(p) for p in dict.fromkeys(c.variant for c in tried if c.variant)}

    def expand(incumbent: Candidate) -> list[Candidate]:
        assert incumbent.variant is not None
        return [c.with_variant(incumbent.variant) for c in rest if c.backend == incumbent.backend]

    return (replace(options, candidates=tuple(tried)),
            Payloads(models=models, tolerances={p: options.tolerance for p in models}, expand=expand,
                     reference=model.SerializeToString()))
