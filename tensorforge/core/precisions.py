"""The precision names, in one place: what an engine computes in, and what a build may ask for.

The CLI's choices, the build's and precision package's option checks, the joint search and the
backends' capabilities all read these tuples.
"""

from __future__ import annotations

__all__ = ["BUILD_PRECISIONS", "LOW_FLOATS", "PRECISIONS"]

# The numeric formats an engine computes in.
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "bf16", "int8")
# What a build may ask for: a format, or "best" (the accuracy guard picks among them).
BUILD_PRECISIONS: tuple[str, ...] = PRECISIONS + ("best",)
# The reduced float formats, checked elementwise against FP32 (INT8 is judged by task accuracy).
LOW_FLOATS: tuple[str, ...] = ("fp16", "bf16")
