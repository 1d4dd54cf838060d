"""The exception hierarchy.

Every error TensorForge raises on purpose derives from :class:`TensorForgeError`, so a
caller can catch one type; the subclasses say *what* went wrong, and each message says
what the user can do about it. ``assert`` is kept for internal invariants only.
"""

from __future__ import annotations

__all__ = [
    "TensorForgeError",
    "ModelError",
    "InputError",
    "EngineFileError",
    "BackendUnavailable",
    "BuildError",
    "TuningError",
    "VerificationError",
    "ResourceError",
]


class TensorForgeError(Exception):
    """Root of every error TensorForge raises deliberately."""


class ModelError(TensorForgeError):
    """A model cannot be read, is malformed, or uses something we cannot handle."""


class InputError(TensorForgeError, ValueError):
    """What the caller gave does not fit: a session's inputs (names, ranks, shapes, dtypes, values),
    data files, arguments — and, through :class:`ConfigError`, settings."""


class EngineFileError(TensorForgeError):
    """An engine file is truncated, corrupted, of another format version, or not an engine."""


class BackendUnavailable(TensorForgeError):
    """The requested backend or device is not installed or not present on this machine."""


class BuildError(TensorForgeError):
    """A build step (graph pass, shape rewrite, export) failed."""


class TuningError(BuildError):
    """The tuner found no candidate that runs the model correctly on the asked device."""


class VerificationError(BuildError):
    """The optimized model's outputs differ from the original beyond tolerance."""


class ResourceError(TensorForgeError):
    """A request would exceed this machine's resources (memory), refused up front."""


# -- serving (issue 5) ---------------------------------------------------------------------------
class ServingError(TensorForgeError):
    """A request to the inference server (or to its dynamic batcher) could not be served."""


class QueueFullError(ServingError):
    """The model's request queue is full; the request was refused at once — retry a little later."""


class RequestTimeout(ServingError, TimeoutError):
    """A request's timeout passed before a model instance started computing it; it was dropped."""


class ModelNotFound(ServingError):
    """No model (or no such version of it) is loaded under that name."""


class ModelUnavailable(ServingError):
    """The model is being unloaded or the server is shutting down; it accepts no new requests."""


class DeadlineUnmeetable(QueueFullError):
    """A queued request's deadline (its timeout, or the model's SLO) can no longer be met even if it ran
    now, alone; it was shed before any compute. Overload, like a full queue (503 / UNAVAILABLE): retry
    later, relax the deadline, or add instances."""


__all__ += ["ServingError", "QueueFullError", "RequestTimeout", "ModelNotFound", "ModelUnavailable",
            "DeadlineUnmeetable"]


# -- settings --------------------------------------------------------------------------------------
class ConfigError(InputError):
    """A setting is invalid: an options object (BuildOptions, BenchOptions, LoadtestOptions …) or a
    server, batcher or model-repository setting. Raised when the options are made, before any work.

    A kind of :class:`InputError` (so also a ``ValueError``): a bad setting is bad input from the
    caller, and code that already catches ``InputError`` for it keeps working. Messages name the
    Python parameter (``target_qps=``); the command line rewrites those names to its flags."""


__all__ += ["ConfigError"]


# -- reduced precision (issue 3) -----------------------------------------------------------------
class CalibrationError(TensorForgeError, ValueError):
    """Calibration data (or a calibration cache) does not fit the model, or cannot be read."""


__all__ += ["CalibrationError"]
