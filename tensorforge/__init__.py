"""TensorForge: turn a trained network into a fast, verified inference engine; run it, measure it.

>>> import tensorforge as tf                                     # doctest: +SKIP
>>> engine, report = tf.build("mobilenet_v2", "mnv2.tfe")        # zoo name or ONNX path
>>> session = tf.load("mnv2.tfe")
>>> outputs = session.run(images)                                 # dict of NumPy arrays
>>> result = tf.bench("mnv2.tfe", tf.BenchOptions(batches=(1, 8)))

Names are imported lazily so ``import tensorforge`` stays fast and never fails for a
missing optional extra.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load": "tensorforge.engine.runtime",
    "Engine": "tensorforge.engine.runtime",
    "Session": "tensorforge.engine.runtime",
    "build": "tensorforge.engine.build",
    "BuildOptions": "tensorforge.engine.build",
    "BuildReport": "tensorforge.engine.build",
    "bench": "tensorforge.bench.runner",
    "BenchOptions": "tensorforge.bench.runner",
    "BenchResult": "tensorforge.bench.runner",
    "zoo": "tensorforge.models.zoo",
    "TensorForgeError": "tensorforge.errors",
    "ModelError": "tensorforge.errors",
    "InputError": "tensorforge.errors",
    "EngineFileError": "tensorforge.errors",
    "BackendUnavailable": "tensorforge.errors",
    "BuildError": "tensorforge.errors",
    "VerificationError": "tensorforge.errors",
    "ResourceError": "tensorforge.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tensorforge' has no attribute {name!r}")
    mod = importlib.import_module(module)
    value = mod if name == "zoo" else getattr(mod, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
