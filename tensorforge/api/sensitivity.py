"""``sensitivity``: rank a model's layers by the accuracy lost when only that layer runs in INT8.

The model is prepared as :func:`tensorforge.build` prepares it (same graph passes), so layer
names match the build report; an FP32 engine is ranked on exactly the graph it holds.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

from ..errors import ConfigError, InputError

__all__ = ["fp32_model", "sensitivity"]

Progress = Callable[[int, int, str], None]


def fp32_model(source: Any, pipeline: str = "default") -> tuple[Any, str]:
    """(FP32 ONNX model as the build sees it before its precision step, name). Refuses a non-FP32 engine."""
    from ..engine.build import BuildOptions, fp32_graph
    from ..engine.source import resolve_source

    src = resolve_source(source)
    if src.engine is not None:
        if src.precision != "fp32":
            raise InputError(f"{src.origin!r} is an engine built in {src.precision.upper()}; sensitivity "
                             "quantizes one layer at a time starting from FP32 — give the FP32 model it was built "
                             "from (ONNX file, zoo or trained model name) or an FP32 engine (built in fp32)")
        return src.onnx_model(), src.name
    model, name, _ = fp32_graph(src, BuildOptions(pipeline=pipeline))
    return model, name


def sensitivity(model: Any, eval_data: Any, *, calibration: Any = None, calibration_method: str = "percentile",
                activations: str = "uint8", probe_samples: int | None = None, pipeline: str = "default",
                threads: int | None = None, progress: Progress | None = None) -> Any:
    """A :class:`~tensorforge.precision.sensitivity.SensitivityResult` for ``model`` on held-out ``eval_data``.

    ``eval_data``: a bundled dataset name (its validation split is used, the one the build's
    accuracy guard judges on) or an ``.npz`` with arrays named after the inputs and optional
    ``labels``. ``calibration``: INT8 calibration data as ``BuildOptions.calibration`` takes
    it; default: the calibration split of a bundled ``eval_data``. ``progress(done, total,
    layer)`` is called before each layer."""
    from ..engine.build import BuildOptions
    from ..engine.precision_step import calibration_spec
    from ..models.accuracy_data import BUILTIN, accuracy_data
    from ..precision.sensitivity import int8_sensitivity

    if not eval_data:
        raise ConfigError(f"`eval_data` is required: held-out data to score on ({', '.join(BUILTIN)} or an .npz "
                          "with arrays named after the model's inputs and optional 'labels')")
    graph, _ = fp32_model(model, pipeline)
    data = accuracy_data(eval_data, graph)
    source = calibration
    if source is None:
        if not (isinstance(eval_data, str) and eval_data in BUILTIN):
            raise ConfigError(f"`calibration` is required with eval_data={eval_data!r}: give INT8 calibration data "
                              f"({', '.join(BUILTIN)}, a folder of images, a .npy/.npz file) or 'random'")
        source = data.name
    spec, _, warnings = calibration_spec(source, graph, BuildOptions(calibration_method=calibration_method), None)
    if isinstance(source, str) and source == "random":
        warnings = ["INT8 ranges were calibrated on random inputs: the ranking reflects random-input ranges, not "
                    "your data's — give `calibration` real samples to find the layer that hurts in practice"]
    result = int8_sensitivity(graph, spec, data.validation, activations=activations, probe_samples=probe_samples,
                              threads=threads, progress=progress)
    return replace(result, warnings=list(warnings) + list(result.warnings))
