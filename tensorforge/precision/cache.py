"""The calibration cache: tensor ranges saved as JSON so a rebuild can skip calibration.

Like TensorRT's calibration cache, but plain JSON that records what it was computed
from: the FP32 model's sha256, the method (and percentile), signed/unsigned activations,
the number of calibration samples, the data's fingerprint and source, and one
``[low, high]`` per tensor. Loading refuses a cache made for another model (the hash
differs) with a :class:`CalibrationError` that says so — ranges of one network mean
nothing for another.

Example::

    save_cache("model.calib.json", CalibrationCache(model_sha256=h, method="entropy", ...))
    cache = load_cache("model.calib.json", model_sha256=h)     # raises for another model
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CalibrationError

__all__ = ["CACHE_FORMAT", "CalibrationCache", "save_cache", "load_cache"]

CACHE_FORMAT = "tensorforge-calibration-cache"
CACHE_VERSION = 1


@dataclass(frozen=True)
class CalibrationCache:
    model_sha256: str
    method: str
    percentile: float
    activations: str                     # "uint8" / "int8": the entropy/mse levels depend on it
    samples: int
    data_fingerprint: str
    data_source: str
    ranges: dict[str, tuple[float, float]]
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    def matches(self, method: str, percentile: float, activations: str) -> bool:
        same_pct = method != "percentile" or math.isclose(self.percentile, percentile)
        return self.method == method and same_pct and self.activations == activations

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ranges"] = {k: [float(lo), float(hi)] for k, (lo, hi) in self.ranges.items()}
        return {"format": CACHE_FORMAT, "version": CACHE_VERSION, **d}


def save_cache(path: str | os.PathLike[str], cache: CalibrationCache) -> Path:
    """Write atomically (temp file + rename)."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(cache.to_dict(), indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, p)
    return p


def load_cache(path: str | os.PathLike[str], model_sha256: str | None = None) -> CalibrationCache:
    """Read a cache; with ``model_sha256``, refuse one computed for another model."""
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CalibrationError(f"calibration cache {str(p)!r} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CalibrationError(f"calibration cache {str(p)!r} is not readable JSON ({exc}); delete it to "
                               "recalibrate") from exc
    if not isinstance(raw, dict) or raw.get("format") != CACHE_FORMAT:
        raise CalibrationError(f"{str(p)!r} is not a TensorForge calibration cache (format "
                               f"{raw.get('format') if isinstance(raw, dict) else None!r})")
    if raw.get("version") != CACHE_VERSION:
        raise CalibrationError(f"calibration cache {str(p)!r} has version {raw.get('version')!r}; this TensorForge "
                               f"reads version {CACHE_VERSION} — delete it to recalibrate")
    try:
        ranges = {str(k): (float(v[0]), float(v[1])) for k, v in raw["ranges"].items()}
        cache = CalibrationCache(model_sha256=str(raw["model_sha256"]), method=str(raw["method"]),
                                 percentile=float(raw["percentile"]), activations=str(raw["activations"]),
                                 samples=int(raw["samples"]), data_fingerprint=str(raw["data_fingerprint"]),
                                 data_source=str(raw["data_source"]), ranges=ranges, created=str(raw["created"]))
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise CalibrationError(f"calibration cache {str(p)!r} is malformed ({type(exc).__name__}: {exc}); delete it "
                               "to recalibrate") from exc
    if model_sha256 is not None and cache.model_sha256 != model_sha256:
        raise CalibrationError(
            f"calibration cache {str(p)!r} was computed for another model (sha256 {cache.model_sha256[:12]}…, this "
            f"model is {model_sha256[:12]}…); its ranges do not apply — delete it or give another cache path")
    return cache
