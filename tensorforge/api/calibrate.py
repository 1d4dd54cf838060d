"""``calibrate``: one calibration pass over a model's FP32 graph, saved as a reusable histogram file.

The graph is prepared exactly as :func:`tensorforge.build` prepares it (same pipeline and
batch settings), so the file fits the build; every calibration method's INT8 ranges derive
from the file without running the model again (``CalibrationSpec(histograms=FILE)``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["CalibrateResult", "calibrate"]


@dataclass(frozen=True)
class CalibrateResult:
    path: Path                    # the histogram file written
    histograms: Any               # precision.HistogramSet: every tensor's histogram, its model hash, sample count
    name: str                     # the model's name
    origin: str                   # where the model came from (file, zoo, trained)
    seconds: float                # the whole call, graph preparation included
    pass_seconds: float           # the calibration pass alone
    warnings: list[str] = field(default_factory=list)


def calibrate(model: Any, calibration: Any, output: str | os.PathLike[str], *, calibration_samples: int = 512,
              calibration_batch: int = 32, bins: int = 2048, batch: int | None = None, max_batch: int | None = None,
              pipeline: str = "default", threads: int | None = None, preprocess: Any = None) -> CalibrateResult:
    """Run ``calibration`` data (as ``BuildOptions.calibration`` takes it) through ``model``'s FP32 graph
    once, ``calibration_batch`` samples per run, and write the histograms (``bins`` per tensor) to ``output``.

    ``model`` is anything :func:`tensorforge.build` accepts; ``batch``/``max_batch``/``pipeline``
    must match the later build for the file to be accepted there; ``preprocess`` is a
    :class:`~tensorforge.precision.Preprocess` for images and arrays."""
    from ..engine.build import BuildOptions, fp32_graph
    from ..engine.precision_step import calibration_spec  # build's own reading of the calibration source
    from ..precision import calibration_histograms

    for label, value in (("calibration_samples", calibration_samples), ("calibration_batch", calibration_batch)):
        if value < 1:
            raise ConfigError(f"`{label}` must be >= 1, got {value}")
    if bins < 2 or bins % 2:
        raise ConfigError(f"`bins` must be an even number >= 2, got {bins} (default 2048)")
    t0 = time.perf_counter()
    options = BuildOptions(calibration=calibration, calibration_preprocess=preprocess,
                           calibration_samples=calibration_samples, pipeline=pipeline, batch=batch,
                           max_batch=max_batch)
    graph, name, origin = fp32_graph(model, options)
    spec, _, warnings = calibration_spec(calibration, graph, options, None)
    spec = replace(spec, batch_size=calibration_batch, num_bins=bins)    # computed afresh, never reused
    hs, info = calibration_histograms(graph, spec, threads=threads)
    path = hs.save(output)
    return CalibrateResult(path=Path(path), histograms=hs, name=name, origin=origin,
                           seconds=time.perf_counter() - t0, pass_seconds=float(info["seconds"]),
                           warnings=list(warnings))
