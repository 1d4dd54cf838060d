"""What ``bench`` takes and gives: :class:`BenchOptions`, :class:`BenchRow`, :class:`BenchResult`, and the
parsers of the CLI's comma-separated lists. The measuring itself is in :mod:`tensorforge.bench.runner`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..core.precisions import PRECISIONS
from ..core.streams import threads_per_worker
from ..core.timing import Measurement
from ..errors import ConfigError, InputError

__all__ = ["BenchOptions", "BenchResult", "BenchRow", "WHITEPAPER_BATCHES", "batches_from_text",
           "lengths_from_text", "streams_from_text"]

WHITEPAPER_BATCHES = (1, 2, 4, 8, 64, 128)

@dataclass(frozen=True)
class BenchOptions:
    batches: tuple[int, ...] = WHITEPAPER_BATCHES
    duration_s: float = 2.0
    warmup_s: float = 0.5
    min_iterations: int = 10
    threads: int | None = None
    baseline: bool = False
    rounds: int = 6
    seed: int = 0
    noise_threshold_pct: float = 10.0
    precision: str = "fp32"          # built at this precision when the target is an ONNX file or zoo name
    calibration: Any = None          # INT8 calibration data (see BuildOptions); None = random (speed only)
    streams: tuple[int, ...] = (1,)  # concurrent streams on one session; one row per batch and stream count
    shapes: Any = None               # shape profile(s) for the build (BuildOptions.shapes): run at each "opt"
    iterations: int | None = None    # a fixed count of timed calls per row instead of duration_s
    keep_times: bool = False         # keep each request's latency (ms) in BenchRow.times_ms
    split_threads: bool = True       # streams N > 1 get cores // N threads (False: `threads` at every level)
    backend: str | None = None       # build for this backend (None: the build's default)
    input_data: str | None = None    # a .npy/.npz file or an image folder instead of random inputs
    seq_lengths: tuple[int, ...] = ()  # sequence models: one row per batch × length, each inside the profile

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"bench precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r} "
                              "('best' needs held-out data: build it with precision=\"best\" first, then bench the "
                              "engine)")
        if not self.batches or any(b < 1 for b in self.batches):
            raise ConfigError(f"batch sizes must be positive integers, got {list(self.batches)}")
        if self.duration_s <= 0 or self.warmup_s < 0:
            raise ConfigError(f"`duration_s` must be > 0 and `warmup_s` >= 0, got {self.duration_s} and "
                              f"{self.warmup_s}")
        if self.rounds < 1 or self.min_iterations < 1:
            raise ConfigError(f"`rounds` and `min_iterations` must be >= 1, got {self.rounds} and "
                              f"{self.min_iterations}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"`threads` must be >= 1 (or None for the backend's default), got {self.threads}")
        # a lone int or a list is kind, and clear enough: store a tuple either way
        object.__setattr__(self, "streams", (self.streams,) if isinstance(self.streams, int) else tuple(self.streams))
        if not self.streams or any(not isinstance(n, int) or n < 1 for n in self.streams):
            raise ConfigError(f"streams must be positive integers like (1, 2, 4), got {self.streams!r}")
        if self.iterations is not None and (isinstance(self.iterations, bool) or self.iterations < 1):
            raise ConfigError(f"`iterations` must be a positive count of timed calls, got {self.iterations!r}")
        if self.backend is not None:
            from ..backends.registry import canonical_name

            object.__setattr__(self, "backend", canonical_name(self.backend))   # "did you mean" on a typo
        if self.input_data is not None:
            object.__setattr__(self, "input_data", str(self.input_data))
        lengths = (self.seq_lengths,) if isinstance(self.seq_lengths, int) else tuple(self.seq_lengths)
        object.__setattr__(self, "seq_lengths", lengths)
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in lengths):
            raise ConfigError(f"`seq_lengths` must be positive integers like (16, 64, 128), got {self.seq_lengths!r}")
        if lengths and self.input_data is not None:
            raise ConfigError("`seq_lengths` sweeps random token ids; real inputs (`input_data`) have their own "
                              "length: give one or the other")

    def threads_for(self, streams: int) -> int | None:
        """Intra-op threads of the session that runs ``streams`` streams (None: the backend's default)."""
        if self.threads is not None or streams == 1 or not self.split_threads:
            return self.threads
        return threads_per_worker(streams)

    def round_counts(self) -> tuple[int, ...] | None:
        """With ``iterations``: the timed calls of each round (they add up to ``iterations``; no more rounds
        than calls); None when the rows are timed by ``duration_s``."""
        if self.iterations is None:
            return None
        rounds = min(self.rounds, self.iterations)
        return tuple(self.iterations // rounds + (r < self.iterations % rounds) for r in range(rounds))


@dataclass(frozen=True)
class BenchRow:
    batch: int
    engine: Measurement
    peak_rss_bytes: int
    estimated_bytes: int
    power: dict[str, Any]
    power_w: float | None
    perf_per_watt: float | None
    energy_j_per_sample: float | None
    baseline: Measurement | None = None
    speedup_vs_baseline: float | None = None     # median of per-round paired ratios
    speedup_noise_pct: float | None = None       # half-range of those ratios, %
    verdict_vs_baseline: str | None = None      # faster / same / slower, judged against the run's noise
    streams: int = 1                             # concurrent requests on one session (weights shared)
    threads: int | None = None                   # that session's intra-op threads (None: backend default)
    times_ms: list[float] | None = None          # with keep_times: each timed request's latency, in order
    seq_len: int | None = None                   # with seq_lengths: the sequence length of this row
    tokens_per_s: float | None = None            # with seq_lengths: samples/s × seq_len (every position real)


@dataclass(frozen=True)
class BenchResult:
    model: dict[str, Any]
    options: dict[str, Any]
    host: dict[str, Any]
    libraries: dict[str, str]
    power_source: str
    rows: list[BenchRow]
    warnings: list[str] = field(default_factory=list)
    schema: str = "tensorforge.bench/1"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for row in d["rows"]:          # optional fields only when used (keep_times, seq_lengths): schema as it was
            for key in ("times_ms", "seq_len", "tokens_per_s"):
                if row.get(key) is None:
                    row.pop(key, None)
        return d


def batches_from_text(text: str) -> tuple[int, ...]:
    """Parse ``"1,2,8"`` (the CLI's --batch) with a clear error."""
    return _positive_ints(text, "--batch", "1,8,64")


def lengths_from_text(text: str) -> tuple[int, ...]:
    """Parse ``"16,64,128"`` (the CLI's --lengths) with a clear error."""
    return _positive_ints(text, "--lengths", "16,64,128")


def streams_from_text(text: str, flag: str = "--streams") -> tuple[int, ...]:
    """Parse ``"1,2,4"`` (the CLI's --streams or --concurrency) with a clear error."""
    return _positive_ints(text, flag, "2 or 1,2,4")


def _positive_ints(text: str, flag: str, example: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise InputError(f"{flag} takes comma-separated integers like {example}; got {text!r}") from exc
    if not values or any(v < 1 for v in values):
        raise InputError(f"{flag} takes positive integers like {example}; got {text!r}")
    return values
