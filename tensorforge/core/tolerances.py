"""The one table of tolerances outputs are checked with, per precision (:mod:`.precisions`).

A tolerance bounds the *max normalized error* of :func:`tensorforge.core.reference.compare`:
``max |got - want| / max |want|`` over an output, worst output. Every numerical check reads
its tolerance here — the build's verification of the graph passes (``engine/verify.py``), its
check of an FP16/BF16 engine against FP32 (``engine/precision_step.py``) and the tuner's check
of each candidate (``tune/search.py``, ``tune/variants.py``) — so a value changes in one place.

Example::

    tolerance("fp16")                        # 1e-2
    tolerance("fp32", across_kernels=True)   # 1e-4: the tuner's check of another backend
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

from ..errors import InputError
from .precisions import PRECISIONS

__all__ = ["TOLERANCES", "tolerance"]

TOLERANCES: Mapping[str, float] = MappingProxyType({
    # The optimized FP32 graph against the original, both on ONNX Runtime's CPU kernels: the graph
    # passes (folding, fusing) change only the order of a few float32 sums and products, each
    # rounding at 2**-24 ≈ 6e-8; compounded through a deep network that stays well under 1e-5,
    # while a wrong pass (a bad fold, a dropped bias) is off by far more.
    "fp32": 1e-5,
    # The same FP32 graph on other kernels: another backend (OpenVINO, torch), another thread count
    # or ONNX Runtime level. Those reorder *every* reduction (GEMM blocking, the split of a sum
    # across threads) and approximate transcendental functions (exp, tanh, erf) by polynomials of
    # ~1e-6 relative error, so a correct kernel can exceed the graph passes' bound; 1e-4 still
    # rejects a kernel that computes something else.
    "fp32-kernels": 1e-4,
    # FP16 keeps 11 significant bits (one rounding ≈ 5e-4); the error compounds through the layers.
    "fp16": 1e-2,
    # BF16 keeps 8 significant bits (one rounding ≈ 4e-3), eight times coarser than FP16.
    "bf16": 6e-2,
    # An INT8 graph on other kernels: backends round the requantization (and fuse the Q/DQ pairs)
    # differently, and one step of a 256-level scale is already ~4e-3 of the range per layer.
    # The build itself judges INT8 by task accuracy on held-out data, not elementwise.
    "int8": 0.1,
})


def tolerance(precision: str, *, across_kernels: bool = False) -> float:
    """The tolerance for outputs computed in ``precision`` (a label such as ``"int8+bf16"`` counts as
    INT8). ``across_kernels``: the check compares another kernel library, thread count or backend
    on the same graph (the tuner) rather than another graph on the same kernels (the build)."""
    base = "int8" if precision.startswith("int8") else precision
    if base == "fp32" and across_kernels:
        return TOLERANCES["fp32-kernels"]
    if base not in PRECISIONS:
        raise InputError(f"no tolerance for precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    return TOLERANCES[base]
