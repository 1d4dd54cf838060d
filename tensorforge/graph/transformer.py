"""Which graph pipeline suits a model on a backend: transformers get the transformer fusions.

A graph *looks like a transformer* when a ``Softmax`` feeds a ``MatMul`` (attention probabilities
times values). Such graphs get ``transformer-ort`` (ONNX Runtime contrib ops: Attention,
SkipLayerNormalization, ...) on the onnxruntime backend, which alone runs those ops, and
``transformer-portable`` (standard ONNX ops only) on every other backend; other graphs keep
``default``.

Example::

    pipeline_for(model, "openvino")       # 'transformer-portable' for MiniLM, 'default' for ResNet
"""

from __future__ import annotations

import onnx

from ..errors import ConfigError
from .pipelines import PIPELINES

__all__ = ["looks_like_transformer", "pipeline_for", "pipelines_for_backend"]

# the pipelines whose output each backend can run (default: portable only)
_BACKEND_PIPELINES: dict[str, tuple[str, ...]] = {
    "onnxruntime": ("transformer-ort", "transformer-portable"),
}


def looks_like_transformer(model: onnx.ModelProto) -> bool:
    """Whether some ``Softmax`` output is read by a ``MatMul`` in the main graph."""
    softmax = {o for n in model.graph.node if n.op_type == "Softmax" and n.domain in ("", "ai.onnx") for o in n.output}
    return any(n.op_type == "MatMul" and n.input and n.input[0] in softmax for n in model.graph.node)


def pipelines_for_backend(backend: str) -> tuple[str, ...]:
    """The transformer pipelines whose output ``backend`` can run, its best bet first."""
    if not backend:
        raise ConfigError("backend must be a backend name such as 'onnxruntime' or 'openvino'")
    return _BACKEND_PIPELINES.get(backend, ("transformer-portable",))


def pipeline_for(model: onnx.ModelProto, backend: str) -> str:
    """The pipeline to build ``model`` with for ``backend`` (see the module doc)."""
    if not looks_like_transformer(model):
        return "default"
    choice = pipelines_for_backend(backend)[0]
    assert choice in PIPELINES
    return choice
