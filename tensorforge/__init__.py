"""TensorForge: turn a trained network into a fast, verified inference engine; run it, measure it.

>>> import tensorforge as tf                                     # doctest: +SKIP
>>> engine, report = tf.build("mobilenet_v2", "mnv2.tfe")        # zoo name or ONNX path
>>> session = tf.load("mnv2.tfe")
>>> outputs = session.run(images)                                 # dict of NumPy arrays
>>> result = tf.bench("mnv2.tfe", tf.BenchOptions(batches=(1, 8)))

Every command of the ``tensorforge`` tool has a function here (``COMMANDS`` maps one to the
other): ``build``, ``run``, ``bench`` (and ``bench_precisions``), ``accuracy``, ``calibrate``,
``sensitivity``, ``profile``, ``info``, ``zoo``, ``backends``, ``serve``, ``loadtest``, with
their options and result classes. Every error class of :mod:`tensorforge.errors` is here too;
a bad setting in an options object raises :class:`ConfigError` when the object is made.

Names are imported lazily so ``import tensorforge`` stays fast and never fails for a
missing optional extra.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"

_ERRORS = ("TensorForgeError", "ModelError", "InputError", "ConfigError", "EngineFileError", "BackendUnavailable",
           "BuildError", "TuningError", "VerificationError", "ResourceError", "ServingError", "QueueFullError",
           "RequestTimeout", "DeadlineUnmeetable", "ModelNotFound", "ModelUnavailable", "CalibrationError")

# public name -> "module" (same attribute name there) or "module:attribute"
_EXPORTS = {
    # engine files and sessions
    "load": "tensorforge.engine.runtime",
    "Engine": "tensorforge.engine.runtime",
    "Session": "tensorforge.engine.runtime",
    "build": "tensorforge.engine.build",
    "BuildOptions": "tensorforge.engine.build",
    "BuildReport": "tensorforge.engine.build",
    "run": "tensorforge.api.engine",
    "info": "tensorforge.api.engine",
    "EngineInfo": "tensorforge.api.engine",
    # measuring
    "bench": "tensorforge.bench.runner",
    "BenchOptions": "tensorforge.bench.runner",
    "BenchResult": "tensorforge.bench.runner",
    "bench_precisions": "tensorforge.bench.precisions",
    "accuracy": "tensorforge.api.accuracy",
    "AccuracyTable": "tensorforge.bench.accuracy",
    "profile": "tensorforge.bench.profile:profile_engine",
    "ProfileResult": "tensorforge.bench.profile",
    # reduced precision
    "calibrate": "tensorforge.api.calibrate",
    "CalibrateResult": "tensorforge.api.calibrate",
    "sensitivity": "tensorforge.api.sensitivity",
    "SensitivityResult": "tensorforge.precision.sensitivity",
    # models and backends
    "zoo": "tensorforge.models.zoo",
    "backends": "tensorforge.backends.registry:describe_backends",
    # serving and load testing
    "serve": "tensorforge.api.serve",
    "InferenceServer": "tensorforge.serve.server",
    "ServerConfig": "tensorforge.serve.config",
    "ModelConfig": "tensorforge.serve.config",
    "BatcherConfig": "tensorforge.serve.batching",
    "loadtest": "tensorforge.api.loadtest",
    "LoadtestOptions": "tensorforge.loadgen.plan",
    "LoadtestReport": "tensorforge.loadgen.plan",
    "ScenarioSettings": "tensorforge.loadgen.scenarios",
    "tune_serve": "tensorforge.api.tune_serve",
    "offline": "tensorforge.api.offline:offline_files",
    "write_report": "tensorforge.report.html",
    **{name: "tensorforge.errors" for name in _ERRORS},
}

# command of the ``tensorforge`` tool -> the public name that does the same from Python
COMMANDS = {"build": "build", "run": "run", "bench": "bench", "accuracy": "accuracy", "calibrate": "calibrate",
            "sensitivity": "sensitivity", "profile": "profile", "info": "info", "zoo": "zoo",
            "backends": "backends", "serve": "serve", "loadtest": "loadtest", "tune-serve": "tune_serve",
            "offline": "offline", "report": "write_report"}

__all__ = sorted(_EXPORTS) + ["__version__"]

# Public functions named like a subpackage (tensorforge.bench, .serve, .backends): the import
# system binds the subpackage to that name whenever it is imported, so the name stays the
# subpackage — made callable, calling the function — and both `tensorforge.serve(...)` and
# `import tensorforge.serve.server` keep working in any order.
_CALLABLE_PACKAGES = {name for name in _EXPORTS if name in ("bench", "serve", "backends")}


def _resolve(name: str) -> Any:
    module, _, attribute = _EXPORTS[name].partition(":")
    mod = importlib.import_module(module)
    return mod if name == "zoo" else getattr(mod, attribute or name)


class _CallablePackage(types.ModuleType):
    """A subpackage that, called, runs the public function of the same name (see _CALLABLE_PACKAGES)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _resolve(self.__name__.rpartition(".")[2])(*args, **kwargs)


class _Package(types.ModuleType):
    """The ``tensorforge`` module itself: makes a subpackage callable when the import system binds it here."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _CALLABLE_PACKAGES and type(value) is types.ModuleType:
            value.__class__ = _CallablePackage
        super().__setattr__(name, value)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tensorforge' has no attribute {name!r}")
    if name in _CALLABLE_PACKAGES:
        return importlib.import_module(f"{__name__}.{name}")    # bound (and made callable) by _Package
    value = _resolve(name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


sys.modules[__name__].__class__ = _Package
