"""Real input data for ``bench``: a ``.npy`` file, an ``.npz`` file or a folder of images → feeds that cycle.

Random inputs say nothing of data-dependent speed (early exits, sparse activations, NaN
slow paths, token lengths); trtexec's ``--loadInputs`` and perf_analyzer's ``--input-data``
exist for that. The rules:

* ``.npy`` — a one-input model only: rows along axis 0 (or a single sample without it);
* ``.npz`` — one array per model input, named after it (extra keys such as ``labels`` are
  ignored; a one-input model also takes a file holding a single array of any name);
* a folder — images (``.png .jpg …``, read with Pillow), converted to the model's channel
  count, resized to its H×W, scaled to [0, 1] and laid out NCHW or NHWC as the model's rank-4
  input is (the reader of :mod:`tensorforge.precision.calibration`, with no mean/std).

Every array is checked against the model's inputs with :func:`~tensorforge.core.feeds.check_feeds`
(names, dtype, rank, fixed dims, no NaN/Inf); a mismatch raises
:class:`~tensorforge.errors.InputError` naming the file, the array, its shape and the shape the
model expects. A timed call of batch ``b`` takes the next ``b`` rows, wrapping around at the
end, so the samples cycle through the file's rows.

Example::

    samples = read_inputs("digits.npz", engine.inputs, model="mnist_cnn")
    feeds = samples.feeds(batch=8)          # a few feed dicts of 8 rows each, taken in turn
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..core.feeds import check_feeds
from ..core.specs import TensorSpec
from ..errors import CalibrationError, InputError

__all__ = ["InputSamples", "read_inputs", "INPUT_SUFFIXES"]

INPUT_SUFFIXES = (".npy", ".npz")
MAX_IMAGES = 1024                  # images read from a folder (all rows of a .npy/.npz are kept)
FEED_BYTES_BUDGET = 256 * 2**20    # distinct feed dicts prepared per batch size stop at about this many bytes
MAX_FEEDS = 64


@dataclass(frozen=True)
class InputSamples:
    """The rows of the input data, checked: ``arrays`` by input name, all with ``rows`` rows on axis 0."""

    arrays: dict[str, np.ndarray]
    rows: int
    source: str

    def feeds(self, batch: int) -> list[dict[str, np.ndarray]]:
        """Feed dicts of ``batch`` rows each, rows taken in order and wrapping around, so that calling
        them in turn cycles through every row (as many dicts as that takes, up to :data:`MAX_FEEDS` and
        about :data:`FEED_BYTES_BUDGET` bytes)."""
        if batch < 1:
            raise InputError(f"batch must be >= 1, got {batch}")
        row_bytes = sum(a[:1].nbytes for a in self.arrays.values()) or 1
        count = max(1, min(-(-self.rows // batch), MAX_FEEDS, FEED_BYTES_BUDGET // (row_bytes * batch)))
        out = []
        for i in range(count):
            idx = (np.arange(batch) + i * batch) % self.rows
            out.append({k: np.ascontiguousarray(a[idx]) for k, a in self.arrays.items()})
        return out

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "rows": self.rows,
                "arrays": {k: {"shape": list(a.shape), "dtype": str(a.dtype)} for k, a in self.arrays.items()}}


def read_inputs(path: str | os.PathLike[str], specs: Sequence[TensorSpec], *, model: str | None = None,
                max_images: int = MAX_IMAGES) -> InputSamples:
    """Read ``path`` (see the module doc) and check it against ``specs``; raise InputError naming
    ``input_data`` and the file on any problem."""
    p = Path(path)
    where = f"`input_data` {p}"
    if not p.exists():
        raise InputError(f"{where} does not exist; give a .npy file, an .npz file or a folder of images")
    names = [s.name for s in specs]
    if p.is_dir():
        arrays = _read_images(p, specs, where, max_images)
    elif p.suffix.lower() == ".npy":
        if len(specs) != 1:
            raise InputError(f"{where}: a .npy file holds one array, but the model has {len(specs)} inputs {names}; "
                             "give an .npz file with one array per input name")
        arrays = {names[0]: _load(p, where)}
    elif p.suffix.lower() == ".npz":
        arrays = _read_npz(p, specs, where)
    else:
        raise InputError(f"{where}: unsupported file type {p.suffix or '(none)'!r}; give a .npy file, an .npz file "
                         "or a folder of images")
    # one sample without the batch axis gets one
    arrays = {s.name: (arrays[s.name][None] if arrays[s.name].ndim == len(s.shape) - 1 else arrays[s.name])
              for s in specs}
    rows = {k: int(a.shape[0]) if a.ndim else 0 for k, a in arrays.items()}
    if len(set(rows.values())) > 1:
        raise InputError(f"{where}: the arrays disagree on the number of rows (axis 0) {rows}; give every input "
                         "the same number of samples")
    n = next(iter(rows.values()))
    if n < 1:
        raise InputError(f"{where}: no samples (axis 0 is empty)")
    # check a slice the model can take whole: a fixed batch axis takes exactly that many rows
    fixed = next((s.shape[0] for s in specs if s.shape and isinstance(s.shape[0], int)), None)
    probe = {k: a[:fixed] if fixed is not None and a.ndim and a.shape[0] >= fixed else a for k, a in arrays.items()}
    try:       # an .npz's arrays are named after the inputs, so "input 'x'" names the array too
        check_feeds(probe, specs, model=model)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    if fixed is not None and n % fixed:
        raise InputError(f"{where}: {n} rows, but the model takes batches of exactly {fixed}; give a multiple of "
                         f"{fixed} rows")
    return InputSamples(arrays=arrays, rows=n, source=str(p))


def _load(p: Path, where: str) -> np.ndarray:
    try:
        arr = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"{where}: cannot read it as .npy without pickle: {exc}") from None
    if not isinstance(arr, np.ndarray):
        raise InputError(f"{where}: holds several arrays; give a .npy file with one array")
    return arr


def _read_npz(p: Path, specs: Sequence[TensorSpec], where: str) -> dict[str, np.ndarray]:
    names = [s.name for s in specs]
    try:
        with np.load(p, allow_pickle=False) as z:
            keys = list(z.files)
            if all(n in keys for n in names):
                return {n: z[n] for n in names}
            data = [k for k in keys if k not in ("labels", "label", "y", "targets")]
            if len(names) == 1 and len(data) == 1:
                return {names[0]: z[data[0]]}
    except (OSError, ValueError) as exc:
        raise InputError(f"{where}: cannot read it as .npz without pickle: {exc}") from None
    missing = [n for n in names if n not in keys]
    raise InputError(f"{where} holds arrays {sorted(keys)}; the model's inputs are {names} (missing {missing}): "
                     "name one array after each input")


def _read_images(p: Path, specs: Sequence[TensorSpec], where: str, max_images: int) -> dict[str, np.ndarray]:
    from ..precision.calibration import IMAGE_SUFFIXES, Preprocess, iter_calibration_batches

    if not any(f.suffix.lower() in IMAGE_SUFFIXES for f in p.rglob("*")):
        raise InputError(f"{where}: no images ({' '.join(IMAGE_SUFFIXES)}) in this folder; give a folder of "
                         "images, a .npy file or an .npz file")
    if len(specs) != 1:
        raise InputError(f"{where}: images feed a one-input model only; this one has inputs "
                         f"{[s.name for s in specs]} — give an .npz file with one array per input")
    try:
        batches = list(iter_calibration_batches(p, specs, Preprocess(), batch_size=64, max_samples=max_images))
    except CalibrationError as exc:
        raise InputError(f"{where}: {str(exc).replace('calibration ', '')}") from None
    name = specs[0].name
    return {name: np.concatenate([b[name] for b in batches], axis=0)}
