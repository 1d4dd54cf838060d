"""Backends for the tuner's tests: real ONNX Runtime sessions, slowed, wrong, broken or absent.

A module of its own so the tuner's worker processes can import them by "module:Class" path.
"""

from __future__ import annotations

import os
import time

from tensorforge.backends.base import SessionConfig
from tensorforge.backends.onnxruntime import OnnxRuntimeBackend


class _Wrapped:
    def __init__(self, inner, sleep_s: float = 0.0, shift: float = 0.0) -> None:
        self.inner, self.sleep_s, self.shift = inner, sleep_s, shift
        self.input_names, self.output_names = inner.input_names, inner.output_names

    def run(self, feeds):
        if self.sleep_s:
            time.sleep(self.sleep_s)
        return [o + self.shift for o in self.inner.run(feeds)]


class SlowedBackend(OnnxRuntimeBackend):
    name = "slowed"

    def create_session(self, model_bytes: bytes, config: SessionConfig):
        return _Wrapped(super().create_session(model_bytes, config), sleep_s=0.004)


class WrongBackend(OnnxRuntimeBackend):
    name = "wrong"

    def create_session(self, model_bytes: bytes, config: SessionConfig):
        return _Wrapped(super().create_session(model_bytes, config), shift=0.5)


class BrokenBackend(OnnxRuntimeBackend):
    name = "broken"

    def create_session(self, model_bytes: bytes, config: SessionConfig):
        raise RuntimeError("this build cannot take the model")


class AbsentBackend(OnnxRuntimeBackend):
    name = "absent"

    def availability(self):
        return "the absent SDK is not installed"


class CrashingBackend(OnnxRuntimeBackend):
    """Kills its process while the session is made, as a library crashing in native code would."""

    name = "crashing"

    def create_session(self, model_bytes: bytes, config: SessionConfig):
        os._exit(3)
