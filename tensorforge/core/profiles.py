"""Shape profiles (TensorRT's optimization profiles): per dynamic input, the min, opt and max shapes.

An engine whose inputs have dynamic axes (a batch ``N``, a sequence length ``S``) records one or
more :class:`ShapeProfile`; the build verifies the optimized graph at each profile's min, opt and
max; a session refuses a feed that fits no profile (:func:`~tensorforge.core.feeds.check_feeds`);
bench, the tuner and the batcher read their shapes from the profile instead of assuming 1.

The text form, ``--shapes`` on the command line, gives one triple ``min,opt,max`` per input, each
shape ``AxBx…``; inputs of one profile are separated by spaces or ``;``, and each ``--shapes`` is one
profile::

    input_ids:1x16,8x128,32x512
    input_ids:1x16,8x128,32x512;attention_mask:1x16,8x128,32x512

Inputs that share a symbolic axis with a named input (BERT's ``attention_mask`` and
``token_type_ids`` share ``[N, S]`` with ``input_ids``) take their shapes from it, so one triple is
enough; a dynamic input left unbound gets the defaults of :func:`default_profile`.

Example::

    (p,) = parse_shapes("input_ids:1x16,8x128,32x512")
    p = resolve_profile(p, specs, max_batch=None, max_sequence=512)
    p.shapes("opt")          # {'input_ids': (8, 128), 'attention_mask': (8, 128), ...}
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from ..errors import ConfigError
from .specs import TensorSpec

__all__ = ["InputProfile", "ShapeProfile", "MAX_SEQUENCE_KEY", "POINTS", "parse_shapes", "resolve_profile",
           "resolve_profiles", "default_profile", "has_dynamic_axes", "profile_for", "DEFAULT_SEQUENCE",
           "DEFAULT_MAX_BATCH"]

#: ONNX metadata key (model.metadata_props) with the longest sequence a model accepts (zoo BERT sets it).
MAX_SEQUENCE_KEY = "tensorforge.max_sequence"
#: The three shapes of a profile, in order.
POINTS = ("min", "opt", "max")
DEFAULT_SEQUENCE = 128          # a non-batch dynamic axis's max when the model does not state one
DEFAULT_OPT_SEQUENCE = 128
DEFAULT_MAX_BATCH = 8           # the batch's max when the build gives no max_batch
_SHAPE = re.compile(r"^\d+(x\d+)*$")

Shape = tuple[int, ...]


@dataclass(frozen=True)
class InputProfile:
    """min/opt/max shapes of one input; ``min <= opt <= max`` on every axis."""

    name: str
    min: Shape
    opt: Shape
    max: Shape

    def at(self, point: str) -> Shape:
        return {"min": self.min, "opt": self.opt, "max": self.max}[point]

    def fits(self, shape: Sequence[int]) -> bool:
        return len(shape) == len(self.min) and all(lo <= s <= hi for s, lo, hi in zip(shape, self.min, self.max))

    def text(self) -> str:
        return f"{self.name}:" + ",".join(_shape_text(s) for s in (self.min, self.opt, self.max))


@dataclass(frozen=True)
class ShapeProfile:
    """One optimization profile: a triple per dynamic input (inputs with only fixed dims are absent)."""

    inputs: tuple[InputProfile, ...]

    def get(self, name: str) -> InputProfile | None:
        return next((p for p in self.inputs if p.name == name), None)

    def shapes(self, point: str) -> dict[str, Shape]:
        """``{input: shape}`` at ``point`` (min, opt or max)."""
        if point not in POINTS:
            raise ValueError(f"point must be one of {POINTS}, got {point!r}")
        return {p.name: p.at(point) for p in self.inputs}

    def fits(self, shapes: Mapping[str, Sequence[int]]) -> bool:
        """Every input of the profile that is in ``shapes`` lies within min..max."""
        return all(p.fits(shapes[p.name]) for p in self.inputs if p.name in shapes)

    def text(self) -> str:
        return " ".join(p.text() for p in self.inputs)

    def to_dict(self) -> dict[str, Any]:
        return {p.name: {"min": list(p.min), "opt": list(p.opt), "max": list(p.max)} for p in self.inputs}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ShapeProfile":
        """The inverse of :meth:`to_dict`; ValueError on anything malformed (the manifest names the field)."""
        if not isinstance(d, Mapping) or not d:
            raise ValueError("expected a non-empty object {input: {min, opt, max}}")
        out = []
        for name, t in d.items():
            if not isinstance(t, Mapping) or set(t) != set(POINTS):
                raise ValueError(f"input {name!r}: expected {{min, opt, max}}, got {t!r}")
            shapes = []
            for point in POINTS:
                s = t[point]
                if not isinstance(s, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in s):
                    raise ValueError(f"input {name!r}: {point} is {s!r}; expected a list of integers")
                shapes.append(tuple(s))
            out.append(_triple(str(name), *shapes))
        return cls(tuple(out))


def _shape_text(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape)


def _triple(name: str, lo: Shape, opt: Shape, hi: Shape) -> InputProfile:
    if not (len(lo) == len(opt) == len(hi)):
        raise ValueError(f"input {name!r}: min, opt and max have different ranks ({_shape_text(lo)}, "
                         f"{_shape_text(opt)}, {_shape_text(hi)})")
    if any(d < 1 for d in (*lo, *opt, *hi)):
        raise ValueError(f"input {name!r}: every dim must be >= 1")
    if not all(a <= b <= c for a, b, c in zip(lo, opt, hi)):
        raise ValueError(f"input {name!r}: needs min <= opt <= max on every axis, got min {_shape_text(lo)}, "
                         f"opt {_shape_text(opt)}, max {_shape_text(hi)}")
    return InputProfile(name, lo, opt, hi)


def parse_shapes(spec: str | Sequence[str] | Sequence[ShapeProfile] | None) -> tuple[ShapeProfile, ...]:
    """Profiles from ``--shapes`` text (one string per profile) or already typed ones; ConfigError on a bad spec."""
    if spec is None:
        return ()
    items: Sequence[Any] = [spec] if isinstance(spec, (str, ShapeProfile)) else list(spec)
    out = []
    for item in items:
        if isinstance(item, ShapeProfile):
            out.append(item)
            continue
        if not isinstance(item, str):
            raise ConfigError(f"shapes: expected text such as 'input_ids:1x16,8x128,32x512', got {item!r}")
        out.append(_parse_one(item))
    return tuple(out)


def _parse_one(text: str) -> ShapeProfile:
    example = "e.g. input_ids:1x16,8x128,32x512 (min,opt,max per input)"
    parts = [p for p in re.split(r"[;\s]+", text.strip()) if p]
    if not parts:
        raise ConfigError(f"shapes: empty profile; give NAME:MIN,OPT,MAX, {example}")
    inputs: list[InputProfile] = []
    for part in parts:
        name, sep, triple = part.rpartition(":")
        shapes = triple.split(",")
        if not sep or not name or len(shapes) != 3 or not all(_SHAPE.match(s) for s in shapes):
            raise ConfigError(f"shapes: cannot read {part!r}; give NAME:MIN,OPT,MAX with shapes like 8x128, {example}")
        if any(p.name == name for p in inputs):
            raise ConfigError(f"shapes: input {name!r} appears twice in one profile {text!r}")
        try:
            inputs.append(_triple(name, *(tuple(int(d) for d in s.split("x")) for s in shapes)))
        except ValueError as exc:
            raise ConfigError(f"shapes: {exc} ({part!r})") from None
    return ShapeProfile(tuple(inputs))


def has_dynamic_axes(specs: Iterable[TensorSpec], *, beyond_batch: bool = False) -> bool:
    """Whether any input has a symbolic/unknown dim (``beyond_batch``: one other than axis 0)."""
    return any(not isinstance(d, int) for s in specs for axis, d in enumerate(s.shape)
               if not (beyond_batch and axis == 0))


def default_profile(specs: Sequence[TensorSpec], *, max_batch: int | None = None,
                    max_sequence: int | None = None) -> ShapeProfile:
    """The profile a build records without ``shapes``: batch (a symbolic axis 0) from 1 to ``max_batch``
    (else :data:`DEFAULT_MAX_BATCH`), opt ``min(8, max)``; every other dynamic axis from 1 to
    ``max_sequence`` (the model's, else :data:`DEFAULT_SEQUENCE`), opt ``min(128, max)``."""
    return resolve_profile(ShapeProfile(()), specs, max_batch=max_batch, max_sequence=max_sequence)


def resolve_profile(profile: ShapeProfile, specs: Sequence[TensorSpec], *, max_batch: int | None = None,
                    max_sequence: int | None = None) -> ShapeProfile:
    """``profile`` checked against the model's inputs and completed: every dynamic input gets a triple
    (from a named input sharing its symbols, else the defaults); ConfigError naming the input otherwise."""
    by_name = {s.name: s for s in specs}
    known = [s.name for s in specs]
    bound: dict[str, list[int]] = {}            # symbol -> [min, opt, max]
    for p in profile.inputs:
        spec = by_name.get(p.name)
        if spec is None:
            raise ConfigError(f"shapes: the model has no input {p.name!r}; its inputs are {known}")
        if len(p.min) != len(spec.shape):
            raise ConfigError(f"shapes: input {p.name!r} has rank {len(spec.shape)} {_spec_text(spec)}; the "
                              f"profile gives rank {len(p.min)} ({p.text()})")
        for axis, d in enumerate(spec.shape):
            got = [p.min[axis], p.opt[axis], p.max[axis]]
            if isinstance(d, int):
                if got != [d, d, d]:
                    raise ConfigError(f"shapes: input {p.name!r} axis {axis} is fixed at {d} {_spec_text(spec)}; "
                                      f"the profile gives {got[0]},{got[1]},{got[2]}")
            elif isinstance(d, str):
                if bound.setdefault(d, got) != got:
                    raise ConfigError(f"shapes: input {p.name!r} gives {d}={got} on axis {axis}, but another "
                                      f"input gives {d}={bound[d]}; inputs sharing {d} must agree")
        if _batch_over(p, spec, max_batch):
            raise ConfigError(f"shapes: input {p.name!r} has max batch {p.max[0]}, over the build's max_batch "
                              f"{max_batch}")
    out = []
    for spec in specs:
        given = profile.get(spec.name)
        if given is not None:
            out.append(given)
            continue
        if not has_dynamic_axes([spec]):
            continue
        triple: list[list[int]] = []
        for axis, d in enumerate(spec.shape):
            if isinstance(d, int):
                triple.append([d, d, d])
            elif isinstance(d, str) and d in bound:
                triple.append(bound[d])
            else:
                t = _default_axis(axis, max_batch, max_sequence)
                if isinstance(d, str):
                    bound[d] = t
                triple.append(t)
        out.append(InputProfile(spec.name, *(tuple(t[i] for t in triple) for i in range(3))))
    return ShapeProfile(tuple(out))


def _batch_over(p: InputProfile, spec: TensorSpec, max_batch: int | None) -> bool:
    return bool(max_batch is not None and spec.shape and not isinstance(spec.shape[0], int) and p.max[0] > max_batch)


def _default_axis(axis: int, max_batch: int | None, max_sequence: int | None) -> list[int]:
    if axis == 0:
        hi = max_batch or DEFAULT_MAX_BATCH
        return [1, min(8, hi), hi]
    hi = max_sequence or DEFAULT_SEQUENCE
    return [1, min(DEFAULT_OPT_SEQUENCE, hi), hi]


def resolve_profiles(profiles: Sequence[ShapeProfile], specs: Sequence[TensorSpec], *, max_batch: int | None = None,
                     max_sequence: int | None = None) -> tuple[ShapeProfile, ...]:
    """Every given profile resolved; without any, the default one -- only for a model with a dynamic axis
    beyond the batch (a sequence length): a model whose only dynamic axis is the batch keeps ``max_batch``
    as its one bound, as engines always had."""
    if not profiles:
        return (default_profile(specs, max_batch=max_batch, max_sequence=max_sequence),) \
            if has_dynamic_axes(specs, beyond_batch=True) else ()
    return tuple(resolve_profile(p, specs, max_batch=max_batch, max_sequence=max_sequence) for p in profiles)


def profile_for(profiles: Sequence[ShapeProfile], shapes: Mapping[str, Sequence[int]]) -> ShapeProfile | None:
    """The first profile ``shapes`` fit, None when none does (an empty list accepts everything)."""
    return next((p for p in profiles if p.fits(shapes)), None)


def _spec_text(spec: TensorSpec) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in spec.shape) + "]"
