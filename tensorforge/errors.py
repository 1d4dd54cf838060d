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
    "VerificationError",
    "ResourceError",
]


class TensorForgeError(Exception):
    """Root of every error TensorForge raises deliberately."""


class ModelError(TensorForgeError):
    """A model cannot be read, is malformed, or uses something we cannot handle."""


class InputError(TensorForgeError, ValueError):
    """Inputs given to a session (names, ranks, shapes, dtypes, values) do not fit the engine."""


class EngineFileError(TensorForgeError):
    """An engine file is truncated, corrupted, of another format version, or not an engine."""


class BackendUnavailable(TensorForgeError):
    """The requested backend or device is not installed or not present on this machine."""


class BuildError(TensorForgeError):
    """A build step (graph pass, shape rewrite, export) failed."""


class VerificationError(BuildError):
    """The optimized model's outputs differ from the original beyond tolerance."""


class ResourceError(TensorForgeError):
    """A request would exceed this machine's resources (memory), refused up front."""
