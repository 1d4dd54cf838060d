"""Calibration data: a folder of images, ``.npy``/``.npz`` files, or a Python iterable → model feeds.

Images (``.png .jpg .jpeg .bmp .gif .tif .tiff .webp``, read with Pillow) go through the
declared :class:`Preprocess`: convert to the model's channel count (grey ``L`` or
``RGB``), resize, center-crop, scale, subtract mean / divide by std, then lay out as the
model's input (NCHW or NHWC). Arrays (``.npy``, ``.npz``, iterables) are taken as
already preprocessed: only ``layout`` (when the data's differs from the model's) and
``scale``/``mean``/``std`` (when declared) apply. An ``.npz`` holds one array per model
input by name (or a single array for a one-input model); other keys such as
``labels`` are ignored. Files are read with ``allow_pickle=False`` — never unpickled.

Every batch is checked against the model's inputs (names, rank, fixed dims, dtype) and
a mismatch raises :class:`CalibrationError` saying what was found, what the model
wants, and which preprocessing option fixes it.

:func:`iter_calibration_batches` streams the batches (bounded memory, however many samples);
:func:`load_calibration_data` keeps them all (what the accuracy guard's disjointness check needs).

Example::

    data = load_calibration_data("calib_images/", model_inputs,
                                 Preprocess(resize=256, center_crop=224, mean=(0.485, 0.456, 0.406),
                                            std=(0.229, 0.224, 0.225)), max_samples=256)
    data.batches[0]   # {"input": float32 (32, 3, 224, 224)}
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..core.specs import TensorSpec
from ..errors import CalibrationError
from ..models.accuracy_data import CalibrationData

__all__ = ["Preprocess", "CalibrationStream", "iter_calibration_batches", "load_calibration_data",
           "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class Preprocess:
    """Declared preprocessing. ``resize``: an int resizes the shorter side to it (keeping the
    aspect), ``(H, W)`` resizes exactly; ``None`` resizes images straight to the model's H×W
    when no crop is given. ``layout``: the *data's* layout for arrays ("NCHW"/"NHWC"; None =
    the model's); images are always laid out as the model wants."""

    resize: int | tuple[int, int] | None = None
    center_crop: int | tuple[int, int] | None = None
    scale: float | None = None           # images default to 1/255; arrays to no scaling
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    layout: str | None = None

    def __post_init__(self) -> None:
        if self.layout not in (None, "NCHW", "NHWC"):
            raise CalibrationError(f"layout must be 'NCHW' or 'NHWC', got {self.layout!r}")
        if self.std is not None and any(s == 0 for s in self.std):
            raise CalibrationError(f"std must not contain 0, got {self.std}")

    def to_dict(self) -> dict[str, Any]:
        return {"resize": self.resize, "center_crop": self.center_crop, "scale": self.scale,
                "mean": self.mean, "std": self.std, "layout": self.layout}


def _model_layout(spec: TensorSpec) -> str | None:
    """NCHW / NHWC for a rank-4 input with 1 or 3 channels, else None."""
    if len(spec.shape) != 4:
        return None
    if spec.shape[1] in (1, 3):
        return "NCHW"
    if spec.shape[3] in (1, 3):
        return "NHWC"
    return "NCHW"


def _hw_c(spec: TensorSpec) -> tuple[int | None, int | None, int]:
    layout = _model_layout(spec)
    if layout is None:
        raise CalibrationError(f"input {spec.name!r} has shape {spec.shape_str()}; images need a rank-4 image "
                               "input — pass arrays (.npy/.npz) instead")
    dims = spec.shape[2:4] if layout == "NCHW" else spec.shape[1:3]
    c = spec.shape[1] if layout == "NCHW" else spec.shape[3]
    h, w = (d if isinstance(d, int) else None for d in dims)
    return h, w, int(c) if isinstance(c, int) else 3


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _load_image(path: Path, spec: TensorSpec, pre: Preprocess) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - Pillow is present where images are used
        raise CalibrationError("reading calibration images needs Pillow: pip install pillow") from exc
    h, w, c = _hw_c(spec)
    try:
        with Image.open(path) as im:
            img = im.convert("L" if c == 1 else "RGB")
    except OSError as exc:
        raise CalibrationError(f"cannot read calibration image {str(path)!r}: {exc}") from exc
    if pre.resize is not None:
        if isinstance(pre.resize, int):
            s = pre.resize / min(img.size)
            size = (max(1, round(img.size[0] * s)), max(1, round(img.size[1] * s)))
            img = img.resize(size, Image.Resampling.BILINEAR)
        else:
            rh, rw = _pair(pre.resize)
            img = img.resize((rw, rh), Image.Resampling.BILINEAR)
    elif pre.center_crop is None and h is not None and w is not None:
        img = img.resize((w, h), Image.Resampling.BILINEAR)
    if pre.center_crop is not None:
        ch, cw = _pair(pre.center_crop)
        if ch > img.size[1] or cw > img.size[0]:
            raise CalibrationError(f"center_crop {ch}x{cw} is larger than image {path.name} after resizing "
                                   f"({img.size[1]}x{img.size[0]}); resize to at least the crop size first")
        left, top = (img.size[0] - cw) // 2, (img.size[1] - ch) // 2
        img = img.crop((left, top, left + cw, top + ch))
    arr = np.asarray(img, dtype=np.float32)
    arr = arr[:, :, None] if arr.ndim == 2 else arr
    arr = _normalize(arr * (pre.scale if pre.scale is not None else 1.0 / 255.0), pre, channel_axis=-1)
    return arr.transpose(2, 0, 1) if _model_layout(spec) == "NCHW" else arr


def _normalize(arr: np.ndarray, pre: Preprocess, channel_axis: int) -> np.ndarray:
    shape = [1] * arr.ndim
    shape[channel_axis] = -1
    if pre.mean is not None:
        arr = arr - np.asarray(pre.mean, np.float32).reshape(shape)
    if pre.std is not None:
        arr = arr / np.asarray(pre.std, np.float32).reshape(shape)
    return arr


class _Prepared(dict):  # type: ignore[type-arg]
    """A feed made from an image file: already preprocessed, so no scaling/normalizing again."""


def _as_feed(item: Any, specs: Sequence[TensorSpec], i: int) -> dict[str, Any]:
    names = [s.name for s in specs]
    if isinstance(item, Mapping):
        return dict(item)
    if isinstance(item, np.ndarray) or hasattr(item, "__array__"):
        if len(specs) != 1:
            raise CalibrationError(f"calibration item {i} is one array, but the model has {len(specs)} inputs "
                                   f"{names}; give dicts {{name: array}}")
        return {names[0]: np.asarray(item)}
    raise CalibrationError(f"calibration item {i} is a {type(item).__name__}; give NumPy arrays or dicts "
                           "{input name: array}")


def _fit(feed: dict[str, Any], specs: Sequence[TensorSpec], pre: Preprocess, where: str) -> dict[str, np.ndarray]:
    """Add a batch axis to single samples, apply layout/normalization, check against the specs (the
    inputs' presence was checked by :func:`_with_batch_axis`)."""
    out = {}
    for spec in specs:
        arr = np.asarray(feed[spec.name])
        if arr.ndim == len(spec.shape) - 1:
            arr = arr[None]
        if arr.ndim != len(spec.shape):
            raise CalibrationError(f"{where}: input {spec.name!r} has shape {arr.shape}; the model expects "
                                   f"{spec.shape_str()} (a batch of samples, or one sample without the batch axis)")
        layout = _model_layout(spec)
        if pre.layout and layout and pre.layout != layout:
            arr = arr.transpose(0, 3, 1, 2) if pre.layout == "NHWC" else arr.transpose(0, 2, 3, 1)
        want = np.dtype(spec.dtype)
        if want.kind == "f":
            if arr.dtype.kind not in "fiub":
                raise CalibrationError(f"{where}: input {spec.name!r} has dtype {arr.dtype}; the model expects {want}")
            arr = arr.astype(np.float32)
            if pre.scale is not None:
                arr = arr * pre.scale
            if pre.mean is not None or pre.std is not None:
                arr = _normalize(arr, pre, channel_axis=1 if layout == "NCHW" else -1)
            arr = arr.astype(want)
        elif arr.dtype != want:
            if arr.dtype.kind not in "iub" or want.kind not in "iub":
                raise CalibrationError(f"{where}: input {spec.name!r} has dtype {arr.dtype}; the model expects {want}")
            arr = arr.astype(want)
        for axis, (got, dim) in enumerate(zip(arr.shape, spec.shape)):
            if isinstance(dim, int) and got != dim:
                hint = " — declare resize/center_crop, or layout='NHWC' if the data is channels-last" \
                    if len(spec.shape) == 4 else ""
                raise CalibrationError(f"{where}: input {spec.name!r} has shape {arr.shape}; the model expects "
                                       f"{spec.shape_str()} (axis {axis} must be {dim}){hint}")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise CalibrationError(f"{where}: input {spec.name!r} holds NaN or Inf values")
        out[spec.name] = np.ascontiguousarray(arr)
    return out


def _read_npz(path: Path, specs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
    names = [s.name for s in specs]
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.files)
            data_keys = [k for k in keys if k not in ("labels", "label", "y", "targets")]
            if all(n in keys for n in names):          # only the arrays the model reads are loaded
                return {n: z[n] for n in names}
            if len(specs) == 1 and len(data_keys) == 1:
                return {names[0]: z[data_keys[0]]}
    except (OSError, ValueError) as exc:
        raise CalibrationError(f"cannot read {str(path)!r} as .npz without pickle: {exc}") from exc
    raise CalibrationError(f"{str(path)!r} holds arrays {sorted(keys)}; name them after the model's inputs "
                           f"{names} (extra keys such as 'labels' are ignored)")


def _read_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)     # rows are read as they are taken
    except (OSError, ValueError) as exc:
        raise CalibrationError(f"cannot read {str(path)!r} as .npy without pickle: {exc}") from exc


def _source_items(source: Any, specs: Sequence[TensorSpec], pre: Preprocess) -> tuple[Iterable[Any], str]:
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise CalibrationError(f"calibration data {str(path)!r} does not exist")
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES + (".npy", ".npz"))
            if not files:
                raise CalibrationError(f"no images ({' '.join(IMAGE_SUFFIXES)}) or .npy/.npz files in {str(path)!r}")
            return (_read_file(p, specs, pre) for p in files), f"folder {path} ({len(files)} files)"
        return iter([_read_file(path, specs, pre)]), f"file {path}"
    if isinstance(source, np.ndarray) or isinstance(source, Mapping):
        return iter([source]), "in-memory arrays"
    try:
        return iter(source), f"Python iterable ({type(source).__name__})"
    except TypeError:
        raise CalibrationError(f"calibration data must be a folder, a .npy/.npz file, an array or an iterable of "
                               f"arrays/dicts; got {type(source).__name__}") from None


def _read_file(path: Path, specs: Sequence[TensorSpec], pre: Preprocess) -> Any:
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _read_npz(path, specs)
    if suffix == ".npy":
        return _read_npy(path)
    if suffix in IMAGE_SUFFIXES:
        if len(specs) != 1:
            raise CalibrationError(f"images can feed a one-input model only; this one has {[s.name for s in specs]}")
        return _Prepared({specs[0].name: _load_image(path, specs[0], pre)})
    raise CalibrationError(f"unsupported calibration file {str(path)!r}; use images, .npy or .npz")


def _with_batch_axis(feed: dict[str, Any], specs: Sequence[TensorSpec], where: str) -> tuple[dict[str, Any], int]:
    """The item's arrays with a batch axis (a single sample gets one), and its row count; arrays stay
    as given (a memory-mapped ``.npy`` is not read here), so only the rows taken are ever converted."""
    names = [s.name for s in specs]
    missing, extra = [n for n in names if n not in feed], sorted(set(feed) - set(names))
    if missing:
        raise CalibrationError(f"{where}: missing model input(s) {missing}; the model's inputs are {names}"
                               + (f" (got {extra})" if extra else ""))
    arrays: dict[str, Any] = {}
    for spec in specs:
        arr = feed[spec.name] if isinstance(feed[spec.name], np.ndarray) else np.asarray(feed[spec.name])
        arrays[spec.name] = arr[None] if arr.ndim == len(spec.shape) - 1 else arr
    if any(a.ndim == 0 for a in arrays.values()):
        return arrays, -1                  # no batch axis at all
    rows = {k: int(a.shape[0]) for k, a in arrays.items()}
    if len(set(rows.values())) > 1:
        raise CalibrationError(f"{where}: inputs disagree on the batch size {rows}")
    return arrays, next(iter(rows.values()))


class CalibrationStream:
    """Checked feed dicts of ``batch_size`` samples each (the last may hold fewer), read one batch at a time.

    At most one batch, the rows carried over to the next, and the slice of the item being read are in
    memory at once, however many samples the source holds; ``.npy`` files are memory-mapped. Once the
    stream is exhausted, ``samples``, ``source`` and ``fingerprint`` (sha256 over the feeds' names,
    shapes, dtypes and bytes, computed as the rows go by) describe what was read. A stream is read once.

    Example::

        stream = iter_calibration_batches("calib.npy", model_inputs, batch_size=32, max_samples=100_000)
        for feeds in stream:
            session.run(feeds)
        stream.samples, stream.fingerprint
    """

    def __init__(self, source: Any, specs: Sequence[TensorSpec], preprocess: Preprocess = Preprocess(), *,
                 batch_size: int = 32, max_samples: int = 512) -> None:
        if batch_size < 1 or max_samples < 1:
            raise CalibrationError(f"batch_size and max_samples must be >= 1, got batch_size={batch_size}, "
                                   f"max_samples={max_samples}")
        self.specs = list(specs)
        self.preprocess, self.batch_size, self.max_samples = preprocess, batch_size, max_samples
        self._items, self.source = _source_items(source, self.specs, preprocess)
        self.samples = 0
        self._fingerprint: str | None = None
        self._started = False

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            raise CalibrationError("the calibration data's fingerprint is known once the stream has been read to "
                                   "its end")
        return self._fingerprint

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        if self._started:
            raise CalibrationError(f"this calibration stream over {self.source} was already read; make a new one "
                                   "with iter_calibration_batches to read the data again")
        self._started = True
        return self._batches()

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        names = [s.name for s in self.specs]
        hashes = {n: hashlib.sha256() for n in names}
        tails: dict[str, tuple[tuple[int, ...], str]] = {}      # per input: (shape past the batch axis, dtype)
        pending: dict[str, list[np.ndarray]] = {n: [] for n in names}
        held = 0
        for i, item in enumerate(self._items):
            if self.samples + held >= self.max_samples:
                break
            pre = Preprocess() if isinstance(item, _Prepared) else self.preprocess   # images: done on reading
            where = f"calibration item {i} from {self.source}"
            arrays, rows = _with_batch_axis(_as_feed(item, self.specs, i), self.specs, where)
            if rows < 0:
                _fit(arrays, self.specs, pre, where)        # says what is wrong with the rank
                raise CalibrationError(f"{where}: the inputs have no batch axis; calibration runs batches of samples")
            take = min(rows, self.max_samples - self.samples - held)
            for start in range(0, take, self.batch_size):
                stop = min(start + self.batch_size, take)
                feed = _fit({k: a[start:stop] for k, a in arrays.items()}, self.specs, pre, where)
                for k, v in feed.items():
                    tail = (tuple(v.shape[1:]), str(v.dtype))
                    if tails.setdefault(k, tail) != tail:
                        raise CalibrationError(f"{where}: input {k!r} has samples of shape {v.shape[1:]}, earlier "
                                               f"items had {tails[k][0]}; give samples of one shape (pad them)")
                    hashes[k].update(v.data)
                    pending[k].append(v)
                held += next(iter(feed.values())).shape[0]
                while held >= self.batch_size:
                    yield self._emit(pending, self.batch_size)
                    held -= self.batch_size
        if held:
            yield self._emit(pending, held)
        if self.samples == 0:
            raise CalibrationError(f"no calibration samples in {self.source}")
        digest = hashlib.sha256()
        for k in sorted(names):
            digest.update(k.encode() + str((self.samples,) + tails[k][0]).encode() + tails[k][1].encode())
            digest.update(hashes[k].digest())
        self._fingerprint = digest.hexdigest()

    def _emit(self, pending: dict[str, list[np.ndarray]], rows: int) -> dict[str, np.ndarray]:
        batch = {}
        for k, parts in pending.items():
            whole = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
            batch[k] = np.ascontiguousarray(whole[:rows])
            pending[k] = [whole[rows:]] if whole.shape[0] > rows else []
        self.samples += rows
        return batch


def iter_calibration_batches(source: Any, specs: Sequence[TensorSpec], preprocess: Preprocess = Preprocess(), *,
                             batch_size: int = 32, max_samples: int = 512) -> CalibrationStream:
    """Stream calibration data as checked, batched feed dicts (see :class:`CalibrationStream`)."""
    return CalibrationStream(source, specs, preprocess, batch_size=batch_size, max_samples=max_samples)


def load_calibration_data(source: Any, specs: Sequence[TensorSpec], preprocess: Preprocess = Preprocess(), *,
                          batch_size: int = 32, max_samples: int = 512) -> CalibrationData:
    """Read, preprocess, check and batch calibration data for a model with inputs ``specs``, all in memory
    (the same batches and fingerprint as :func:`iter_calibration_batches`, which keeps none)."""
    stream = iter_calibration_batches(source, specs, preprocess, batch_size=batch_size, max_samples=max_samples)
    batches = list(stream)
    notes = [f"{stream.samples} calibration samples from {stream.source}"]
    return CalibrationData(batches=batches, samples=stream.samples, source=stream.source,
                           fingerprint=stream.fingerprint, notes=notes)
