"""The settings of one model's dynamic batcher (:class:`BatcherConfig`), checked when made.

Kept apart from :mod:`~tensorforge.serve.batching` (which re-exports it) so the settings
and their rules read on one page; the keys are also a model's ``config.json`` keys.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

from ..errors import ConfigError
from .limits import MAX_TIMEOUT_US


@dataclass(frozen=True)
class BatcherConfig:
    """Batching and queueing settings of one model (version)."""

    max_batch_size: int = 8
    max_queue_delay_ms: float = 10.0
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_size: int = 256            # queued requests; beyond → QueueFullError at submit
    instances: int = 1
    default_timeout_ms: float | None = None
    priority_levels: int = 1
    idle_dispatch: bool = True           # a lone request on an idle batcher goes at once (scheduling.py, rule 2)
    slo_ms: float | None = None          # latency objective: the deadline of a request without its own timeout
                                         # (the smaller of it and default_timeout_ms); planned (scheduling.py 4-5)

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ConfigError(f"`max_batch_size` must be >= 1, got {self.max_batch_size}")
        if self.max_queue_delay_ms < 0:
            raise ConfigError(f"`max_queue_delay_ms` must be >= 0 (0 = send at once), got {self.max_queue_delay_ms}")
        object.__setattr__(self, "preferred_batch_sizes", tuple(int(b) for b in self.preferred_batch_sizes))
        bad = [b for b in self.preferred_batch_sizes if not 1 <= b <= self.max_batch_size]
        if bad:
            raise ConfigError(f"`preferred_batch_sizes` {bad} are outside 1..`max_batch_size` ({self.max_batch_size})")
        if self.max_queue_size < 1:
            raise ConfigError(f"`max_queue_size` must be >= 1, got {self.max_queue_size}")
        if self.instances < 1:
            raise ConfigError(f"`instances` must be >= 1, got {self.instances}")
        if self.default_timeout_ms is not None and not 0 < self.default_timeout_ms <= MAX_TIMEOUT_US / 1000:
            raise ConfigError(f"`default_timeout_ms` must be in (0, {MAX_TIMEOUT_US // 1000}] or None (no timeout), "
                              f"got {self.default_timeout_ms}")
        if self.slo_ms is not None and not 0 < self.slo_ms <= MAX_TIMEOUT_US / 1000:
            raise ConfigError(f"`slo_ms` must be in (0, {MAX_TIMEOUT_US // 1000}] or None (no objective), "
                              f"got {self.slo_ms}")
        if self.priority_levels < 1:
            raise ConfigError(f"`priority_levels` must be >= 1, got {self.priority_levels}")

    def default_deadline_ms(self) -> float | None:
        """The deadline of a request that brings no timeout: the smaller of slo_ms and default_timeout_ms."""
        set_ = [t for t in (self.slo_ms, self.default_timeout_ms) if t is not None]
        return min(set_) if set_ else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["preferred_batch_sizes"] = list(self.preferred_batch_sizes)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BatcherConfig":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown batcher setting(s) {unknown}; known: {sorted(known)}")
        values = dict(data)
        if "preferred_batch_sizes" in values:
            values["preferred_batch_sizes"] = tuple(values["preferred_batch_sizes"])
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(f"bad batcher settings {dict(data)}: {exc}") from exc
