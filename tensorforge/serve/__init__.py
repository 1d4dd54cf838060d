"""Serving: the dynamic batcher, and the KServe v2 inference server (HTTP + gRPC + Prometheus metrics).

>>> from tensorforge.serve import InferenceServer, ServerConfig            # doctest: +SKIP
>>> server = InferenceServer(["model.tfe"], config=ServerConfig(http_port=0)).start()   # doctest: +SKIP
>>> server.stop()                                                            # doctest: +SKIP

Names are resolved lazily: importing this package imports neither uvicorn nor grpc.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BatcherConfig": "tensorforge.serve.batching",
    "DynamicBatcher": "tensorforge.serve.batching",
    "BatchRecord": "tensorforge.serve.batching",
    "BatchCurve": "tensorforge.serve.batch_curve",
    "ModelConfig": "tensorforge.serve.config",
    "ServerConfig": "tensorforge.serve.config",
    "InferenceServer": "tensorforge.serve.server",
    "ModelRepository": "tensorforge.serve.repository",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tensorforge.serve' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
