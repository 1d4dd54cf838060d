"""The build's shape-profile step: which profiles the engine records, and the check at each point.

:func:`resolve` turns ``BuildOptions.shapes`` (or, without it, the defaults of
:func:`~tensorforge.core.profiles.default_profile`, for a model with a dynamic axis beyond the
batch) into complete profiles for the model's inputs, with the note the build report prints.
:func:`verify_points` runs the build's numerical check once per profile point (min, opt, max), so
the optimized graph is proven at the shapes the engine promises, not only at one small shape.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import onnx

from ..core.profiles import MAX_SEQUENCE_KEY, POINTS, ShapeProfile, resolve_profiles
from ..core.specs import io_specs
from ..errors import VerificationError
from ..graph.analysis import count_macs
from .verify import verify_build

__all__ = ["resolve", "verify_points", "model_max_sequence", "macs_at"]


def model_max_sequence(model: onnx.ModelProto) -> int | None:
    """The longest sequence the model states (metadata ``tensorforge.max_sequence``), else None."""
    for p in model.metadata_props:
        if p.key == MAX_SEQUENCE_KEY and p.value.isdigit() and int(p.value) > 0:
            return int(p.value)
    return None


def resolve(model: onnx.ModelProto, shapes: tuple[ShapeProfile, ...], max_batch: int | None,
            original: onnx.ModelProto | None = None) -> tuple[tuple[ShapeProfile, ...], str | None]:
    """(profiles, note) for ``model`` (the batch-rewritten graph): the given ones checked and completed,
    else the defaults derived from the model (ConfigError on a spec that does not fit the inputs)."""
    specs, _ = io_specs(model)
    max_seq = model_max_sequence(original if original is not None else model)
    profiles = resolve_profiles(shapes, specs, max_batch=max_batch, max_sequence=max_seq)
    if not profiles:
        return (), None
    origin = "as given" if shapes else (
        f"default, derived from the model: batch 1..{profiles[0].inputs[0].max[0]}, sequence 1.."
        f"{max_seq or 'default'}{' from its metadata' if max_seq else ''}; give `shapes` to choose")
    text = " | ".join(p.text() for p in profiles)
    opt = profiles[0].shapes("opt")
    macs = macs_at(model, opt)
    at = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in list(opt.items())[:1])
    work = f"; {macs / 1e9:.3g} GMACs per sample at opt ({at})" if macs else ""
    return profiles, f"shape profiles (min,opt,max) {text} ({origin}){work}"


def macs_at(model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]]) -> int:
    """Multiply-accumulates per sample with the inputs at ``shapes`` (a count with the sequence
    axis unknown misses most of a transformer's work)."""
    batch = next((v[0] for v in shapes.values() if v), 1)
    try:
        return count_macs(model, batch, shapes=shapes) // max(batch, 1)
    except Exception:  # noqa: BLE001 - a statistic for the report, never a reason to fail a build
        return 0


def verify_points(reference: onnx.ModelProto, old_batch: int | str | None, payload: bytes, options: Any,
                  path: Path | None, profiles: tuple[ShapeProfile, ...], name: str) -> list[dict[str, Any]]:
    """Verify the optimized graph at each profile's min, opt and max; VerificationError on the first miss.
    Returns one record per point (profile index, point, shapes, errors) for the manifest."""
    records = []
    for i, profile in enumerate(profiles):
        for point in POINTS:
            shapes = profile.shapes(point)
            v = verify_build(reference, old_batch, payload, options, path, shapes=shapes)
            if not v.passed:
                raise VerificationError(
                    f"the optimized {name!r} differs from the original at shape profile {i} {point} "
                    f"({v.data}): max normalized error {v.max_norm_err:.3g} > tolerance {v.tolerance:.3g}; "
                    "nothing was written. Rebuild with pipeline='none' to skip graph passes, and please report "
                    "the model")
            records.append({"profile": i, "point": point,
                            "shapes": {k: list(s) for k, s in shapes.items()},
                            **{k: val for k, val in asdict(v).items() if k in ("max_abs_err", "max_norm_err",
                                                                               "tolerance", "passed")}})
    return records
