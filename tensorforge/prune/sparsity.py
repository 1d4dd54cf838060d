"""Weight sparsity in place: 2:4 semi-structured and unstructured magnitude pruning.

The graph keeps its shapes; only weight values become zero. Which weights: the constant weight of
every Conv (input 1), Gemm (input 1) and MatMul (a 2-D constant input 1) — each constant once, even
when shared. Biases, BN params and other constants stay.

- **2:4**: the weight is viewed with its input-channel axis last (Conv [O, I/g, kH, kW] → I/g;
  Gemm B → K; MatMul B [K, N] → K); in every run of 4 consecutive input channels the 2 of largest
  |w| stay (ties: the lower index). A layer whose input-channel count is not a multiple of 4 (an
  RGB stem, a depthwise conv) stays dense, as on hardware that runs 2:4.
- **unstructured**: in each weight, the ``round(ratio × size)`` smallest |w| become 0 (per layer,
  so no layer is emptied by another layer's scale).

Neither changes speed on a backend that does not run sparse kernels (ONNX Runtime's CPU kernels
are dense): the report says so rather than implying a gain.

Example::

    sparse, stats = sparsify(model, "2:4")
    stats.sparsity                     # ~0.5 of the weights it touched
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

__all__ = ["SparsityStats", "is_2_4", "sparsify", "sparsity_targets"]


@dataclass(frozen=True)
class SparsityStats:
    """What :func:`sparsify` did: ``layers`` sparsified (and ``skipped``, with why), ``zeros`` of
    ``weights`` in those layers, and the fraction of all ``params`` of the model now zero."""

    pattern: str
    layers: int
    skipped: tuple[tuple[str, str], ...]
    weights: int
    zeros: int
    params: int

    @property
    def sparsity(self) -> float:
        return self.zeros / self.weights if self.weights else 0.0

    def to_dict(self) -> dict[str, object]:
        return {"pattern": self.pattern, "layers": self.layers, "weights": self.weights, "zeros": self.zeros,
                "sparsity": round(self.sparsity, 4),
                "model_sparsity": round(self.zeros / self.params, 4) if self.params else 0.0,
                "skipped": [{"weight": w, "why": why} for w, why in self.skipped]}


def sparsity_targets(model: onnx.ModelProto) -> dict[str, int]:
    """Weight initializer name -> its input-channel axis, for every Conv/Gemm/MatMul constant weight."""
    inits = {t.name: t for t in model.graph.initializer}
    inputs = {i.name for i in model.graph.input}
    targets: dict[str, int] = {}
    for node in model.graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul") or len(node.input) < 2:
            continue
        name = node.input[1]
        if name not in inits or name in inputs:
            continue
        ndim = len(inits[name].dims)
        if node.op_type == "Conv" and ndim >= 3:
            targets[name] = 1
        elif node.op_type == "Gemm" and ndim == 2:
            trans_b = any(a.name == "transB" and a.i for a in node.attribute)
            targets[name] = 1 if trans_b else 0
        elif node.op_type == "MatMul" and ndim == 2:
            targets[name] = 0
    return targets


def _two_of_four(w: np.ndarray, axis: int) -> np.ndarray:
    moved = np.moveaxis(w, axis, -1)
    groups = moved.reshape(-1, 4)
    # The two largest |w| of each 4 stay; a stable sort keeps the lower index on ties.
    order = np.argsort(-np.abs(groups), axis=1, kind="stable")
    mask = np.zeros_like(groups, dtype=bool)
    np.put_along_axis(mask, order[:, :2], True, axis=1)
    return np.moveaxis(np.where(mask, groups, 0).reshape(moved.shape), -1, axis).astype(w.dtype)


def _unstructured(w: np.ndarray, ratio: float) -> np.ndarray:
    drop = int(round(ratio * w.size))
    if drop <= 0:
        return w
    flat = w.reshape(-1).copy()
    flat[np.argsort(np.abs(flat), kind="stable")[:drop]] = 0
    return flat.reshape(w.shape)


def is_2_4(w: np.ndarray, axis: int) -> bool:
    """Whether every run of 4 along ``axis`` holds at most 2 non-zeros."""
    if w.shape[axis] % 4:
        return False
    groups = np.moveaxis(w, axis, -1).reshape(-1, 4)
    return bool(((groups != 0).sum(axis=1) <= 2).all())


def sparsify(model: onnx.ModelProto, pattern: str, ratio: float = 0.5) -> tuple[onnx.ModelProto, SparsityStats]:
    """A copy of ``model`` with its weights made sparse: ``pattern`` "2:4" or "unstructured" (``ratio``
    of each weight zeroed). The graph structure and shapes are unchanged."""
    if pattern not in ("2:4", "unstructured"):
        raise ValueError(f"pattern must be '2:4' or 'unstructured', got {pattern!r}")
    from ..graph.analysis import count_params

    out = onnx.ModelProto()
    out.CopyFrom(model)
    inits = {t.name: t for t in out.graph.initializer}
    skipped: list[tuple[str, str]] = []
    layers = weights = zeros = 0
    for name, axis in sparsity_targets(out).items():
        t = inits[name]
        w = numpy_helper.to_array(t)
        if not np.issubdtype(w.dtype, np.floating):
            skipped.append((name, f"{w.dtype} weights (already quantized)"))
            continue
        if pattern == "2:4":
            if w.shape[axis] % 4:
                skipped.append((name, f"{w.shape[axis]} input channels, not a multiple of 4"))
                continue
            w = _two_of_four(w, axis)
        else:
            w = _unstructured(w, ratio)
        t.CopyFrom(numpy_helper.from_array(w, name))
        layers += 1
        weights += w.size
        zeros += int((w == 0).sum())
    return out, SparsityStats(pattern, layers, tuple(skipped), weights, zeros, count_params(out))
