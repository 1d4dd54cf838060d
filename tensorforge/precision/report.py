"""What a precision step did, as plain data: :class:`PrecisionReport` (and one per ``best`` candidate).

It is written into the engine manifest as is (``to_dict()``), and printed by the CLI.
Fields say what shipped (``precision``), what stayed FP32 and why, what the backend
computes in FP32 for lack of kernels, how calibration went, the accuracy against FP32
on held-out data with the budget, and the measured speed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["CandidateReport", "PrecisionReport"]


@dataclass(frozen=True)
class CandidateReport:
    """One precision tried by ``best``."""

    precision: str
    within_budget: bool | None          # None: no budget was checked
    accuracy: dict[str, Any] | None     # Score.to_dict() on the held-out data
    time_s: float | None                # the measure function's figure (lower is faster)
    kept_fp32_layers: list[str] = field(default_factory=list)
    note: str = ""


@dataclass(frozen=True)
class PrecisionReport:
    requested: str                                  # fp32 | fp16 | bf16 | int8 | best
    precision: str                                  # what the returned model is
    kept_fp32_layers: list[str] = field(default_factory=list)     # guard fallbacks, first/last, by request
    kept_fp32_ops: dict[str, str] = field(default_factory=dict)   # node -> why it must stay FP32
    backend_fp32_ops: list[str] = field(default_factory=list)     # op types the backend computes in FP32
    calibration: dict[str, Any] | None = None       # method, samples, source, fingerprint, cache, seconds
    accuracy: dict[str, Any] | None = None          # fp32 / final scores, budget, met, data name
    guard: dict[str, Any] | None = None             # sensitivity per layer, steps tried
    speed: dict[str, Any] | None = None             # fp32_s, final_s, speedup (measured)
    candidates: list[CandidateReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def met_budget(self) -> bool | None:
        return None if not self.accuracy else self.accuracy.get("met")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line for a build log."""
        parts = [f"precision {self.precision}" + (f" (asked {self.requested})" if self.requested != self.precision
                                                  else "")]
        if self.kept_fp32_layers:
            parts.append(f"{len(self.kept_fp32_layers)} layer(s) kept FP32")
        if self.accuracy and self.accuracy.get("final"):
            final = self.accuracy["final"]
            metric = f"top-1 {final['top1_pct']:.2f}%" if final.get("top1_pct") is not None \
                else f"cosine {final['cosine_mean']:.4f}"
            parts.append(f"{metric} on {self.accuracy.get('data', 'held-out data')}")
        if self.speed and self.speed.get("speedup"):
            parts.append(f"{self.speed['speedup']:.2f}x FP32 speed")
        return "; ".join(parts)
