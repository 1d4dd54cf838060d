"""The one input check: do these feeds fit a model's input specs?

The Python :class:`~tensorforge.engine.runtime.Session` and the inference server both call
:func:`check_feeds` before a backend sees the data, so a bad input is refused by the same
rules with the same words wherever it is sent. The rules, in order: the inputs are a dict of
NumPy arrays (or one array for a one-input model); no name is missing or unexpected; each
array has the spec's dtype and rank; fixed dims match; symbolic dims are non-empty and bound
to one size across all inputs; the batch (a symbolic axis 0) is at most ``max_batch``; and,
when ``check_finite`` is on, float inputs hold no NaN/Inf; with ``profiles`` (the engine's shape
profiles, :mod:`~tensorforge.core.profiles`), the shapes lie within one profile's min..max. Each failure raises
:class:`~tensorforge.errors.InputError` naming the input, what it got, what the model expects
and what to do about it.

Example::

    feeds = check_feeds({"x": x}, specs, max_batch=8, model="resnet50")
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import InputError
from .profiles import ShapeProfile, profile_for
from .specs import TensorSpec

__all__ = ["check_feeds", "shape_text"]


def check_feeds(inputs: Any, specs: Sequence[TensorSpec], *, max_batch: int | None = None,
                check_finite: bool = True, model: str | None = None,
                profiles: Sequence[ShapeProfile] = ()) -> dict[str, np.ndarray]:
    """Check ``inputs`` against ``specs``; return the feed dict ``{name: array}`` or raise InputError.

    ``max_batch``: the most samples the model takes on a symbolic axis 0 (None: no limit).
    ``model``: the model's name, used in messages ("model 'x' expects …"; without it "the model").
    ``profiles``: the engine's shape profiles; a feed must fit one of them (none given: no such check).
    """
    label = f"model {model!r}" if model else "the model"
    names = [s.name for s in specs]
    if isinstance(inputs, np.ndarray):
        if len(names) != 1:
            raise InputError(f"{label} has {len(names)} inputs {names}; pass a dict {{name: array}}, "
                             "not a single array")
        feeds = {names[0]: inputs}
    elif isinstance(inputs, Mapping):
        feeds = dict(inputs)
    else:
        raise InputError(f"inputs must be a NumPy array or a dict of them, got {type(inputs).__name__}")
    if len(feeds) != len(names) or any(n not in feeds for n in names):
        missing = [n for n in names if n not in feeds]
        unexpected = sorted(set(feeds) - set(names))
        parts = ([f"missing input(s) {missing}"] if missing else []) + (
            [f"unexpected input(s) {unexpected}"] if unexpected else [])
        raise InputError(f"{'; '.join(parts)}; the inputs of {label} are {names}")
    bound: dict[str, int] = {}        # symbolic dim -> the size the first input using it gave
    for spec in specs:
        _check_one(spec, feeds[spec.name], bound, max_batch, check_finite, label)
    if profiles:
        _check_profiles(feeds, profiles, label)
    return feeds


def _check_profiles(feeds: Mapping[str, np.ndarray], profiles: Sequence[ShapeProfile], label: str) -> None:
    """Refuse shapes outside every profile, naming the first input out of the first profile."""
    shapes = {name: tuple(int(d) for d in a.shape) for name, a in feeds.items()}
    if profile_for(profiles, shapes) is not None:
        return
    first = profiles[0]
    bad = next((p for p in first.inputs if p.name in shapes and not p.fits(shapes[p.name])), first.inputs[0])
    others = f" (nor any of its {len(profiles)} profiles)" if len(profiles) > 1 else ""
    raise InputError(f"input {bad.name!r} has shape {list(shapes.get(bad.name, ()))}, outside the shape profile "
                     f"of {label}: {bad.name} min {list(bad.min)} opt {list(bad.opt)} max {list(bad.max)}{others}; "
                     "send shapes within it, or rebuild with --shapes covering them")


def shape_text(shape: Sequence[int | str | None]) -> str:
    """A spec's shape as the messages write it: ``[N, 3, 224, 224]`` (``?`` for an unnamed free dim)."""
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def _check_one(spec: TensorSpec, value: Any, bound: dict[str, int], max_batch: int | None, check_finite: bool,
               label: str) -> None:
    name = spec.name
    if not isinstance(value, np.ndarray):
        raise InputError(f"input {name!r} is a {type(value).__name__}; pass a NumPy array of {spec.dtype}")
    want = np.dtype(spec.dtype)
    if value.dtype != want:
        raise InputError(f"input {name!r} has dtype {value.dtype}; {label} expects {want} — cast the data to {want}")
    shape = list(value.shape)
    if value.ndim != len(spec.shape):
        raise InputError(f"input {name!r} has shape {shape} (rank {value.ndim}); {label} expects "
                         f"{shape_text(spec.shape)} (rank {len(spec.shape)})")
    for axis, (got, dim) in enumerate(zip(value.shape, spec.shape)):
        if isinstance(dim, int):
            if got != dim:
                raise InputError(f"input {name!r} has shape {shape}; {label} expects {shape_text(spec.shape)} "
                                 f"(axis {axis} must be {dim})")
        elif isinstance(dim, str):
            if got < 1:
                raise InputError(f"input {name!r} has shape {shape}; axis {axis} ({dim}) is empty")
            if bound.setdefault(dim, got) != got:
                raise InputError(f"input {name!r} has {dim}={got} on axis {axis}, but another input has "
                                 f"{dim}={bound[dim]}; all inputs must agree on {dim}")
            if axis == 0 and max_batch is not None and got > max_batch:
                raise InputError(f"input {name!r} has batch {got}, more than the max batch {max_batch} of {label}; "
                                 f"split it into batches of at most {max_batch}")
    if check_finite and value.dtype.kind == "f" and value.size and not _all_finite(value):
        bad = int(value.size - np.count_nonzero(np.isfinite(value)))
        raise InputError(f"input {name!r} holds {bad} NaN/Inf value(s); clean the data, or turn check_finite off "
                         "to pass them through")


def _all_finite(value: np.ndarray) -> bool:
    """True when no NaN/Inf is present: one single-threaded vectorized pass, cheap next to inference.
    Not the BLAS dot-product trick: it wakes BLAS's own thread pool, which fights the backend's threads
    for the cores in a busy server and so costs more than it saves."""
    return bool(np.isfinite(value).all())
