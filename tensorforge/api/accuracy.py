"""``accuracy``: the whitepaper's Table 1 — accuracy and speed of one model at several precisions."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from ..errors import ConfigError

__all__ = ["accuracy"]


def accuracy(model: Any, data: Any, precisions: Sequence[str] = ("fp32", "fp16", "int8"), *,
             budget: str | float | None = None, method: str = "percentile", activations: str = "uint8",
             batch: int = 8, duration_s: float = 1.0, threads: int | None = None, measure_speed: bool = True,
             progress: Callable[[str, float], None] | None = None) -> Any:
    """An :class:`~tensorforge.bench.accuracy.AccuracyTable` for ``model`` on ``data``.

    ``model``: an FP32 engine file, an ONNX file, a zoo or shipped trained model name.
    ``data``: a bundled dataset name (mnist5k, digits, sentences), an ``.npz`` with arrays
    named after the model's inputs and optional ``labels``, or an ``AccuracyData``.
    ``budget``: the accuracy guard's budget (top-1 points like ``1.0``, or ``"cosine:0.99"``).
    See :func:`tensorforge.bench.accuracy.accuracy_table` for the method."""
    from ..bench.accuracy import accuracy_table
    from ..engine.source import resolve_source
    from ..models.accuracy_data import AccuracyData, accuracy_data

    if isinstance(precisions, str):
        precisions = tuple(p.strip() for p in precisions.split(",") if p.strip())
    if batch < 1:
        raise ConfigError(f"`batch` must be >= 1, got {batch}")
    if duration_s <= 0:
        raise ConfigError(f"`duration_s` must be > 0, got {duration_s}")
    model = resolve_source(model)          # resolved once: the table reuses it
    if not isinstance(data, AccuracyData):
        data = accuracy_data(data, model.onnx_model())
    return accuracy_table(model, data, tuple(precisions), budget=budget, method=method, activations=activations,
                          batch=batch, duration_s=duration_s, threads=threads, measure_speed=measure_speed,
                          progress=progress)
