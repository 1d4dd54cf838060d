"""Accuracy metrics, pure NumPy: top-k for classifiers, fidelity against FP32 for everything.

* :func:`topk_accuracy` — percent of rows whose label is among the k largest logits;
* :func:`fidelity` — per row (one sample's output, flattened): cosine similarity and
  relative L2 error ``‖y − y_ref‖ / ‖y_ref‖`` against the reference (FP32) output,
  summarized as mean / min (cosine) and mean / max (relative error), plus the largest
  absolute difference.

Example::

    topk_accuracy(logits, labels, k=1)          # 98.7 (percent)
    fidelity(int8_embeddings, fp32_embeddings).cosine_mean
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

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
    a = np.asarray(a, dtype=np.float64)
    return a.reshape(a.shape[0], -1) if a.ndim > 1 else a.reshape(-1, 1)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x, y = _rows(a), _rows(b)
    if x.shape != y.shape:
        raise ValueError(f"outputs of shape {np.shape(a)} and {np.shape(b)} cannot be compared")
    nx, ny = np.linalg.norm(x, axis=1), np.linalg.norm(y, axis=1)
    dot = np.sum(x * y, axis=1)
    both_zero = (nx == 0) & (ny == 0)
    denom = np.where(nx * ny == 0, 1.0, nx * ny)
    return np.where(both_zero, 1.0, np.where(nx * ny == 0, 0.0, dot / denom))


def relative_error_rows(a: np.ndarray, ref: np.ndarray) -> np.ndarray:
    x, y = _rows(a), _rows(ref)
    if x.shape != y.shape:
        raise ValueError(f"outputs of shape {np.shape(a)} and {np.shape(ref)} cannot be compared")
    num = np.linalg.norm(x - y, axis=1)
    den = np.linalg.norm(y, axis=1)
    return np.where(den == 0, np.where(num == 0, 0.0, np.inf), num / np.where(den == 0, 1.0, den))


@dataclass(frozen=True)
class Fidelity:
    cosine_mean: float
    cosine_min: float
    rel_err_mean: float
    rel_err_max: float
    max_abs_err: float
    samples: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fidelity(outputs: np.ndarray, reference: np.ndarray) -> Fidelity:
    cos = cosine_rows(outputs, reference)
    rel = relative_error_rows(outputs, reference)
    diff = np.abs(np.asarray(outputs, np.float64) - np.asarray(reference, np.float64))
    return Fidelity(cosine_mean=float(cos.mean()), cosine_min=float(cos.min()), rel_err_mean=float(rel.mean()),
                    rel_err_max=float(rel.max()), max_abs_err=float(diff.max(initial=0.0)), samples=int(cos.size))
