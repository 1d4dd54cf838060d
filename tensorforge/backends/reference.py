"""Reference backend on ``onnx.reference`` — slow, exact, and needs no native runtime.

It is the ground truth for numerical checks and lets upper layers be tested without
ONNX Runtime.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import onnx

from ..errors import BackendUnavailable, ModelError
from .base import BackendSession, SessionConfig


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
