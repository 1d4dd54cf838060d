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

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from tensorforge.errors import BackendUnavailable

__all__ = [
    "PowerReading",
    "PowerUnavailable",
    "PowerMeter",
    "RaplMeter",
    "NvmlMeter",
    "detect_power_meter",
]

DEFAULT_POWERCAP_ROOT = "/sys/class/powercap"


@dataclass(frozen=True)
class PowerReading:
    """Energy used between ``start()`` and ``stop()``; ``domains`` maps domain → joules."""

    source: str
    energy_j: float
    duration_s: float
    avg_power_w: float
    domains: dict[str, float]
    notes: tuple[str, ...] = ()  # caveats for the report (skipped zones, sampling method)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "energy_j": self.energy_j,
            "duration_s": self.duration_s,
            "avg_power_w": self.avg_power_w,
            "domains": dict(self.domains),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class PowerUnavailable:
    """Why no energy figure can be given on this machine (printed in place of watts)."""

    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"available": False, "reason": self.reason}


@runtime_checkable
class PowerMeter(Protocol):
    """Anything that measures the energy used between ``start()`` and ``stop()``."""

    name: str

    def start(self) -> None: ...

    def stop(self) -> PowerReading: ...


def _reading(source: str, domains: dict[str, float], duration_s: float, notes: list[str]) -> PowerReading:
    energy = float(sum(domains.values()))
    avg = energy / duration_s if duration_s > 0 else 0.0
    return PowerReading(source, energy, float(duration_s), avg, domains, tuple(notes))


# --------------------------------------------------------------------------- RAPL


@dataclass(frozen=True)
class _Zone:
    key: str  # domain name in the reading: "package-0", "dram", "dram-1", "psys"
    path: Path  # the zone's directory
    max_range_uj: int


def _read_int(path: Path) -> int:
    return int(path.read_text().strip())


def _missing_rapl_hint() -> str:
    # Cloud VMs almost never pass RAPL MSRs through; on bare metal the driver may be unloaded.
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    if " hypervisor" in line:
                        return "not exposed on this VM"
                    break
    except OSError:
        pass
    return "is the intel_rapl_msr kernel module loaded? try `sudo modprobe intel_rapl_msr`"


def _discover_rapl(root: Path) -> tuple[list[_Zone], list[str]] | str:
    """Find the package/DRAM zones under ``root``; return (zones, notes) or a reason string."""
    try:
        return _scan_rapl(root)
    except PermissionError as e:
        return (
            f"RAPL powercap tree {root} is not readable ({e.strerror}: {e.filename}) — "
            "run as root or make it readable"
        )


def _scan_rapl(root: Path) -> tuple[list[_Zone], list[str]] | str:
    if not root.is_dir():
        return f"no RAPL powercap zones under {root} ({_missing_rapl_hint()})"
    packages: list[tuple[str, int, Path]] = []  # (name, package index, dir)
    drams: list[tuple[int, Path]] = []
    psys: list[Path] = []
    notes: list[str] = []
    denied: list[str] = []
    seen_msr_names: set[str] = set()
    candidates: list[tuple[str, list[int], str, Path]] = []  # (prefix, indices, name, dir)
    for d in sorted(root.iterdir()):
        prefix, _, rest = d.name.partition(":")
        parts = rest.split(":")
        if "rapl" not in prefix or not rest or not all(i.isdigit() for i in parts):
            continue  # the control-type directory ("intel-rapl") or something else
        try:
            name = (d / "name").read_text().strip()
        except OSError as e:
            notes.append(f"skipped {d.name}: cannot read its name ({e.strerror or e})")
            continue
        candidates.append((prefix, [int(i) for i in parts], name, d))
        if not prefix.endswith("-mmio"):
            seen_msr_names.add(name)
    if not candidates:
        return f"no RAPL powercap zones under {root} ({_missing_rapl_hint()})"
    for prefix, idx, name, d in candidates:
        if prefix.endswith("-mmio") and name in seen_msr_names:
            continue  # the MMIO interface repeats an MSR counter on some client CPUs
        if name.startswith("package") and len(idx) == 1:
            packages.append((name, idx[0], d))
        elif name == "dram":
            drams.append((idx[0], d))
        elif name == "psys" and len(idx) == 1:
            psys.append(d)
        # core / uncore / others: already inside their package's energy
    chosen: list[tuple[str, Path]] = [(name, d) for name, _, d in packages]
    for pkg, d in drams:
        chosen.append(("dram" if len(drams) == 1 else f"dram-{pkg}", d))
    if not packages:
        chosen += [("psys" if len(psys) == 1 else f"psys-{i}", d) for i, d in enumerate(psys)]
    zones: list[_Zone] = []
    for key, d in chosen:
        try:
            _read_int(d / "energy_uj")
            max_range = _read_int(d / "max_energy_range_uj")
        except PermissionError:
            denied.append(f"{d.name}/energy_uj")
            continue
        except (OSError, ValueError) as e:
            notes.append(f"skipped {d.name} ({key}): unreadable counter ({e})")
            continue
        if any(z.key == key for z in zones):
            key = f"{key}@{d.name}"
        zones.append(_Zone(key, d, max_range))
    if denied:
        notes.append("skipped (permission denied): " + ", ".join(denied))
    if zones:
        return zones, notes
    if denied:
        return (
            f"RAPL energy counters under {root} are not readable (permission denied: "
            f"{', '.join(denied)}); since Linux 5.10 energy_uj is readable only by root — "
            f"run as root or `sudo chmod a+r {root}/*rapl*/energy_uj`"
        )
    why = "; ".join(notes) if notes else "no package, dram or psys zone"
    return f"no usable RAPL package/dram zones under {root}: {why}"


class RaplMeter:
    """CPU package + DRAM energy from Linux powercap ``energy_uj`` counters.

    ``clock`` (seconds, monotonic) is injectable so a recorded trace replays exactly.
    Construction raises :class:`BackendUnavailable` with the reason when no zone can be
    read; :meth:`probe` returns a :class:`PowerUnavailable` instead.
    """

    name = "rapl"

    def __init__(
        self, root: str | Path = DEFAULT_POWERCAP_ROOT, clock: Callable[[], float] = time.monotonic
    ) -> None:
        found = _discover_rapl(Path(root))
        if isinstance(found, str):
            raise BackendUnavailable(found)
        self._zones, self._notes = found
        self._clock = clock
        self._start: tuple[float, list[int]] | None = None
        self.source = "rapl:" + "+".join(z.key for z in self._zones)

    @property
    def domains(self) -> tuple[str, ...]:
        """The counted domains, in reading order (``"package-0"``, ``"dram"`` ...)."""
        return tuple(z.key for z in self._zones)

    @property
    def notes(self) -> tuple[str, ...]:
        """Zones skipped at discovery and why; copied into every reading."""
        return tuple(self._notes)

    @staticmethod
    def probe(
        root: str | Path = DEFAULT_POWERCAP_ROOT, clock: Callable[[], float] = time.monotonic
    ) -> RaplMeter | PowerUnavailable:
        try:
            return RaplMeter(root, clock)
        except BackendUnavailable as e:
            return PowerUnavailable(str(e))

    def _sample(self) -> tuple[float, list[int]]:
        try:
            values = [_read_int(z.path / "energy_uj") for z in self._zones]
        except OSError as e:
            raise BackendUnavailable(f"RAPL counter became unreadable during the run: {e}") from e
        return self._clock(), values

    def start(self) -> None:
        self._start = self._sample()

    def stop(self) -> PowerReading:
        if self._start is None:
            raise RuntimeError("RaplMeter.stop() called before start()")
        (t0, e0), (t1, e1) = self._start, self._sample()
        self._start = None
        domains: dict[str, float] = {}
        for zone, a, b in zip(self._zones, e0, e1):
            # One wrap at most: a counter that went down wrapped once past max_energy_range_uj.
            delta_uj = b - a if b >= a else b + zone.max_range_uj - a
            domains[zone.key] = delta_uj / 1e6
        return _reading(self.source, domains, t1 - t0, list(self._notes))


# --------------------------------------------------------------------------- NVML


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


# --------------------------------------------------------------------------- detection


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
