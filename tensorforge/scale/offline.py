"""Offline (batch) inference with Ray Data: ``map_batches`` through a pool of engine actors.

Each actor of the pool loads the engine once (from its bytes, :mod:`.blob`) into a
:class:`~tensorforge.engine.runtime.Session` and runs every batch Ray Data hands it through
``Session.run`` — the same feed check, the same backend session, the same outputs as in-process.
A batch larger than the engine takes at once (its max batch, or a static batch axis) is run in
slices. Row order is kept, so output row *i* belongs to input row *i*: arrays travel with a row-index
column (``ROW``) that the actors pass through and the driver sorts by; a Dataset given as is runs with
Ray Data's ``preserve_order`` set on its own context (a Dataset reads the context it was made with).

The dataset is a ``ray.data.Dataset`` whose columns are the engine's input names (a one-input
engine also accepts the ``data`` column ``ray.data.from_numpy`` makes), a NumPy array (one-input
engines), or a dict ``{input name: array}``; arrays are cut into blocks of ``batch_size`` rows so
every actor of the pool has work.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ..errors import ConfigError, InputError
from .blob import EngineBlob, require_ray

__all__ = ["ROW", "EngineActor", "OfflineResult", "offline"]

ROW = "__tensorforge_row__"          # the row-index column of datasets made here from arrays


@dataclass
class OfflineResult:
    """The outputs of an offline job (row order kept) and how fast it ran (wall clock, driver side)."""

    outputs: dict[str, np.ndarray]
    rows: int
    seconds: float                      # from submitting the job to the last output row collected
    concurrency: int
    batch_size: int

    @property
    def samples_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        return {"rows": self.rows, "seconds": round(self.seconds, 4), "samples_per_s": round(self.samples_per_s, 2),
                "concurrency": self.concurrency, "batch_size": self.batch_size,
                "outputs": {k: list(v.shape) for k, v in self.outputs.items()}}


class EngineActor:
    """A Ray Data actor: the engine loaded once, ``__call__`` runs one batch (dict of column arrays)."""

    def __init__(self, name: str, data: bytes, threads: int | None = None, outputs: list[str] | None = None) -> None:
        engine = EngineBlob(name, data).load()
        self.session = engine.session(threads=threads, warn_host=False)
        self.names = [s.name for s in engine.inputs]
        self.outputs = outputs
        static = [s.shape[0] for s in engine.inputs if s.shape and isinstance(s.shape[0], int)]
        # the most rows one Session.run takes: a static batch axis, else the engine's max batch (None: any)
        self.limit: int | None = int(static[0]) if static else engine.max_batch

    def __call__(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = _feeds(batch, self.names)
        rows = len(next(iter(feeds.values())))
        step = self.limit or rows
        if rows % step:
            raise InputError(f"a batch of {rows} rows does not split into the engine's fixed batch of {step}; "
                             f"use a batch_size that is a multiple of {step}")
        parts = [self.session.run({k: v[i:i + step] for k, v in feeds.items()}) for i in range(0, rows, step)]
        keep = self.outputs or list(parts[0])
        out = {k: parts[0][k] if len(parts) == 1 else np.concatenate([p[k] for p in parts]) for k in keep}
        if ROW in batch:
            out[ROW] = np.asarray(batch[ROW])            # passed through: the driver puts rows back in order
        return out


def _feeds(batch: Mapping[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
    """The engine's feeds from a batch's columns (a lone ``data`` column feeds a one-input engine)."""
    if len(names) == 1 and names[0] not in batch and [c for c in batch if c != ROW] == ["data"]:
        return {names[0]: np.asarray(batch["data"])}
    missing = [n for n in names if n not in batch]
    if missing:
        raise InputError(f"the dataset has no column(s) {missing}; its columns are {sorted(batch)} and the engine's "
                         f"inputs are {names} (name the columns after the inputs)")
    return {n: np.asarray(batch[n]) for n in names}


def as_columns(dataset: Any, names: list[str]) -> dict[str, np.ndarray] | None:
    """A NumPy array or dict of arrays as ``{input name: array}`` with equal row counts (None: a Dataset)."""
    if isinstance(dataset, np.ndarray):
        if len(names) != 1:
            raise InputError(f"the engine has {len(names)} inputs {names}; pass a dict {{name: array}}")
        columns = {names[0]: dataset}
    elif isinstance(dataset, Mapping):
        columns = {k: np.asarray(v) for k, v in dataset.items()}
        _feeds(columns, names)                       # names every missing input
    else:
        return None
    rows = {k: len(v) for k, v in columns.items()}
    if len(set(rows.values())) != 1 or 0 in rows.values():
        raise InputError(f"every input needs the same, non-zero number of rows; got {rows}")
    return columns


def _to_dataset(columns: dict[str, np.ndarray], block_rows: int) -> Any:
    """A Ray Dataset of blocks of ``block_rows`` rows (tensor columns: Ray's Arrow tensor extension)."""
    import pyarrow as pa
    import ray.data
    from ray.data.extensions import ArrowTensorArray

    n = len(next(iter(columns.values())))

    def column(v: np.ndarray) -> Any:
        return pa.array(v) if v.ndim == 1 else ArrowTensorArray.from_numpy(np.ascontiguousarray(v))

    tables = [pa.table({k: column(v[i:i + block_rows])
                        for k, v in columns.items()}) for i in range(0, n, block_rows)]
    return ray.data.from_arrow(tables)


def offline(engine: "str | os.PathLike[str] | EngineBlob", dataset: Any, *, batch_size: int = 64,
            concurrency: int = 1, num_cpus: float = 1.0, threads: int | None = None,
            outputs: list[str] | None = None) -> OfflineResult:
    """Run ``engine`` over every row of ``dataset`` on Ray Data; return the outputs in row order.

    ``concurrency``: actors in the pool (each loads the engine once); ``num_cpus``: Ray CPUs per
    actor (its ORT threads default to that share: ``threads``). ``outputs``: keep only these outputs.
    Connects to the running Ray cluster (``ray.init(address=...)`` first for a remote one), or
    starts a local one.
    """
    require_ray("data")
    import ray
    import ray.data

    if batch_size < 1 or concurrency < 1:
        raise ConfigError(f"batch_size and concurrency must be >= 1, got {batch_size} and {concurrency}")
    blob = EngineBlob.read(engine)
    spec = blob.load()
    names = [s.name for s in spec.inputs]
    known = [s.name for s in spec.outputs]
    unknown = [o for o in outputs or [] if o not in known]
    if unknown:
        raise InputError(f"the engine has no output(s) {unknown}; its outputs are {known}")
    if not ray.is_initialized():
        ray.init(include_dashboard=False)
    start = time.perf_counter()
    columns = as_columns(dataset, names)
    if columns is not None:
        # blocks of whole batches, about 8 per actor: every actor has work, and few blocks keep Ray's per-task cost low
        batches = -(-len(next(iter(columns.values()))) // batch_size)
        indexed = {**columns, ROW: np.arange(len(next(iter(columns.values()))), dtype=np.int64)}
        ds = _to_dataset(indexed, batch_size * -(-batches // min(batches, 8 * concurrency)))
    else:
        ds = dataset
    ctx = ds.context                                  # the context this Dataset executes with
    keep_order = ctx.execution_options.preserve_order
    ctx.execution_options.preserve_order = True      # output row i answers input row i
    try:
        mapped = ds.map_batches(EngineActor, batch_size=batch_size, batch_format="numpy",
                                compute=ray.data.ActorPoolStrategy(size=concurrency),
                                num_cpus=num_cpus, zero_copy_batch=True,
                                fn_constructor_args=(blob.name, blob.data, threads or max(1, int(num_cpus)), outputs))
        chunks: dict[str, list[np.ndarray]] = {}
        for block in mapped.iter_batches(batch_size=None, batch_format="numpy"):
            for k, v in block.items():
                chunks.setdefault(k, []).append(np.asarray(v))
    finally:
        ctx.execution_options.preserve_order = keep_order
    seconds = time.perf_counter() - start
    result = {k: np.concatenate(v) for k, v in chunks.items()}
    if ROW in result:
        order = np.argsort(result.pop(ROW), kind="stable")
        result = {k: v[order] for k, v in result.items()}
    rows = len(next(iter(result.values()))) if result else 0
    return OfflineResult(outputs=result, rows=rows, seconds=seconds, concurrency=concurrency, batch_size=batch_size)
