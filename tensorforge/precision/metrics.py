"""Accuracy metrics, pure NumPy: top-k for classifiers, fidelity against FP32 for everything.

* :func:`topk_accuracy` — percent of rows whose label is among the k largest logits;
* :func:`fidelity` — per row (one sample's output, flattened): cosine similarity and
  relative L2 error ``‖y − y_ref‖ / ‖y_ref‖`` against the reference (FP32) output,
  summarized as mean / min (cosine) and mean / max (relative error), plus the largest
  absolute difference.

NaN/Inf follow the reference check's policy (:mod:`tensorforge.core.reference`): a row whose
output is NaN/Inf where the reference is finite (or differs from a NaN/Inf of the reference) is
infinitely wrong — relative error inf, cosine -1, the least similar a row can be; NaN/Inf at the
same places in both are left out of the row's vectors and counted in ``Fidelity.nonfinite``.
Outputs of different shapes raise :class:`~tensorforge.errors.VerificationError`.

Example::

    topk_accuracy(logits, labels, k=1)          # 98.7 (percent)
    fidelity(int8_embeddings, fp32_embeddings).cosine_mean
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..core.reference import pair

__all__ = ["topk_accuracy", "Fidelity", "fidelity", "cosine_rows", "relative_error_rows"]


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    """Percent of rows whose label is in the top ``k`` (ties broken by index, as argsort does)."""
    logits = np.asarray(logits).reshape(len(labels), -1)
    labels = np.asarray(labels).reshape(-1)
    if logits.shape[0] != labels.shape[0]:
        raise ValueError(f"{logits.shape[0]} rows of logits but {labels.shape[0]} labels")
    if labels.size == 0:
        raise ValueError("no samples to score")
    k = min(k, logits.shape[1])
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)) * 100.0)


def _rows(a: np.ndarray) -> np.ndarray:
    return a.reshape(a.shape[0], -1) if a.ndim > 1 else a.reshape(-1, 1)


def _paired_rows(a: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(output rows, reference rows, rows the NaN/Inf policy marks wrong, NaN/Inf count of the reference)."""
    p = pair(a, ref)
    return _rows(p.got.real), _rows(p.want.real), np.asarray(_rows(p.broken).any(axis=1)), p.nonfinite


def _cosine(x: np.ndarray, y: np.ndarray, broken: np.ndarray) -> np.ndarray:
    nx, ny = np.linalg.norm(x, axis=1), np.linalg.norm(y, axis=1)
    dot = np.sum(x * y, axis=1)
    both_zero = (nx == 0) & (ny == 0)
    denom = np.where(nx * ny == 0, 1.0, nx * ny)
    cos = np.where(both_zero, 1.0, np.where(nx * ny == 0, 0.0, dot / denom))
    return np.where(broken, -1.0, cos)


def _relative(x: np.ndarray, y: np.ndarray, broken: np.ndarray) -> np.ndarray:
    num = np.linalg.norm(x - y, axis=1)
    den = np.linalg.norm(y, axis=1)
    rel = np.where(den == 0, np.where(num == 0, 0.0, np.inf), num / np.where(den == 0, 1.0, den))
    return np.where(broken, np.inf, rel)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _cosine(*_paired_rows(a, b)[:3])


def relative_error_rows(a: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return _relative(*_paired_rows(a, ref)[:3])


@dataclass(frozen=True)
class Fidelity:
    cosine_mean: float
    cosine_min: float
    rel_err_mean: float
    rel_err_max: float
    max_abs_err: float
    samples: int
    nonfinite: int = 0          # reference values that were NaN/Inf (matched, not measured)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fidelity(outputs: np.ndarray, reference: np.ndarray) -> Fidelity:
    x, y, broken, nonfinite = _paired_rows(outputs, reference)
    cos, rel = _cosine(x, y, broken), _relative(x, y, broken)
    max_abs = float("inf") if broken.any() else float(np.max(np.abs(x - y), initial=0.0))
    return Fidelity(cosine_mean=float(cos.mean()), cosine_min=float(cos.min()), rel_err_mean=float(rel.mean()),
                    rel_err_max=float(rel.max()), max_abs_err=max_abs, samples=int(cos.size), nonfinite=nonfinite)
