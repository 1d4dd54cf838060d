"""Energy meters for ``tensorforge bench``: Linux RAPL (CPU) and NVIDIA NVML (GPU).

A meter is started before the timed loop and stopped after it; ``stop()`` returns a
:class:`PowerReading` with joules, seconds and average watts. When no sensor exists,
:func:`detect_power_meter` returns a :class:`PowerUnavailable` whose ``reason`` the
report prints instead of a number — it never raises for a missing sensor and never
invents a value.

* :class:`RaplMeter` reads the ``energy_uj`` counters of the Linux powercap interface
  (``/sys/class/powercap/intel-rapl:*``, also used for AMD CPUs). It counts package and
  DRAM zones only: ``core``/``uncore`` are parts of their package and would be counted
  twice. ``psys`` (whole platform) is used only when there is no package zone, for the
  same reason. Counters wrap at ``max_energy_range_uj``; one wrap per interval is
  corrected, so an interval must be shorter than a full counter range (~262 kJ, about
  20 minutes at 200 W per socket) — longer runs are under-counted.
* :class:`NvmlMeter` uses ``nvmlDeviceGetTotalEnergyConsumption`` (mJ, Volta and newer)
  when the GPU supports it, else samples ``nvmlDeviceGetPowerUsage`` (mW) at ~20 Hz in a
  daemon thread and integrates with trapezoids. ``pynvml`` (package ``nvidia-ml-py``) is
  imported only when an NVML meter is made.

Example::

    meter = detect_power_meter("cpu")
    if isinstance(meter, PowerUnavailable):
        print("power: n/a —", meter.reason)
    else:
        meter.start(); run_benchmark(); print(meter.stop().avg_power_w, "W")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._types import DEFAULT_POWERCAP_ROOT, PowerMeter, PowerReading, PowerUnavailable
from .nvml import NvmlMeter
from .rapl import RaplMeter

__all__ = [
    "PowerReading",
    "PowerUnavailable",
    "PowerMeter",
    "RaplMeter",
    "NvmlMeter",
    "detect_power_meter",
]


def _gpu_index(device: str) -> int | None:
    kind, _, idx = device.partition(":")
    if kind not in ("cuda", "gpu"):
        return None
    return int(idx) if idx.isdigit() else 0


def detect_power_meter(
    device: str = "cpu", *, powercap_root: str | Path = DEFAULT_POWERCAP_ROOT, nvml: Any = None
) -> PowerMeter | PowerUnavailable:
    """Return the meter for ``device`` or a :class:`PowerUnavailable` saying why not.

    ``"cpu"`` → RAPL; ``"cuda"``/``"cuda:N"`` (or ``"gpu[:N]"``) → NVML on GPU N;
    ``"auto"`` → NVML GPU 0 if present, else RAPL, and when neither is there the reason
    names both. Any other device gets a ``PowerUnavailable``. Never raises for a missing
    sensor.
    """
    dev = device.strip().lower()
    if dev == "cpu":
        return RaplMeter.probe(powercap_root)
    gpu = _gpu_index(dev)
    if gpu is not None:
        return NvmlMeter.probe(gpu, nvml=nvml)
    if dev == "auto":
        found_gpu = NvmlMeter.probe(0, nvml=nvml)
        if not isinstance(found_gpu, PowerUnavailable):
            return found_gpu
        found_cpu = RaplMeter.probe(powercap_root)
        if not isinstance(found_cpu, PowerUnavailable):
            return found_cpu
        return PowerUnavailable(f"{found_cpu.reason} and {found_gpu.reason}")
    return PowerUnavailable(
        f"no power meter for device {device!r}: TensorForge reads RAPL for 'cpu' and NVML for 'cuda[:N]'"
    )
