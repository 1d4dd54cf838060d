"""The backend protocol: the one small interface every execution library sits behind.

A backend turns ONNX bytes into a :class:`BackendSession` for a device; a session runs a
dict of NumPy arrays and returns the outputs as a list in the model's output order.
Nothing past this protocol sees a backend's own types (no ``onnxruntime`` objects leak),
so ``engine``, ``bench`` and ``serve`` work unchanged on any backend. What a backend
computes natively — precisions, integer QDQ, kernels per op — is asked through
:meth:`Backend.capabilities`, never read from the library by another layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class SessionConfig:
    """Settings a backend applies when it creates a session.

    ``threads`` is the intra-op thread count (None = the backend's default, usually the
    number of physical cores). ``options`` holds backend-specific settings by name; a
    backend ignores none silently — it rejects names it does not know.
    """

    device: str = "cpu"
    threads: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "threads": self.threads, "options": dict(self.options)}


@dataclass(frozen=True)
class Capabilities:
    """What a backend computes natively on one device of this host.

    ``precisions``: the compute precisions it has fast kernels for (a subset of
    :data:`tensorforge.core.precisions.PRECISIONS`); one missing here is emulated — cast to FP32
    and back — and runs slower than FP32.
    ``qdq_int8``: it runs a QDQ INT8 graph on integer kernels (fusing the Q/DQ pairs) rather than
    executing the Q/DQ nodes in float. ``kernels``: per tensor precision, the ``(domain, op_type)``
    pairs it has a kernel for; a precision absent from the map means "any op" (a backend that
    compiles the whole graph itself, like OpenVINO, has no per-op registry to read).
    """

    precisions: frozenset[str]
    qdq_int8: bool
    kernels: Mapping[str, frozenset[tuple[str, str]]] = field(default_factory=dict)

    def has_kernel(self, op_type: str, precision: str, domain: str = "") -> bool:
        """True unless the backend's registry is known for ``precision`` and lacks this op."""
        known = self.kernels.get(precision)
        return known is None or (domain, op_type) in known


@runtime_checkable
class BackendSession(Protocol):
    """A compiled model, ready to run. Reused across calls; not re-created per call."""

    @property
    def input_names(self) -> Sequence[str]: ...

    @property
    def output_names(self) -> Sequence[str]: ...

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run once; ``feeds`` are already validated by the caller."""
        ...


class Backend(Protocol):
    """One execution library. Implementations live in ``backends/<name>.py``."""

    name: str

    def availability(self) -> str | None:
        """None when usable here, else the reason it is not (shown by ``tensorforge backends``)."""
        ...

    def devices(self) -> list[str]:
        """Devices this backend can run on here, e.g. ``["cpu"]`` or ``["cpu", "cuda"]``."""
        ...

    def versions(self) -> dict[str, str]:
        """Library versions recorded in an engine manifest."""
        ...

    def capabilities(self, device: str = "cpu") -> Capabilities:
        """What this backend computes natively on ``device`` here (precisions, QDQ INT8, kernels)."""
        ...

    def create_session(self, model_bytes: bytes, config: SessionConfig) -> BackendSession:
        """Compile ONNX bytes into a session for ``config.device``."""
        ...
