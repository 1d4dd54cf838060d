"""The reference check: how far outputs are from the reference outputs, with one NaN/Inf policy.

:func:`compare` is the one error function of the build's verification, its FP16/BF16 check, the
tuner's candidate check and the benchmarks; the fidelity metrics (``precision/metrics.py``) apply
the same policy through :func:`pair`. Pure NumPy.

The error of an output is its *max normalized error*: ``max |got - want| / max |want|``, the
scale taken over the reference's finite values (1 when they are all zero, or there are none,
so the error is then absolute). Integer and boolean outputs must be equal: any difference is
an infinite error.

NaN/Inf policy, element by element:

* reference finite, output finite: the error is ``|got - want|``;
* reference finite, output NaN or ±Inf: an infinite error;
* reference NaN or ±Inf: the output must hold the same value there (NaN for NaN, Inf of the
  same sign for Inf), which counts as error 0; anything else is an infinite error. These
  places prove nothing about the numbers, so they are counted (:meth:`Comparison.nonfinite`)
  and every report of the comparison says so: a reference that is all NaN is reported as
  "n of n values NaN/Inf", never as a bare "error 0".

A different number of outputs, or a different shape, is not an error size but a broken
contract: :class:`~tensorforge.errors.VerificationError`.

Example::

    c = compare(optimized_outputs, reference_outputs, names=["logits"])
    c.max_norm <= tolerance("fp32")      # passed?
    c.nonfinite()                         # {"logits": "3 of 8000 values NaN/Inf in the reference ..."}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import VerificationError

__all__ = ["Comparison", "OutputError", "Paired", "compare", "compare_output", "pair"]


@dataclass(frozen=True)
class Paired:
    """One output and its reference after the NaN/Inf policy: ``got``/``want`` in float64 (complex
    stays complex) with the matching non-finite places set to 0 in both, ``broken`` marking the
    places the policy makes an infinite error, ``nonfinite`` the count of NaN/Inf in the reference."""

    got: np.ndarray
    want: np.ndarray
    broken: np.ndarray
    nonfinite: int


def _check_shapes(got: np.ndarray, want: np.ndarray, name: str) -> None:
    if got.shape != want.shape:
        raise VerificationError(f"output {name!r} has shape {got.shape} but the reference's is {want.shape}")


def pair(got: np.ndarray, want: np.ndarray, name: str = "output") -> Paired:
    """Apply the NaN/Inf policy (module doc) to float outputs ``got`` against ``want`` of the same shape."""
    g, w = np.asarray(got), np.asarray(want)
    _check_shapes(g, w, name)
    kind = np.complex128 if "c" in (g.dtype.kind, w.dtype.kind) else np.float64
    g, w = g.astype(kind), w.astype(kind)
    w_finite, g_finite = np.isfinite(w), np.isfinite(g)
    if w_finite.all() and g_finite.all():          # the common case: no copies, nothing to mask
        return Paired(g, w, np.zeros(w.shape, dtype=bool), 0)
    # NaN matches NaN; an infinity matches only itself (np.equal); NaN != NaN, hence both tests
    same = (np.isnan(g) & np.isnan(w)) | (g == w)
    matched = ~w_finite & same
    broken = (w_finite & ~g_finite) | (~w_finite & ~same)
    clean_g, clean_w = np.where(matched | broken, 0, g), np.where(matched | broken, 0, w)
    return Paired(clean_g, clean_w, broken, int(w.size - np.count_nonzero(w_finite)))


@dataclass(frozen=True)
class OutputError:
    """One output's comparison: ``max_abs`` and ``max_norm`` errors, the normalizing ``scale``,
    ``size`` values of which ``nonfinite`` were NaN/Inf in the reference (checked for equality only)."""

    name: str
    max_abs: float
    max_norm: float
    scale: float
    size: int
    nonfinite: int = 0

    def note(self, reference: str = "the reference") -> str | None:
        """What the comparison could not measure, or None when it measured every value."""
        if not self.nonfinite:
            return None
        return f"{self.nonfinite} of {self.size} values NaN/Inf in {reference} (compared where finite)"


def compare_output(got: np.ndarray, want: np.ndarray, name: str = "output") -> OutputError:
    """One output against its reference, under the policy of the module doc."""
    g, w = np.asarray(got), np.asarray(want)
    _check_shapes(g, w, name)
    if w.dtype.kind not in "fc" or g.dtype.kind not in "fc":
        equal = np.array_equal(g, w)
        err = 0.0 if equal else float("inf")
        return OutputError(name, err, err, 1.0, int(w.size))
    p = pair(g, w, name)
    if p.broken.any():
        return OutputError(name, float("inf"), float("inf"), 1.0, int(w.size), p.nonfinite)
    max_abs = float(np.max(np.abs(p.got - p.want), initial=0.0))
    scale = float(np.max(np.abs(p.want), initial=0.0)) or 1.0
    return OutputError(name, max_abs, max_abs / scale, scale, int(w.size), p.nonfinite)


@dataclass(frozen=True)
class Comparison:
    """Every output's :class:`OutputError`; the worst of them is the comparison's error."""

    outputs: tuple[OutputError, ...]

    @property
    def max_abs(self) -> float:
        return max((o.max_abs for o in self.outputs), default=0.0)

    @property
    def max_norm(self) -> float:
        return max((o.max_norm for o in self.outputs), default=0.0)

    def nonfinite(self, reference: str = "the reference") -> dict[str, str]:
        """Output name → what could not be compared, for the outputs whose reference holds NaN/Inf."""
        return {o.name: note for o in self.outputs if (note := o.note(reference)) is not None}

    def within(self, rtol: float) -> bool:
        return self.max_norm <= rtol

    def describe(self) -> str:
        text = f"max normalized error {self.max_norm:.3g} (max abs {self.max_abs:.3g})"
        notes = self.nonfinite()
        return text + "".join(f"; {name}: {note}" for name, note in notes.items())


def compare(got: Sequence[np.ndarray], want: Sequence[np.ndarray], names: Sequence[str] | None = None) -> Comparison:
    """Outputs ``got`` against the reference outputs ``want``, in order (``names`` label them; by
    default "output 0", "output 1", ...). Raises VerificationError when their number or a shape differs."""
    if len(got) != len(want):
        raise VerificationError(f"{len(got)} outputs but the reference has {len(want)}")
    labels = list(names) if names is not None else []
    labels += [f"output {i}" for i in range(len(labels), len(want))]
    return Comparison(tuple(compare_output(g, w, n) for g, w, n in zip(got, want, labels)))
