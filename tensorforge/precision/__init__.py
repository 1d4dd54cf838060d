"""Reduced precision: FP16/BF16 conversion, INT8 (QDQ) with calibration, and the accuracy guard.

Each step is an ONNX → ONNX transform, testable alone; :func:`apply_precision` is the one
call the build uses::

    from tensorforge.precision import (AccuracyBudget, CalibrationSpec, EvalData, PrecisionOptions,
                                       apply_precision)
    model, report = apply_precision(fp32_model, PrecisionOptions("int8", calibration=CalibrationSpec(data=calib),
                                                                 accuracy_budget="1.0"),
                                    eval_data=EvalData(held_out_batches, labels))
    report.precision, report.kept_fp32_layers, report.accuracy

Modules: ``calibration`` (data sources, preprocessing, streaming), ``histogram`` + ``methods``
(minmax, entropy, percentile, mse), ``collect`` (activation histograms), ``histfile`` (the
histogram file every method reuses), ``histpass`` (one pass → :class:`HistogramSet`, or the
file reused), ``cache`` (calibration cache file), ``int8`` (QDQ via ONNX Runtime's quantizer), ``dynamic`` (dynamic INT8
for transformers, and the auto static/dynamic choice), ``fp16`` (FP16 and
BF16), ``metrics`` + ``evaluate`` (top-k, fidelity, budgets), ``guard``, ``report``, ``api``.
"""

from __future__ import annotations

from ..models.accuracy_data import CalibrationData, EvalData
from .api import CalibrationSpec, PrecisionOptions, apply_precision, calibrate, default_measure
from .calibration import CalibrationStream, Preprocess, iter_calibration_batches, load_calibration_data
from .evaluate import AccuracyBudget, Score
from .histfile import HistogramSet, load_histograms, save_histograms
from .histpass import calibration_histograms, model_key
from .report import CandidateReport, PrecisionReport

__all__ = ["AccuracyBudget", "CalibrationData", "CalibrationSpec", "CalibrationStream", "CandidateReport",
           "EvalData", "HistogramSet", "Preprocess", "PrecisionOptions", "PrecisionReport", "Score", "apply_precision",
           "calibrate", "calibration_histograms", "default_measure", "iter_calibration_batches",
           "load_calibration_data", "load_histograms", "model_key", "save_histograms"]
