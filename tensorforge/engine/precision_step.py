"""The build's precision step: the verified FP32 graph → FP16, BF16, INT8 or the best of them.

It runs after the FP32 graph passes were verified, so a precision problem is never
mistaken for a pass bug. Calibration data for INT8 comes from the user (a folder of
images, ``.npy``/``.npz``, arrays, an iterable, one of the bundled datasets by name) or,
for speed-only builds, ``"random"`` — synthetic inputs, said so loudly in the report.
FP16/BF16 results are then checked against FP32 on random inputs with the precision's
tolerance (:mod:`tensorforge.core.tolerances`, or ``BuildOptions.precision_rtol``); INT8 is
judged by task accuracy (the guard, on held-out data), not elementwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import onnx

from ..backends.base import SessionConfig
from ..backends.reference import reference_session
from ..backends.registry import get_backend
from ..core.precisions import LOW_FLOATS
from ..core.reference import compare
from ..core.specs import io_specs, random_inputs
from ..core.tolerances import tolerance
from ..errors import BuildError, CalibrationError, VerificationError

RANDOM_CALIBRATION = "random"
BUNDLED = ("mnist5k", "digits", "sentences")


@dataclass(frozen=True)
class PrecisionStep:
    """What the precision step did, for the manifest and the build report."""

    model: onnx.ModelProto
    precision: str
    report: dict[str, Any]
    check: dict[str, Any] | None
    warnings: list[str]


def calibration_spec(source: Any, model: onnx.ModelProto, options: Any,
                     eval_data: Any) -> tuple[Any, Any, list[str]]:
    """(CalibrationSpec or None, eval data or None, warnings) for a calibration source, as ``build`` reads
    ``options.calibration`` (a BuildOptions): data, a bundled dataset (with its validation split as eval
    data), ``"random"`` (speed only, with a warning), and ``options.calibration_histograms``."""
    from ..models.accuracy_data import CalibrationData
    from ..precision import CalibrationSpec, Preprocess

    method, cache = options.calibration_method, options.calibration_cache
    hist = getattr(options, "calibration_histograms", None)
    warnings: list[str] = []
    if source is None and cache is None and hist is not None:
        return CalibrationSpec(method=method, histograms=hist), eval_data, warnings
    if source is None and cache is None:
        return None, eval_data, warnings
    if isinstance(source, str) and source == RANDOM_CALIBRATION:
        specs = io_specs(model)[0]
        batches = [random_inputs(specs, 16, seed=100 + i) for i in range(4)]
        data = CalibrationData(batches, 64, "random inputs (seeded)", f"random-{len(batches)}x16")
        warnings.append("INT8 ranges were calibrated on random inputs: fine for measuring speed, but the "
                        "accuracy of this engine is unknown — calibrate on real data for a model you ship")
        return CalibrationSpec(data=data, method=method, cache_path=cache, histograms=hist), eval_data, warnings
    if isinstance(source, str) and source in BUNDLED:
        from ..models.accuracy_data import accuracy_data

        bundled = accuracy_data(source, model)
        return (CalibrationSpec(data=bundled.calibration_data(), method=method, cache_path=cache, histograms=hist),
                eval_data if eval_data is not None else bundled.validation, warnings)
    preprocess = options.calibration_preprocess or Preprocess()
    return (CalibrationSpec(data=source, preprocess=preprocess, method=method, cache_path=cache,
                            max_samples=options.calibration_samples, histograms=hist), eval_data, warnings)


def resolve_eval_data(source: Any, model: onnx.ModelProto) -> Any:
    """Held-out data for the accuracy guard: an EvalData, a bundled dataset name (its
    validation split) or an ``.npz`` with arrays named after the inputs (+ 'labels')."""
    from ..models.accuracy_data import EvalData

    if source is None or isinstance(source, EvalData):
        return source
    if isinstance(source, str):
        from ..models.accuracy_data import accuracy_data

        return accuracy_data(source, model).validation
    raise BuildError(f"eval data must be EvalData, a bundled dataset ({', '.join(BUNDLED)}) or an .npz path; "
                     f"got {type(source).__name__}")


def apply(model: onnx.ModelProto, options: Any) -> PrecisionStep:
    """Convert the verified FP32 ``model`` as ``options`` (a BuildOptions) asks."""
    from ..precision import PrecisionOptions, apply_precision
    from ..precision.dynamic import pick_scheme

    precision = options.precision
    eval_data = resolve_eval_data(options.eval_data, model)
    spec, eval_data, warnings = calibration_spec(options.calibration, model, options, eval_data)
    if precision == "int8" and spec is None and pick_scheme(model)[0] != "dynamic":   # dynamic INT8 needs no data
        raise CalibrationError("INT8 needs calibration data: calibration=DIR|FILE.npy|FILE.npz|mnist5k|digits|"
                               "sentences (or a calibration cache), or calibration=\"random\" for a speed-only build")
    popts = PrecisionOptions(precision, calibration=spec, activations=options.activations,
                             keep_first_last=options.keep_first_last, accuracy_budget=options.accuracy_budget,
                             threads=options.threads)
    converted, rep = apply_precision(model, popts, eval_data=eval_data)
    warnings += list(rep.warnings)
    if options.accuracy_budget is not None and rep.met_budget is False:
        warnings.append(f"the accuracy budget {options.accuracy_budget} could not be met: the engine stays FP32")
    check = None
    if rep.precision in LOW_FLOATS and options.verify:
        check = check_low_precision(model, converted, rep.precision, options)
        if not check["passed"]:
            raise VerificationError(
                f"the {rep.precision.upper()} engine differs from FP32 by a max normalized error of "
                f"{check['max_norm_err']:.3g} > {check['tolerance']:.0e} on random inputs; nothing was written. "
                "Keep sensitive layers in FP32 with `accuracy_budget` and held-out data, or build FP32")
    elif rep.precision == "int8":
        check = {"judged_by": "task accuracy on held-out data (INT8 is not compared elementwise)",
                 "accuracy": rep.accuracy}
    return PrecisionStep(converted, rep.precision, rep.to_dict(), check, warnings)


def check_low_precision(fp32: onnx.ModelProto, low: onnx.ModelProto, precision: str, options: Any) -> dict[str, Any]:
    """Max normalized error (:func:`tensorforge.core.reference.compare`) of ``low`` against the FP32
    reference session of ``fp32``, on seeded random inputs."""
    a = reference_session(fp32.SerializeToString(), options.threads)
    b = get_backend("onnxruntime").create_session(low.SerializeToString(), SessionConfig("cpu", options.threads))
    specs = io_specs(fp32)[0]
    batch = options.batch or (min(options.verify_batch, options.max_batch) if options.max_batch
                              else options.verify_batch)
    feeds = random_inputs(specs, batch, seed=options.seed)
    result = compare(b.run(feeds), a.run(feeds), names=[o.name for o in fp32.graph.output])
    tol = options.precision_rtol or tolerance(precision)
    check = {"against": "the verified FP32 engine, random inputs", "batch": batch, "max_norm_err": result.max_norm,
             "tolerance": tol, "passed": result.within(tol)}
    if result.nonfinite():
        check["nonfinite"] = result.nonfinite("FP32")
    return check


def optimize(model: onnx.ModelProto, options: Any, device: str, progress: Any = None) -> Any:
    """The joint precision × backend × settings search (:mod:`tensorforge.tune.joint`) for a build.

    Held-out data comes from ``options.eval_data`` (or the bundled dataset named by
    ``options.calibration``); INT8 is calibrated on ``options.calibration``, else on the eval
    dataset's calibration split, else on random inputs (speed only, said so)."""
    from ..precision import AccuracyBudget
    from ..tune.joint import OptimizeOptions
    from ..tune.joint import optimize as joint_optimize

    eval_data = resolve_eval_data(options.eval_data, model)
    source = options.calibration
    if source is None and isinstance(options.eval_data, str) and options.eval_data in BUNDLED:
        source = options.eval_data
    warnings: list[str] = []
    if source is None and options.calibration_cache is None and options.calibration_histograms is None:
        source = RANDOM_CALIBRATION
        warnings.append("no calibration data given: INT8 candidates are calibrated on random inputs")
    spec, eval_data, more = calibration_spec(source, model, options, eval_data)
    warnings += more
    if options.precisions is not None:
        precisions = tuple(options.precisions)
    elif options.precision in ("fp32", "best"):
        precisions = None
    else:
        precisions = (options.precision,)
    budget = None if options.accuracy_budget is None else AccuracyBudget.parse(options.accuracy_budget)
    if options.tune_batch is not None:
        batch = options.tune_batch
    elif options.batch is not None:
        batch = options.batch
    else:
        batch = 1 if options.optimize == "latency" else min(options.max_batch or 8, 8)
    backends = options.tune_backends or ((options.backend,) if options.backend else None)
    opts = OptimizeOptions(objective=options.optimize, batch=batch, budget_s=options.tune_budget_s, device=device,
                           precisions=precisions, backends=backends, accuracy_budget=budget, calibration=spec,
                           activations=options.activations, threads=options.threads, seed=options.seed,
                           cache=options.tune_cache)
    result = joint_optimize(model, opts, eval_data=eval_data, progress=progress)
    result.notes[:0] = warnings
    return result

