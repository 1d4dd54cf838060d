"""The histogram file: every activation's calibration histogram, saved once, reused by every method.

Ranges cost one pass of the model over the calibration data; the histograms that pass fills
hold everything the four methods (minmax, entropy, percentile, mse) need. Saving them lets a
rebuild, another method, another signedness or the precision search derive ranges without
running the model again — and exactly: :meth:`HistogramSet.ranges` on a loaded file gives
bit-identical floats to the same call on the histograms the pass filled.

The file is an ``.npz`` (a zip of ``.npy`` members, uncompressed) read without pickle:

* ``header`` — uint8, UTF-8 JSON: ``format`` (``tensorforge-calibration-histograms``),
  ``version``, ``model_sha256`` (the FP32 graph the ranges are for), ``num_bins``,
  ``tensors`` (names, in row order), ``samples``, ``batch_size``, ``data_source``,
  ``data_fingerprint``, ``created``, and ``payload_sha256``: sha256 over the canonical
  JSON of the other header fields, then the bytes of ``counts`` and ``stats``;
* ``counts`` — int64 ``(tensors, num_bins)``, the bin counts of |x|;
* ``stats`` — float64 ``(tensors, 3)``: bin width, min, max of each tensor.

Loading checks, before allocating anything, that each member is stored (not compressed),
that the header is small, and that the arrays' declared shapes and dtypes are exactly
``(len(tensors), num_bins)`` / ``(len(tensors), 3)``; then the checksum, then the model.
Every refusal is a :class:`CalibrationError` naming the file and the fix.

Example::

    hs.save("model.hist.npz")
    hs = HistogramSet.load("model.hist.npz", model_sha256=model_key(model))
    hs.ranges("entropy"), hs.ranges("percentile", percentile=99.9)
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Mapping

import numpy as np

from ..errors import CalibrationError
from .collect import ranges_from_histograms
from .histogram import AbsHistogram

__all__ = ["HISTOGRAM_FORMAT", "HISTOGRAM_VERSION", "HistogramSet", "save_histograms", "load_histograms"]

HISTOGRAM_FORMAT = "tensorforge-calibration-histograms"
HISTOGRAM_VERSION = 1
MAX_HEADER_BYTES = 16 << 20       # the tensor names of the largest models fit with room to spare
MAX_BINS = 1 << 20
_FOREIGN = "give the path of a histogram file written by HistogramSet.save (or calibration_histograms)"
_MEMBERS = {"header": ("|u1", 1), "counts": ("<i8", 2), "stats": ("<f8", 2)}   # dtype, rank


@dataclass(frozen=True)
class HistogramSet:
    """Per-tensor histograms of one calibration pass over one model, and what they were made from.

    ``histograms`` maps each float activation to its :class:`AbsHistogram` (treat them as
    read-only: the set stands for that pass). ``model_sha256`` is the FP32 graph's
    :func:`~.histpass.model_key`."""

    model_sha256: str
    num_bins: int
    samples: int
    data_source: str
    data_fingerprint: str
    histograms: Mapping[str, AbsHistogram]
    batch_size: int | None = None
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    def ranges(self, method: str, *, percentile: float = 99.99,
               unsigned: bool = True) -> dict[str, tuple[float, float]]:
        """``{tensor: (low, high)}`` as ``method`` picks them (see :mod:`.methods`); ``unsigned`` for
        uint8 activations. The same as ``ranges_from_histograms`` on the pass's histograms."""
        return ranges_from_histograms(dict(self.histograms), method, percentile=percentile, unsigned=unsigned)

    def summary(self) -> dict[str, Any]:
        """What the set holds, without the counts (for reports)."""
        return {"model_sha256": self.model_sha256, "num_bins": self.num_bins, "tensors": len(self.histograms),
                "samples": self.samples, "batch_size": self.batch_size, "data_source": self.data_source,
                "data_fingerprint": self.data_fingerprint, "created": self.created}

    def save(self, path: str | os.PathLike[str]) -> Path:
        return save_histograms(path, self)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, model_sha256: str | None = None) -> "HistogramSet":
        return load_histograms(path, model_sha256=model_sha256)


def _canonical(header: Mapping[str, Any]) -> bytes:
    return json.dumps({k: v for k, v in header.items() if k != "payload_sha256"}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _payload_sha256(header: Mapping[str, Any], counts: np.ndarray, stats: np.ndarray) -> str:
    h = hashlib.sha256(_canonical(header))
    h.update(np.ascontiguousarray(counts, dtype="<i8").data)
    h.update(np.ascontiguousarray(stats, dtype="<f8").data)
    return h.hexdigest()


def save_histograms(path: str | os.PathLike[str], hs: HistogramSet) -> Path:
    """Write ``hs`` to ``path`` atomically (a temporary file in the same folder, then a rename)."""
    names = list(hs.histograms)
    counts = np.zeros((len(names), hs.num_bins), dtype="<i8")
    stats = np.zeros((len(names), 3), dtype="<f8")
    for i, name in enumerate(names):
        h = hs.histograms[name]
        if h.num_bins != hs.num_bins:
            raise CalibrationError(f"tensor {name!r} has a {h.num_bins}-bin histogram in a {hs.num_bins}-bin set")
        counts[i], stats[i] = h.counts, (h.width, h.min, h.max)
    header: dict[str, Any] = {"format": HISTOGRAM_FORMAT, "version": HISTOGRAM_VERSION,
                              "model_sha256": hs.model_sha256, "num_bins": hs.num_bins, "tensors": names,
                              "samples": hs.samples, "batch_size": hs.batch_size, "data_source": hs.data_source,
                              "data_fingerprint": hs.data_fingerprint, "created": hs.created}
    header["payload_sha256"] = _payload_sha256(header, counts, stats)
    raw = np.frombuffer(json.dumps(header, ensure_ascii=True).encode("ascii"), dtype=np.uint8)
    p = Path(path)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:            # a file object: np.savez would append .npz to a path
            np.savez(fh, header=raw, counts=counts, stats=stats)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)
    return p


def _refuse(p: Path, what: str, fix: str = "delete it to recalibrate, or give another histogram file path") -> \
        CalibrationError:
    return CalibrationError(f"histogram file {str(p)!r} {what}; {fix}")


def _member_header(zf: zipfile.ZipFile, p: Path, key: str, disk_size: int) -> tuple[int, ...]:
    """The shape an ``.npy`` member declares, checked against its dtype, rank and stored size (the member
    is stored uncompressed, so its size is bounded by the file's: nothing read later is larger)."""
    try:
        info = zf.getinfo(key + ".npy")
    except KeyError:
        raise _refuse(p, f"has no {key!r} array: it is not a TensorForge histogram file", _FOREIGN) from None
    if info.compress_type != zipfile.ZIP_STORED:      # a compressed member could declare any size
        raise _refuse(p, f"holds its {key!r} array compressed (zip method {info.compress_type}); TensorForge "
                         "stores them uncompressed, so it was not written by TensorForge", _FOREIGN)
    if info.file_size > disk_size:
        raise _refuse(p, f"declares a {info.file_size}-byte {key!r} array in a {disk_size}-byte file: it is damaged")
    with zf.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        if version not in ((1, 0), (2, 0)):
            raise _refuse(p, f"holds a {key!r} array in .npy format {version}; TensorForge writes 1.0")
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(fh)
        data_bytes = info.file_size - fh.tell()
    want_dtype, rank = _MEMBERS[key]
    if fortran or dtype.str != want_dtype or len(shape) != rank:
        raise _refuse(p, f"holds a {key!r} array of dtype {dtype.str}, shape {shape}; expected {want_dtype} of rank "
                         f"{rank}")
    if data_bytes != math.prod(shape) * dtype.itemsize:
        raise _refuse(p, f"declares a {key!r} array of shape {shape} but holds {data_bytes} bytes of data: it is "
                         "truncated or damaged")
    return tuple(shape)


def _read_member(zf: zipfile.ZipFile, key: str) -> np.ndarray:
    with zf.open(key + ".npy") as fh:
        fh_io: IO[bytes] = fh
        return np.lib.format.read_array(fh_io, allow_pickle=False)


def _parse_header(p: Path, raw: np.ndarray) -> dict[str, Any]:
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _refuse(p, f"has an unreadable header ({exc})") from exc
    if not isinstance(header, dict) or header.get("format") != HISTOGRAM_FORMAT:
        got = header.get("format") if isinstance(header, dict) else None
        raise _refuse(p, f"is not a TensorForge histogram file (format {got!r})", _FOREIGN)
    if header.get("version") != HISTOGRAM_VERSION:
        raise _refuse(p, f"has version {header.get('version')!r}; this TensorForge reads version {HISTOGRAM_VERSION}")
    checks = {"model_sha256": str, "num_bins": int, "tensors": list, "samples": int, "data_source": str,
              "data_fingerprint": str, "created": str, "payload_sha256": str}
    bad = [k for k, t in checks.items() if not isinstance(header.get(k), t) or isinstance(header.get(k), bool)]
    if bad or not all(isinstance(t, str) for t in header["tensors"]) or not (
            isinstance(header.get("batch_size"), int) or header.get("batch_size") is None):
        raise _refuse(p, f"has a malformed header (fields {bad or ['tensors/batch_size']})")
    if len(set(header["tensors"])) != len(header["tensors"]):
        raise _refuse(p, "names a tensor twice in its header")
    bins = header["num_bins"]
    if not 2 <= bins <= MAX_BINS or bins % 2:
        raise _refuse(p, f"claims num_bins={bins}; histograms have an even number of bins in [2, {MAX_BINS}]")
    return header


def load_histograms(path: str | os.PathLike[str], *, model_sha256: str | None = None) -> HistogramSet:
    """Read a histogram file; with ``model_sha256``, refuse one made for another model."""
    p = Path(path)
    try:
        disk_size = p.stat().st_size
        with zipfile.ZipFile(p) as zf:
            n_header = _member_header(zf, p, "header", disk_size)[0]
            if n_header > MAX_HEADER_BYTES:
                raise _refuse(p, f"declares a {n_header}-byte header (at most {MAX_HEADER_BYTES})")
            header = _parse_header(p, _read_member(zf, "header"))
            tensors, bins = len(header["tensors"]), header["num_bins"]
            for key, want in (("counts", (tensors, bins)), ("stats", (tensors, 3))):
                shape = _member_header(zf, p, key, disk_size)
                if shape != want:
                    raise _refuse(p, f"holds a {key!r} array of shape {shape}; its header ({tensors} tensors, "
                                     f"{bins} bins) needs {want}")
            counts, stats = _read_member(zf, "counts"), _read_member(zf, "stats")
    except CalibrationError:
        raise
    except FileNotFoundError:
        raise CalibrationError(f"histogram file {str(p)!r} does not exist; write it with one calibration pass "
                               "(calibration_histograms with CalibrationSpec(data=..., histograms=path))") from None
    except (OSError, zipfile.BadZipFile, ValueError, EOFError) as exc:    # truncated, damaged, not a zip
        raise _refuse(p, f"is not a readable histogram file ({type(exc).__name__}: {exc})") from exc
    if _payload_sha256(header, counts, stats) != header["payload_sha256"]:
        raise _refuse(p, "fails its checksum (payload_sha256): it is damaged")
    if (counts < 0).any() or np.isnan(stats).any() or (stats[:, 0] < 0).any():
        raise _refuse(p, "holds negative counts, NaN statistics or a negative bin width")
    if model_sha256 is not None and header["model_sha256"] != model_sha256:
        raise _refuse(p, f"was computed for another model (sha256 {header['model_sha256'][:12]}…, this model is "
                         f"{model_sha256[:12]}…); its histograms do not apply",
                      "delete it or give another histogram file path")
    hists = {name: AbsHistogram.from_state(bins, counts[i], stats[i, 0], stats[i, 1], stats[i, 2])
             for i, name in enumerate(header["tensors"])}
    return HistogramSet(model_sha256=header["model_sha256"], num_bins=bins, samples=header["samples"],
                        data_source=header["data_source"], data_fingerprint=header["data_fingerprint"],
                        histograms=hists, batch_size=header.get("batch_size"), created=header["created"])
