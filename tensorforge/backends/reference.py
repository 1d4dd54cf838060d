"""The references numerical checks compare against.

* :func:`reference_session` — the session every check computes its reference outputs on (the
  build's verification and FP16/BF16 check, the tuner, the accuracy guard, sensitivity and tables):
  ONNX Runtime on the CPU with its graph optimizations off, so it computes the model as written
  (the FP32 original, or for the tuner the engine's own payload), none of ONNX Runtime's own
  fusions or layout changes in between.
* :class:`ReferenceBackend` (registered as ``"reference"``) on ``onnx.reference`` — slow, exact,
  and needs no native runtime; it lets upper layers be tested without ONNX Runtime.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import onnx

from ..errors import BackendUnavailable, ModelError
from .base import BackendSession, Capabilities, SessionConfig
from .registry import get_backend

__all__ = ["REFERENCE", "ReferenceBackend", "ReferenceSession", "reference_session"]

REFERENCE = "onnxruntime, graph optimizations off"


def reference_session(model_bytes: bytes, threads: int | None = None) -> BackendSession:
    """The reference session on ``model_bytes`` (see the module doc); ``threads`` for its intra-op pool.
    Raises the backend's typed errors (ModelError when ONNX Runtime cannot load the model)."""
    config = SessionConfig("cpu", threads, {"graph_optimization_level": "disable"})
    return get_backend("onnxruntime").create_session(model_bytes, config)


class ReferenceSession:
    def __init__(self, model: onnx.ModelProto) -> None:
        from onnx.reference import ReferenceEvaluator

        self._evaluator: Any = ReferenceEvaluator(model)
        self.input_names = [i.name for i in model.graph.input]
        self.output_names = [o.name for o in model.graph.output]

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(x) for x in self._evaluator.run(None, dict(feeds))]


class ReferenceBackend:
    name = "reference"

    def availability(self) -> str | None:
        return None

    def devices(self) -> list[str]:
        return ["cpu"]

    def versions(self) -> dict[str, str]:
        return {"onnx": onnx.__version__}

    def capabilities(self, device: str = "cpu") -> Capabilities:
        """Every ONNX op in every type its schema allows, in NumPy: exact, but nothing is fast."""
        return Capabilities(precisions=frozenset({"fp32"}), qdq_int8=False)

    def create_session(self, model_bytes: bytes, config: SessionConfig) -> BackendSession:
        if config.device != "cpu":
            raise BackendUnavailable(f"the reference backend runs on cpu only, not {config.device!r}")
        if config.options:
            raise BackendUnavailable(f"the reference backend takes no options, got {sorted(config.options)}")
        try:
            model = onnx.load_from_string(model_bytes)
            return ReferenceSession(model)
        except Exception as exc:
            raise ModelError(f"onnx.reference could not load the model: {exc}") from exc
