"""Accuracy of a model on real data, and the whitepaper's Table 1 across precisions.

* :func:`classifier_accuracy` — top-1/top-5 of one model (any source
  :func:`~tensorforge.engine.source.resolve_source` takes) on labeled images;
* :func:`accuracy_table` — one column per precision (FP32, FP16, BF16, INT8 …): top-1
  and top-5 with the difference to FP32 for a classifier, fidelity to FP32 (cosine,
  relative error) for anything else, and throughput measured by ``tensorforge.bench``
  on the same machine in the same run, so the trade is visible in one table.

INT8 is calibrated on the dataset's ``calibration`` split; the accuracy guard (with a
budget) judges on ``validation``; the table reports ``test`` — three disjoint splits.

Example::

    data = accuracy_data("mnist5k", model_inputs)      # tensorforge.models.accuracy_data
    table = accuracy_table("tensorforge/models/trained/mnist_cnn.onnx", data, ("fp32", "fp16", "int8"))
    table.columns[2].top1_delta_pts
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import onnx

from ..core.host import host_fingerprint
from ..core.precisions import BUILD_PRECISIONS
from ..engine.source import resolve_source
from ..errors import InputError
from ..models.accuracy_data import AccuracyData, EvalData
from ..precision.evaluate import reference_outputs, run_model, score
from ..precision.metrics import topk_accuracy

__all__ = ["ClassifierAccuracy", "classifier_accuracy", "PrecisionColumn", "AccuracyTable", "accuracy_table"]

ProgressFn = Callable[[str, float], None]


@dataclass(frozen=True)
class ClassifierAccuracy:
    top1: float        # percent
    top5: float        # percent
    samples: int


def classifier_accuracy(target: Any, images: np.ndarray, labels: np.ndarray, *, batch_size: int = 256,
                        threads: int | None = None) -> ClassifierAccuracy:
    model = resolve_source(target).onnx_model()
    name = next(i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer})
    data = EvalData([{name: images[i:i + batch_size]} for i in range(0, len(images), batch_size)], labels)
    logits = run_model(model.SerializeToString(), data, threads=threads)
    return ClassifierAccuracy(top1=topk_accuracy(logits, labels, 1), top5=topk_accuracy(logits, labels, 5),
                              samples=int(len(labels)))


@dataclass(frozen=True)
class PrecisionColumn:
    precision: str                      # what was asked
    shipped: str                        # what the model is (fp32 when the guard had to give up)
    top1_pct: float | None
    top5_pct: float | None
    top1_delta_pts: float | None        # vs FP32, same samples
    top5_delta_pts: float | None
    cosine_mean: float
    cosine_min: float
    rel_err_mean: float
    throughput_sps: float | None
    speedup_vs_fp32: float | None
    kept_fp32_layers: list[str] = field(default_factory=list)
    within_budget: bool | None = None
    note: str = ""


@dataclass(frozen=True)
class AccuracyTable:
    model: str
    dataset: str
    split: str
    samples: int
    kind: str                           # "classifier" or "fidelity"
    batch: int
    budget: str | None
    columns: list[PrecisionColumn]
    host: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    schema: str = "tensorforge.accuracy/1"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pin_dims(model: onnx.ModelProto, example: dict[str, np.ndarray]) -> onnx.ModelProto:
    """A copy whose symbolic non-batch input dims (sequence length …) take the data's sizes, so bench
    (which sets such dims to 1) times the shapes the accuracy was measured on."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for vi in m.graph.input:
        if vi.name not in example:
            continue
        for axis, dim in enumerate(vi.type.tensor_type.shape.dim):
            if axis > 0 and not dim.HasField("dim_value"):
                dim.dim_value = int(example[vi.name].shape[axis])
    return m


def _throughput(model: onnx.ModelProto, example: dict[str, np.ndarray], batch: int, duration_s: float,
                threads: int | None) -> float:
    from ..engine.build import BuildOptions, build
    from .runner import BenchOptions, bench

    engine, _ = build(_pin_dims(model, example), options=BuildOptions(pipeline="none", verify=False, threads=threads))
    result = bench(engine, BenchOptions(batches=(batch,), duration_s=duration_s, warmup_s=min(0.5, duration_s),
                                        min_iterations=5, threads=threads))
    return float(result.rows[0].engine.throughput_sps)


def accuracy_table(target: Any, data: AccuracyData, precisions: Sequence[str] = ("fp32", "fp16", "int8"), *,
                   budget: str | float | None = None, method: str = "percentile", activations: str = "uint8",
                   batch: int = 8, duration_s: float = 1.0, threads: int | None = None,
                   measure_speed: bool = True, progress: ProgressFn | None = None) -> AccuracyTable:
    """Table 1 for ``target`` on ``data``: see the module doc."""
    from ..precision import CalibrationSpec, PrecisionOptions, apply_precision

    src = resolve_source(target)
    model, name, base = src.onnx_model(), src.name, src.precision
    if base != "fp32":
        raise InputError(f"{name!r} is a {base} engine; the table converts from FP32 — give the FP32 model "
                         "(ONNX file or zoo name) or an FP32 engine")
    unknown = [p for p in precisions if p not in BUILD_PRECISIONS]
    if unknown or not precisions:
        raise InputError(f"unknown precision(s) {unknown}; choose from {', '.join(BUILD_PRECISIONS)}")
    labels = data.test.labels
    ref = reference_outputs(model.SerializeToString(), data.test, threads=threads)
    ref_score = score(ref, ref, labels)
    columns: list[PrecisionColumn] = []
    fp32_sps = None
    steps = len(precisions)
    for i, precision in enumerate(precisions):
        if progress:
            progress(precision, i / steps)
        opts = PrecisionOptions(precision, calibration=CalibrationSpec(data=data.calibration_data(), method=method),
                                activations=activations, accuracy_budget=budget, threads=threads)
        guarded = budget is not None or precision == "best"
        converted, rep = apply_precision(model, opts, eval_data=data.validation if guarded else None)
        got = score(run_model(converted.SerializeToString(), data.test, threads=threads), ref, labels)
        sps = _throughput(converted, data.test.batches[0], batch, duration_s, threads) if measure_speed else None
        if precision == "fp32":
            fp32_sps = sps
        note = "; ".join(rep.warnings or rep.notes[-1:]) if (rep.warnings or rep.notes) else ""
        columns.append(PrecisionColumn(
            precision=precision, shipped=rep.precision, top1_pct=got.top1_pct, top5_pct=got.top5_pct,
            top1_delta_pts=None if got.top1_pct is None else got.top1_pct - (ref_score.top1_pct or 0.0),
            top5_delta_pts=None if got.top5_pct is None else got.top5_pct - (ref_score.top5_pct or 0.0),
            cosine_mean=got.cosine_mean, cosine_min=got.cosine_min, rel_err_mean=got.rel_err_mean,
            throughput_sps=sps, speedup_vs_fp32=None, kept_fp32_layers=list(rep.kept_fp32_layers),
            within_budget=rep.met_budget, note=note))
    if fp32_sps:
        columns = [PrecisionColumn(**{**asdict(c), "speedup_vs_fp32": (c.throughput_sps / fp32_sps
                                                                       if c.throughput_sps else None)})
                   for c in columns]
    if progress:
        progress("done", 1.0)
    notes = [f"INT8 calibrated on the '{data.calibration_split}' split ({data.calibration_samples} samples, "
             f"{method}); guard judged on '{data.validation.name}'; table on '{data.test.name}'"]
    if not measure_speed:
        notes.append("throughput not measured")
    elif "fp32" not in precisions:
        notes.append("no FP32 column: speedups not computed")
    return AccuracyTable(model=name, dataset=data.name, split=data.test.name, samples=data.test.samples,
                         kind="classifier" if labels is not None else "fidelity", batch=batch,
                         budget=None if budget is None else str(budget), columns=columns, host=host_fingerprint(),
                         notes=notes)
