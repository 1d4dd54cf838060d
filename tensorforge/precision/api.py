"""``apply_precision``: one call from an FP32 ONNX model to FP16, BF16, INT8 or the best of them.

Example::

    from tensorforge.precision import PrecisionOptions, CalibrationSpec, EvalData, apply_precision
    opts = PrecisionOptions("int8", calibration=CalibrationSpec(data="calib/", method="entropy"),
                            accuracy_budget="1.0")
    model, report = apply_precision(fp32_model, opts, eval_data=EvalData(held_out_batches, labels))

* ``fp16``/``bf16``: :mod:`.fp16` (BF16 nodes the backend has no kernel for compute in
  FP32 between Casts, so the model runs on ONNX Runtime's CPU);
* ``int8``: ``int8_scheme`` ``static`` — calibration (:mod:`.calibration`, :mod:`.collect`,
  :mod:`.methods`, cached by :mod:`.cache`), then QDQ (:mod:`.int8`); ``dynamic`` — weights
  INT8 per channel, activations quantized per call, no calibration (:mod:`.dynamic`);
  ``auto`` (default) — dynamic for conv-free graphs with integer token inputs (BERT-like),
  static otherwise; a calibration method of ``"dynamic"`` asks for dynamic too;
* with ``accuracy_budget`` and held-out ``eval_data``: the guard (:mod:`.guard`); a
  budget that cannot be met returns the FP32 model and says so in the report;
* ``best``: every candidate under the budget, timed with ``measure(model_bytes) ->
  seconds`` (lower is faster; default: median of ONNX Runtime runs on the first held-out
  batch); the fastest wins only if at least ``min_speedup`` × faster than FP32.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np
import onnx

from ..backends.base import SessionConfig
from ..backends.registry import get_backend
from ..core.precisions import BUILD_PRECISIONS, PRECISIONS
from ..core.specs import io_specs, random_inputs
from ..core.timing import Timer, paired_timing
from ..errors import BuildError, CalibrationError
from ..models.accuracy_data import CalibrationData, EvalData
from .cache import CalibrationCache, load_cache, save_cache
from .calibration import Preprocess
from .dynamic import INT8_SCHEMES, quantize_dynamic_int8, resolve_scheme, weight_layers
from .evaluate import AccuracyBudget, check_disjoint, reference_outputs, run_model, score
from .fp16 import compute_in_fp32, convert_float, ensure_node_names, missing_kernels
from .guard import run_guard
from .histpass import calibration_data, model_key, obtain_histograms
from .int8 import Int8Options, compute_layers, first_last_layers, layer_groups, quantize_qdq
from .methods import DYNAMIC, INT8_METHODS
from .report import CandidateReport, PrecisionReport

__all__ = ["CalibrationSpec", "PrecisionOptions", "apply_precision", "calibrate", "default_measure"]

Measure = Callable[[bytes], float]


@dataclass(frozen=True)
class CalibrationSpec:
    """Where INT8 ranges come from: data (folder, .npy/.npz, array, iterable, or a
    :class:`CalibrationData`), preprocessing, the method, an optional ranges cache file
    (``cache_path``: one method's ranges) and an optional histogram file (``histograms``: every
    activation's histogram, from which any method's ranges derive with no model run — reused when
    it exists and was made for this model, written after the pass when missing; see :mod:`.histpass`)."""

    data: Any = None
    preprocess: Preprocess = Preprocess()
    method: str = "percentile"       # entropy (TensorRT's default) clips spiky activations hard: see the report
    percentile: float = 99.99
    max_samples: int = 512
    batch_size: int = 32
    num_bins: int = 2048
    cache_path: str | os.PathLike[str] | None = None
    histograms: str | os.PathLike[str] | None = None

    def __post_init__(self) -> None:
        if self.method not in INT8_METHODS:
            raise CalibrationError(f"unknown calibration method {self.method!r}; use one of {', '.join(INT8_METHODS)}")
        if self.data is None and self.cache_path is None and self.histograms is None and self.method != DYNAMIC:
            raise CalibrationError("calibration needs data (a folder, .npy/.npz, arrays), an existing cache file "
                                   "(cache_path) or an existing histogram file (histograms) — or method='dynamic' "
                                   "(dynamic INT8: activation ranges per call, no calibration data)")
        for label, value in (("max_samples", self.max_samples), ("batch_size", self.batch_size)):
            if value < 1:
                raise CalibrationError(f"{label} must be >= 1, got {value}")
        if self.num_bins < 2 or self.num_bins % 2:
            raise CalibrationError(f"num_bins must be an even number >= 2, got {self.num_bins}; 2048 is the default")


@dataclass(frozen=True)
class PrecisionOptions:
    precision: str = "fp32"
    calibration: CalibrationSpec | None = None
    per_channel: bool = True
    activations: str = "uint8"                   # INT8 activations: "uint8" (asymmetric) or "int8" (symmetric)
    keep_first_last: bool = False
    keep_fp32_nodes: tuple[str, ...] = ()
    keep_io_types: bool = True
    accuracy_budget: AccuracyBudget | float | str | None = None
    candidates: tuple[str, ...] = ("int8", "fp16", "bf16")
    min_speedup: float = 1.05
    probe_samples: int = 128
    threads: int | None = None
    int8_scheme: str = "auto"                    # auto | static (calibrated QDQ) | dynamic (precision/dynamic.py)

    def __post_init__(self) -> None:
        if self.int8_scheme not in INT8_SCHEMES:
            raise BuildError(f"unknown int8_scheme {self.int8_scheme!r}; use one of {', '.join(INT8_SCHEMES)} "
                             "(auto: dynamic for BERT-like graphs, static QDQ otherwise)")
        if self.precision not in BUILD_PRECISIONS:
            raise BuildError(f"unknown precision {self.precision!r}; use one of {', '.join(BUILD_PRECISIONS)}")
        bad = [c for c in self.candidates if c not in PRECISIONS or c == "fp32"]
        if bad:
            raise BuildError(f"best's candidates must be among fp16, bf16, int8; got {bad}")
        if self.activations not in ("uint8", "int8"):
            raise BuildError(f"activations must be 'uint8' or 'int8', got {self.activations!r}")

    def scheme(self, model: onnx.ModelProto) -> tuple[str, str]:
        """(the INT8 scheme for ``model``: "static" or "dynamic", why)."""
        return resolve_scheme(model, self.int8_scheme, self.calibration.method if self.calibration else None)

    def budget(self) -> AccuracyBudget | None:
        b = self.accuracy_budget
        return b if isinstance(b, AccuracyBudget) or b is None else AccuracyBudget.parse(b)


def calibrate(model: onnx.ModelProto, spec: CalibrationSpec, activations: str = "uint8", *,
              threads: int | None = None) -> tuple[dict[str, tuple[float, float]], dict[str, Any], list[dict]]:
    """(ranges, calibration report, calibration batches). Uses/refreshes ``spec.cache_path`` (ranges) and
    ``spec.histograms`` (histograms: reused with no model run when present and made for this model —
    ``info["histograms"] == "reused"`` — written after the pass when missing). The batches are the
    calibration feeds read into memory here, for the accuracy guard's disjointness check; ``[]`` when
    none were (ranges from a cache or histogram file, with no data or data not in memory)."""
    t0 = time.perf_counter()
    digest = model_key(model)
    data: CalibrationData | None = None
    info: dict[str, Any] = {"method": spec.method, "percentile": spec.percentile if spec.method == "percentile"
                            else None, "activations": activations, "cache": None}
    if spec.cache_path is not None and os.path.exists(spec.cache_path):
        cache = load_cache(spec.cache_path, model_sha256=digest)      # refuses another model
        data = calibration_data(model, spec) if spec.data is not None else None
        same_data = data is None or data.fingerprint == cache.data_fingerprint
        if cache.matches(spec.method, spec.percentile, activations) and same_data:
            info.update(cache="hit", path=os.fspath(spec.cache_path), samples=cache.samples,
                        source=cache.data_source, fingerprint=cache.data_fingerprint,
                        seconds=round(time.perf_counter() - t0, 3))
            return cache.ranges, info, data.batches if data else []
        if data is None and (spec.histograms is None or not os.path.exists(spec.histograms)):
            raise CalibrationError(f"calibration cache {os.fspath(spec.cache_path)!r} holds {cache.method} ranges "
                                   f"for {cache.activations} activations; {spec.method}/{activations} was asked and "
                                   "no calibration data (or histogram file) was given to recompute")
        info["cache"] = "stale (other data or settings): recalibrated"
    hists, hinfo, data = obtain_histograms(model, spec, digest=digest, threads=threads, data=data, keep=True)
    ranges = hists.ranges(spec.method, percentile=spec.percentile, unsigned=activations == "uint8")
    if spec.cache_path is not None:
        save_cache(spec.cache_path, CalibrationCache(digest, spec.method, spec.percentile, activations, hists.samples,
                                                     hists.data_fingerprint, hists.data_source, ranges))
        info["cache"] = info["cache"] or "written"
        info["path"] = os.fspath(spec.cache_path)
    info.update(hinfo)
    info.update(samples=hists.samples, source=hists.data_source, fingerprint=hists.data_fingerprint,
                tensors=len(ranges), seconds=round(time.perf_counter() - t0, 3))
    return ranges, info, data.batches if data is not None else []


def default_measure(model: onnx.ModelProto, eval_data: EvalData | None, *, threads: int | None = None,
                    repeats: int = 20) -> Measure:
    """Seconds of one ONNX Runtime call on the first held-out batch (or 8 random samples), paired with ``model``.

    ``model`` (the FP32 model) is timed alone: the median of ``repeats`` one-call rounds. Any other
    model is timed against it in ``repeats`` interleaved one-call rounds
    (:func:`~tensorforge.core.timing.paired_timing`), and its seconds are the FP32 seconds divided
    by the median per-round speedup — so ``fp32_s / model_s`` is the paired speedup, and drift
    of the machine between the two measurements cancels."""
    feeds = eval_data.batches[0] if eval_data is not None else random_inputs(io_specs(model)[0], 8, seed=0)
    fp32_bytes = model.SerializeToString()
    fp32: dict[str, Any] = {}          # the FP32 round function and its seconds, made on first use

    def one_call_rounds(model_bytes: bytes) -> Callable[[], float]:
        timer = Timer(get_backend("onnxruntime").create_session(model_bytes, SessionConfig("cpu", threads)).run)
        timer.warm(feeds, 0.0)
        return lambda: timer.run_for(feeds, 0.0, min_iterations=1)

    def measure(model_bytes: bytes) -> float:
        if "round" not in fp32:
            fp32["round"] = one_call_rounds(fp32_bytes)
            fp32["seconds"] = 1.0 / float(np.median(paired_timing(fp32["round"], None, repeats).ours))
        if model_bytes == fp32_bytes:
            return float(fp32["seconds"])
        paired = paired_timing(one_call_rounds(model_bytes), fp32["round"], repeats)
        return float(fp32["seconds"]) / float(paired.median or 1.0)

    return measure


def _low_float(model: onnx.ModelProto, target: str, keep: frozenset[str], keep_io: bool) -> tuple[onnx.ModelProto,
                                                                                                 Any, list[str]]:
    low, info = convert_float(model, target, keep_nodes=keep, keep_io_types=keep_io)
    lacking = missing_kernels(low)
    if target == "bf16" and lacking:      # ORT inserts these Casts itself for FP16, not for BF16
        low, _ = compute_in_fp32(low, lacking)
    return low, info, lacking


def _one(model: onnx.ModelProto, precision: str, opts: PrecisionOptions, eval_data: EvalData | None,
         cal_cache: dict[str, Any]) -> PrecisionReport | tuple[onnx.ModelProto, PrecisionReport]:
    budget = opts.budget()
    if budget is not None and eval_data is None:
        raise BuildError("an accuracy budget needs held-out evaluation data to check it against")
    notes: list[str] = []
    report_kw: dict[str, Any] = {}
    user_keep = frozenset(opts.keep_fp32_nodes)
    scheme, scheme_why = opts.scheme(model) if precision == "int8" else ("", "")
    why_seen: list[dict[str, str]] = [{}]
    if scheme == "dynamic":
        dyn = Int8Options(per_channel=opts.per_channel, keep_first_last=opts.keep_first_last)

        def convert(keep: frozenset[str]) -> onnx.ModelProto:
            q, why_seen[0] = quantize_dynamic_int8(model, replace(dyn, keep_nodes=tuple(sorted(keep | user_keep))))
            return q

        weights = weight_layers(model)
        ends = weights[:1] + weights[-1:] if opts.keep_first_last else []
        layers = [n for n in weights if n not in user_keep and n not in ends]
        forced = sorted(user_keep | set(ends))
        report_kw["calibration"] = {"method": DYNAMIC, "scheme": "dynamic", "why": scheme_why,
                                    "per_channel": opts.per_channel, "weights_7bit": dyn.weights_7bit(),
                                    "note": "activation ranges are each call's own min/max: no calibration data"}
    elif precision == "int8":
        if opts.calibration is None:
            raise CalibrationError("INT8 needs calibration: give a CalibrationSpec (data and/or a cache file)")
        if "ranges" not in cal_cache:
            cal_cache["ranges"], cal_cache["info"], cal_cache["batches"] = calibrate(
                model, opts.calibration, opts.activations, threads=opts.threads)
        ranges = cal_cache["ranges"]
        if eval_data is not None and cal_cache["batches"]:
            check_disjoint(cal_cache["batches"], eval_data)
        base = Int8Options(per_channel=opts.per_channel, activations=opts.activations,
                           keep_first_last=opts.keep_first_last)

        groups = layer_groups(model)

        def convert(keep: frozenset[str]) -> onnx.ModelProto:
            nodes = {n for layer in keep for n in groups.get(layer, [layer])} | user_keep
            qdq, why_seen[0] = quantize_qdq(model, ranges, replace(base, keep_nodes=tuple(sorted(nodes))))
            return qdq

        layers = [n for n in compute_layers(model) if n not in user_keep
                  and not (opts.keep_first_last and n in first_last_layers(model))]
        forced = sorted(user_keep | (frozenset(first_last_layers(model)) if opts.keep_first_last else frozenset()))
        report_kw["calibration"] = {**cal_cache["info"], "scheme": "static", "why": scheme_why}
    else:
        lacking_seen: list[str] = []
        info_seen: list[Any] = []

        def convert(keep: frozenset[str]) -> onnx.ModelProto:
            low, info, lacking = _low_float(model, precision, keep | user_keep, opts.keep_io_types)
            lacking_seen[:] = lacking
            info_seen[:] = [info]
            return low

        layers = [n for n in compute_layers(model) if n not in user_keep]
        forced = sorted(user_keep)
    if budget is None or eval_data is None:
        out = convert(frozenset())
        accuracy: dict[str, Any] | None = None
        if eval_data is not None:
            ref = reference_outputs(model.SerializeToString(), eval_data, threads=opts.threads)
            got = run_model(out.SerializeToString(), eval_data, threads=opts.threads)
            accuracy = {"data": eval_data.name, "fp32": score(ref, ref, eval_data.labels).to_dict(),
                        "final": score(got, ref, eval_data.labels).to_dict(), "budget": None, "met": None}
        kept, guard_info = forced, None
    else:
        result = run_guard(model, convert, layers, eval_data, budget, probe_samples=opts.probe_samples,
                           threads=opts.threads)
        guard_info = result.to_dict()
        accuracy = {"data": eval_data.name, "fp32": result.fp32.to_dict(),
                    "final": result.final.to_dict() if result.final else None, "budget": result.budget,
                    "met": result.met, "message": result.message}
        if not result.met or result.model is None:
            return PrecisionReport(requested=precision, precision="fp32", accuracy=accuracy, guard=guard_info,
                                   warnings=[f"{precision}: {result.message}"], **report_kw)
        out, kept = result.model, sorted(set(forced) | set(result.kept_fp32))
        notes.append(result.message)
    if precision == "int8":
        report_kw["kept_fp32_ops"] = {n: r for n, r in why_seen[0].items() if r != "kept by request"}
    else:
        info = info_seen[0] if info_seen else convert_float(model, precision)[1]
        notes += info.notes
        if lacking_seen:
            notes.append(f"onnxruntime CPU has no {precision} kernels for {', '.join(lacking_seen)}: they compute in "
                         "FP32 between Casts (values still rounded to " + precision + " between nodes)")
        report_kw.update(kept_fp32_ops=dict(info.kept_fp32), backend_fp32_ops=list(lacking_seen))
    return out, PrecisionReport(requested=precision, precision=precision, kept_fp32_layers=list(kept),
                                accuracy=accuracy, guard=guard_info, notes=notes, **report_kw)


def apply_precision(model: onnx.ModelProto, options: PrecisionOptions = PrecisionOptions(), *,
                    eval_data: EvalData | None = None,
                    measure: Measure | None = None) -> tuple[onnx.ModelProto, PrecisionReport]:
    """Convert an FP32 model to ``options.precision``; see the module doc. Never ships outside the budget."""
    t0 = time.perf_counter()
    fp32 = onnx.ModelProto()
    fp32.CopyFrom(model)
    ensure_node_names(fp32)
    if options.precision == "fp32":
        return fp32, PrecisionReport(requested="fp32", precision="fp32")
    cal_cache: dict[str, Any] = {}
    if options.precision != "best":
        res = _one(fp32, options.precision, options, eval_data, cal_cache)
        if isinstance(res, PrecisionReport):
            return fp32, replace(res, seconds=round(time.perf_counter() - t0, 3))
        out, rep = res
        if measure is not None:
            fp32_s, final_s = measure(fp32.SerializeToString()), measure(out.SerializeToString())
            rep = replace(rep, speed={"fp32_s": fp32_s, "final_s": final_s, "speedup": fp32_s / final_s})
        return out, replace(rep, seconds=round(time.perf_counter() - t0, 3))
    return _best(fp32, options, eval_data, measure, cal_cache, t0)


def _best(fp32: onnx.ModelProto, options: PrecisionOptions, eval_data: EvalData | None, measure: Measure | None,
          cal_cache: dict[str, Any], t0: float) -> tuple[onnx.ModelProto, PrecisionReport]:
    if eval_data is None:
        raise BuildError("precision 'best' needs held-out evaluation data: it only picks a precision whose accuracy "
                         "it has checked (give eval data, or ask for one precision)")
    budget = options.budget() or AccuracyBudget.default_for(eval_data)
    opts = replace(options, accuracy_budget=budget)
    measure = measure or default_measure(fp32, eval_data, threads=options.threads)
    fp32_s = measure(fp32.SerializeToString())
    candidates = [CandidateReport("fp32", True, None, fp32_s, note="baseline")]
    winner: tuple[float, onnx.ModelProto, PrecisionReport] | None = None
    for precision in options.candidates:
        if precision == "int8" and options.calibration is None and options.scheme(fp32)[0] == "static":
            candidates.append(CandidateReport("int8", None, None, None, note="skipped: no calibration data given"))
            continue
        res = _one(fp32, precision, opts, eval_data, cal_cache)
        if isinstance(res, PrecisionReport):
            final = res.accuracy["final"] if res.accuracy else None
            candidates.append(CandidateReport(precision, False, final, None, note="; ".join(res.warnings)))
            continue
        out, rep = res
        secs = measure(out.SerializeToString())
        final = rep.accuracy["final"] if rep.accuracy else None
        faster = secs * options.min_speedup <= fp32_s
        candidates.append(CandidateReport(precision, True, final, secs, list(rep.kept_fp32_layers),
                                          note=f"{fp32_s / secs:.2f}x FP32" + ("" if faster else " — not faster")))
        if faster and (winner is None or secs < winner[0]):
            winner = (secs, out, rep)
    seconds = round(time.perf_counter() - t0, 3)
    if winner is None:
        return fp32, PrecisionReport(requested="best", precision="fp32", candidates=candidates, seconds=seconds,
                                     speed={"fp32_s": fp32_s, "final_s": fp32_s, "speedup": 1.0},
                                     notes=["no candidate was both within the accuracy budget and at least "
                                            f"{options.min_speedup:g}x faster than FP32 here: keeping FP32"])
    secs, out, rep = winner
    return out, replace(rep, requested="best", candidates=candidates, seconds=seconds,
                        speed={"fp32_s": fp32_s, "final_s": secs, "speedup": fp32_s / secs})
