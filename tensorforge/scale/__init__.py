"""Scale-out on Ray: the same Engine and batcher on a Ray cluster (one machine or many).

* :func:`serve_deployment` — a Ray Serve application: each replica loads the engine file (sent
  as bytes: data, never pickled code), runs TensorForge's own DynamicBatcher over its instances,
  and answers the KServe v2 HTTP API through the server's own ASGI app (``serve/http.py``), so
  tritonclient works unchanged against the Ray Serve proxy.
* :func:`offline` — batch inference over a dataset with Ray Data: ``map_batches`` through a pool
  of actors, each loading the engine once.

Ray is an optional extra (``pip install 'tensorforge[scale]'``); importing this package does not
import Ray, and every entry point raises :class:`~tensorforge.errors.BackendUnavailable` naming
the extra when it is missing.

>>> from tensorforge.scale import serve_deployment, offline                  # doctest: +SKIP
>>> from ray import serve                                                   # doctest: +SKIP
>>> serve.run(serve_deployment("mlp.tfe", num_replicas=2), route_prefix="/")    # doctest: +SKIP
>>> result = offline("mlp.tfe", x, batch_size=64, concurrency=2)             # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "serve_deployment": "tensorforge.scale.online",
    "deploy": "tensorforge.scale.online",
    "ReplicaSettings": "tensorforge.scale.online",
    "offline": "tensorforge.scale.offline",
    "OfflineResult": "tensorforge.scale.offline",
    "EngineBlob": "tensorforge.scale.blob",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tensorforge.scale' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
