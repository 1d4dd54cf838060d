"""NVIDIA GPU energy through NVML (nvidia-ml-py, imported lazily)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from tensorforge.errors import BackendUnavailable

from ._types import PowerReading, PowerUnavailable, _reading


def _import_pynvml() -> Any:
    try:
        import pynvml
    except ImportError as e:
        raise BackendUnavailable(
            "no NVIDIA GPU power sensor (nvidia-ml-py not installed: pip install nvidia-ml-py)"
        ) from e
    return pynvml


class NvmlMeter:
    """Energy of one NVIDIA GPU through NVML.

    ``nvml`` is the ``pynvml`` module or anything with the same functions (tests inject a
    recorded replay). Construction raises :class:`BackendUnavailable` with the reason;
    :meth:`probe` returns :class:`PowerUnavailable` instead. ``method`` says which path
    is used: ``"total_energy"`` or ``"power_sampling"``.
    """

    name = "nvml"

    def __init__(
        self,
        device_index: int = 0,
        nvml: Any = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        interval_s: float = 0.05,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0 seconds, got {interval_s}")
        self._nvml = _import_pynvml() if nvml is None else nvml
        error = getattr(self._nvml, "NVMLError", Exception)
        try:
            self._nvml.nvmlInit()
        except error as e:
            raise BackendUnavailable(
                f"no NVIDIA GPU power sensor (NVML could not start: {e}; is the NVIDIA driver installed?)"
            ) from e
        try:
            count = int(self._nvml.nvmlDeviceGetCount())
            if not 0 <= device_index < count:
                raise BackendUnavailable(
                    f"no NVIDIA GPU {device_index}: NVML sees {count} GPU(s); pick cuda:0..cuda:{count - 1}"
                    if count else "no NVIDIA GPU visible to NVML"
                )
            self._handle = self._nvml.nvmlDeviceGetHandleByIndex(device_index)
            gpu = self._nvml.nvmlDeviceGetName(self._handle)
        except error as e:
            self._shutdown_quietly(error)
            raise BackendUnavailable(f"NVML cannot open GPU {device_index}: {e}") from e
        except BackendUnavailable:
            self._shutdown_quietly(error)
            raise
        gpu = gpu.decode() if isinstance(gpu, bytes) else str(gpu)
        self.source = f"nvml:GPU{device_index} {gpu}"
        self._key = f"gpu{device_index}"
        self._error = error
        self._clock = clock
        self._interval_s = interval_s
        try:  # Volta+ keeps a millijoule counter; older GPUs raise NotSupported
            self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
            self.method = "total_energy"
        except error:
            self.method = "power_sampling"
        self._started = False
        self._t0 = 0.0
        self._e0_mj = 0
        # Sampling state, touched by the sampler thread under self._lock.
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: tuple[float, float] = (0.0, 0.0)  # (t_s, power_w)
        self._first_t = 0.0
        self._energy_j = 0.0
        self._samples = 0
        self._failure: Exception | None = None

    @staticmethod
    def probe(device_index: int = 0, *, nvml: Any = None) -> NvmlMeter | PowerUnavailable:
        try:
            return NvmlMeter(device_index, nvml)
        except BackendUnavailable as e:
            return PowerUnavailable(str(e))

    def _shutdown_quietly(self, error: type[BaseException]) -> None:
        try:
            self._nvml.nvmlShutdown()
        except error:
            pass

    def close(self) -> None:
        """Release NVML (``nvmlInit`` is reference-counted); the meter is unusable after."""
        self._shutdown_quietly(self._error)

    def _sample_power(self) -> None:
        watts = self._nvml.nvmlDeviceGetPowerUsage(self._handle) / 1000.0
        t = self._clock()
        with self._lock:
            t_prev, w_prev = self._last
            if self._samples:
                self._energy_j += (t - t_prev) * (w_prev + watts) / 2.0  # trapezoid
            else:
                self._first_t = t
            self._last = (t, watts)
            self._samples += 1

    def _run_sampler(self) -> None:
        while not self._stop_event.wait(self._interval_s):
            try:
                self._sample_power()
            except Exception as e:  # reported by stop(), not lost in a thread
                self._failure = e
                return

    def start(self) -> None:
        if self.method == "total_energy":
            self._e0_mj = int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
            self._t0 = self._clock()
        else:
            self._energy_j, self._samples, self._failure = 0.0, 0, None
            self._stop_event.clear()
            self._sample_power()
            self._thread = threading.Thread(target=self._run_sampler, name="nvml-power", daemon=True)
            self._thread.start()
        self._started = True

    def stop(self) -> PowerReading:
        if not self._started:
            raise RuntimeError("NvmlMeter.stop() called before start()")
        self._started = False
        if self.method == "total_energy":
            e1 = int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
            duration = self._clock() - self._t0
            return _reading(self.source, {self._key: (e1 - self._e0_mj) / 1000.0}, duration, [])
        self._stop_event.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._failure is not None:
            raise BackendUnavailable(f"NVML power sampling failed during the run: {self._failure}")
        self._sample_power()
        duration = self._last[0] - self._first_t
        note = (
            f"GPU energy integrated from {self._samples} power samples at ~{1 / self._interval_s:.0f} Hz "
            "(no total-energy counter on this GPU)"
        )
        return _reading(self.source, {self._key: self._energy_j}, duration, [note])
