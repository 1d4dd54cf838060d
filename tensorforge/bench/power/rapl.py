"""Linux powercap/RAPL energy counters (CPU package + DRAM)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tensorforge.errors import BackendUnavailable

from ._types import DEFAULT_POWERCAP_ROOT, PowerReading, PowerUnavailable, _reading


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
