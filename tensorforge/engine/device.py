"""``--device cpu|cuda|auto``: the one switch between CPU and GPU for build, bench, run and serve.

``auto`` is ``cuda`` when any usable backend can run on a CUDA GPU here (an onnxruntime-gpu
build, a CUDA build of torch), else ``cpu``. :func:`backend_for_device` picks the backend
for a device when the user named none: the default (ONNX Runtime) when it has the device,
else the first backend that has it.
"""

from __future__ import annotations

from ..backends.registry import DEFAULT_BACKEND, backend_names, canonical_name, get_backend
from ..errors import BackendUnavailable, InputError

DEVICES = ("cpu", "cuda", "auto")


def _devices_of(name: str) -> list[str]:
    try:
        return get_backend(name).devices()
    except BackendUnavailable:
        return []


def resolve_device(device: str) -> str:
    """``cpu`` or ``cuda``; ``auto`` becomes ``cuda`` when some backend here can use a GPU."""
    if device not in DEVICES:
        raise InputError(f"unknown device {device!r}; use one of {', '.join(DEVICES)}")
    if device != "auto":
        return device
    return "cuda" if any("cuda" in _devices_of(n) for n in backend_names() if n != "reference") else "cpu"


def backend_for_device(device: str, requested: str | None = None) -> str:
    """The backend to use on ``device``: ``requested`` when given (checked), else the default when it has
    the device, else the first backend that has it; BackendUnavailable names what is missing."""
    if requested is not None:
        requested = canonical_name(requested)   # any case; an unknown name says "did you mean"
        devices = get_backend(requested).devices()   # not usable here: BackendUnavailable says why and how
        if device not in devices:
            raise BackendUnavailable(f"backend {requested!r} cannot use device {device!r} here "
                                     f"(it has {', '.join(devices) or 'none'})")
        return requested
    if device in _devices_of(DEFAULT_BACKEND):
        return DEFAULT_BACKEND
    for name in backend_names():
        if name != "reference" and device in _devices_of(name):
            return name
    raise BackendUnavailable(f"no backend can use device {device!r} here: install onnxruntime-gpu or a CUDA "
                             "build of torch, and check `tensorforge backends`")
