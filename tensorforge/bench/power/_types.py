"""Plain data of the power meters: a reading, the reason there is none, and the meter protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

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
