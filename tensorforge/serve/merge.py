"""Merging requests into one batch and splitting the batch's outputs back, row for row.

Pure functions on NumPy arrays. Rows run along axis 0: a request of ``k`` samples owns
``k`` consecutive rows of the merged batch, in submission order, and gets exactly
those rows of every output back (as views — no copy). Requests may be merged only when
they agree on everything but the row count (:func:`signature`).
"""

from __future__ import annotations

from typing import Hashable, Mapping, Protocol, Sequence

import numpy as np

from ..errors import InputError

Signature = tuple[tuple[str, str, tuple[int, ...]], ...]


def request_rows(inputs: Mapping[str, np.ndarray]) -> int:
    """The number of samples a request carries: the common size of axis 0 of its inputs."""
    if not inputs:
        raise InputError("a request needs at least one input tensor")
    rows = None
    for name, value in inputs.items():
        if not isinstance(value, np.ndarray):
            raise InputError(f"input {name!r} is a {type(value).__name__}; pass a NumPy array")
        if value.ndim == 0:
            raise InputError(f"input {name!r} is a scalar; batched inputs need a leading batch axis (rows)")
        if rows is None:
            rows = int(value.shape[0])
        elif value.shape[0] != rows:
            raise InputError(f"input {name!r} has {value.shape[0]} rows but another input has {rows}; "
                             "all inputs of one request must carry the same number of samples on axis 0")
    assert rows is not None
    if rows < 1:
        raise InputError("a request must carry at least one sample (axis 0 is empty)")
    return rows


def signature(inputs: Mapping[str, np.ndarray]) -> Signature:
    """What must match for two requests to share a batch: names, dtypes and per-sample shapes."""
    return tuple(sorted((name, value.dtype.str, tuple(value.shape[1:])) for name, value in inputs.items()))


def merge(requests: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate the requests' inputs along axis 0 (one request: passed through, no copy)."""
    if not requests:
        raise ValueError("merge() needs at least one request")
    first = requests[0]
    if len(requests) == 1:
        return dict(first)
    return {name: np.concatenate([r[name] for r in requests], axis=0) for name in first}


def split(outputs: Mapping[str, np.ndarray], rows: Sequence[int]) -> list[dict[str, np.ndarray]]:
    """Cut every output along axis 0 into ``rows[i]`` consecutive rows for request ``i``.

    Raises ``ValueError`` when an output has no batch axis of the merged size (the model
    then cannot be batched: each request's rows are not identifiable).
    """
    total = sum(rows)
    for name, value in outputs.items():
        if np.ndim(value) == 0 or value.shape[0] != total:
            shape = np.shape(value)
            raise ValueError(f"output {name!r} has shape {shape}, but the batch has {total} rows; an output "
                             "without a leading batch axis cannot be split back to the requests — serve this "
                             "model with max_batch_size 1")
    if len(rows) == 1:
        return [dict(outputs)]
    parts = []
    start = 0
    for n in rows:
        parts.append({name: value[start:start + n] for name, value in outputs.items()})
        start += n
    return parts


class Grouping(Protocol):
    """How a batcher forms batches from requests: which may share one, how to merge them, how to split outputs.

    Only requests with equal :meth:`key` are merged. :class:`RowGrouping` (the default) merges along axis 0
    requests that agree on names, dtypes and per-sample shapes; a sequence model's grouping may instead key
    by a length bucket and pad on merge (``serve.padding``).
    """

    def key(self, inputs: Mapping[str, np.ndarray]) -> Hashable:
        """Requests merge only when their keys are equal."""

    def merge(self, requests: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """The batch's inputs for these requests (all of one key), in order."""

    def split(self, outputs: Mapping[str, np.ndarray],
              requests: Sequence[Mapping[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """Each request's own part of the batch's outputs, in the order of ``requests``."""


class RowGrouping:
    """The default grouping: equal :func:`signature`, concatenated along axis 0, split back row for row."""

    def key(self, inputs: Mapping[str, np.ndarray]) -> Hashable:
        return signature(inputs)

    def merge(self, requests: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
        return merge(requests)

    def split(self, outputs: Mapping[str, np.ndarray],
              requests: Sequence[Mapping[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        return split(outputs, [request_rows(r) for r in requests])
