"""``offline_files``: batch inference over ``.npy``/``.npz`` files, one ``.npz`` of outputs per input file.

In-process, the engine's session runs on a :class:`~tensorforge.core.streams.StreamPool` (several
batches at once, weights shared); with ``ray=True`` every file's rows go through
:func:`tensorforge.scale.offline` (Ray Data ``map_batches`` over a pool of engine actors, on the
cluster at ``address`` or a local one) and come back in row order, split per file again. Either way
``OUT/<stem>.npz`` holds, for each output name, the rows of ``<stem>``'s input in order — the same
arrays ``Session.run`` gives.

A ``.npy`` feeds a one-input engine; a ``.npz`` holds one array per input name (a one-input engine
takes its only array whatever its key).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError, InputError

__all__ = ["OfflineFilesResult", "input_files", "offline_files"]

SUFFIXES = (".npy", ".npz")


@dataclass(frozen=True)
class OfflineFilesResult:
    """Which files were written, how many samples, and how fast (wall clock from the first batch to the last)."""

    outputs: tuple[str, ...]
    files: int
    samples: int
    seconds: float
    mode: str                       # "in-process" or "ray"
    batch_size: int
    workers: int                    # streams (in-process) or actors (ray)

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"files": self.files, "samples": self.samples, "seconds": round(self.seconds, 4),
                "samples_per_s": round(self.samples_per_s, 2), "mode": self.mode, "batch_size": self.batch_size,
                "workers": self.workers, "outputs": list(self.outputs)}


def input_files(inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The ``.npy``/``.npz`` files of ``inputs``: a folder (its files, sorted) or a list of files/folders."""
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if not items:
        raise InputError("`inputs`: give a folder or .npy/.npz files")
    files: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
            if not found:
                raise InputError(f"`inputs`: the folder {str(path)!r} holds no .npy or .npz files")
            files += found
        elif path.is_file():
            if path.suffix.lower() not in SUFFIXES:
                raise InputError(f"`inputs`: {str(path)!r} is not a .npy or .npz file")
            files.append(path)
        else:
            raise InputError(f"`inputs`: {str(path)!r} does not exist; give a folder or .npy/.npz files")
    stems = [p.stem for p in files]
    twice = sorted({s for s in stems if stems.count(s) > 1})
    if twice:
        raise InputError(f"`inputs`: several files are named {twice} (one output .npz per stem); rename them")
    return files


def _read(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    """The engine's feeds from one file."""
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"`inputs`: cannot read {str(path)!r} as NumPy data ({exc})") from exc
    if isinstance(data, np.ndarray):
        if len(names) != 1:
            raise InputError(f"{path}: the engine has inputs {names}; give a .npz with one array per input")
        return {names[0]: data}
    with data:
        arrays = {k: data[k] for k in data.files}
    if len(names) == 1 and len(arrays) == 1:
        return {names[0]: next(iter(arrays.values()))}
    missing = [n for n in names if n not in arrays]
    if missing:
        raise InputError(f"{path}: no array for input(s) {missing}; its keys are {sorted(arrays)}")
    rows = {len(arrays[n]) for n in names}
    if len(rows) != 1:
        raise InputError(f"{path}: the inputs have different row counts {sorted(rows)}")
    return {n: arrays[n] for n in names}


def offline_files(engine: str | os.PathLike[str], inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                  output_dir: str | os.PathLike[str], *, batch_size: int = 64, streams: int = 1,
                  threads: int | None = None, ray: bool = False, address: str | None = None,
                  concurrency: int = 1) -> OfflineFilesResult:
    """Run ``engine`` over every row of every input file; write ``output_dir/<stem>.npz`` per file.

    ``batch_size``: rows per engine call (capped at the engine's max batch). In-process:
    ``streams`` batches run at once (ONNX Runtime threads each: ``threads``, default cores ÷ streams).
    ``ray=True``: Ray Data with ``concurrency`` engine actors, on the cluster at ``address``
    (``"auto"``, ``"ray://…"`` or ``host:port``; default: a running one, else a local one).
    Progress goes to :func:`tensorforge.core.progress.report` (stage ``"offline"``).

    >>> offline_files("mlp.tfe", "inputs/", "outputs/", batch_size=32)      # doctest: +SKIP
    """
    from ..engine.runtime import Engine

    if batch_size < 1 or streams < 1 or concurrency < 1:
        raise ConfigError(f"`batch_size`, `streams` and `concurrency` must be >= 1, got {batch_size}, {streams}, "
                          f"{concurrency}")
    files = input_files(inputs)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    eng = Engine.load(engine)
    names = [s.name for s in eng.inputs]
    feeds = [_read(p, names) for p in files]          # every file is checked before the first batch runs
    rows = [len(next(iter(f.values()))) for f in feeds]
    if ray:
        results, seconds, workers = _run_ray(engine, feeds, rows, batch_size, concurrency, address, threads)
    else:
        results, seconds, workers = _run_local(eng, feeds, files, batch_size, streams, threads)
    written = []
    for path, result in zip(files, results):
        target = out / f"{path.stem}.npz"
        arrays: dict[str, Any] = dict(result)
        np.savez(target, **arrays)
        written.append(str(target))
    return OfflineFilesResult(outputs=tuple(written), files=len(files), samples=sum(rows), seconds=seconds,
                              mode="ray" if ray else "in-process", batch_size=batch_size, workers=workers)


def _run_local(eng: Any, feeds: list[dict[str, np.ndarray]], files: list[Path], batch_size: int, streams: int,
               threads: int | None) -> tuple[list[dict[str, np.ndarray]], float, int]:
    from ..core.progress import report
    from ..core.streams import StreamPool, threads_per_worker

    session = eng.session(threads=threads or threads_per_worker(streams), warn_host=False)
    static = [s.shape[0] for s in eng.inputs if s.shape and isinstance(s.shape[0], int)]
    limit = int(static[0]) if static else eng.max_batch
    step = min(batch_size, limit) if limit else batch_size
    results: list[dict[str, np.ndarray]] = []
    start = time.perf_counter()
    with StreamPool(session.run, streams) as pool:
        for i, (path, feed) in enumerate(zip(files, feeds)):
            n = len(next(iter(feed.values())))
            if static and n % step:
                raise InputError(f"{path}: {n} rows do not split into the engine's fixed batch of {step}")
            parts = pool.run_many([{k: v[j:j + step] for k, v in feed.items()} for j in range(0, n, step)])
            results.append({k: np.concatenate([p[k] for p in parts]) for k in parts[0]})
            report("offline", i + 1, len(files), f"{path.name}: {n} samples")
    return results, time.perf_counter() - start, streams


def _run_ray(engine: str | os.PathLike[str], feeds: list[dict[str, np.ndarray]], rows: list[int], batch_size: int,
             concurrency: int, address: str | None, threads: int | None
             ) -> tuple[list[dict[str, np.ndarray]], float, int]:
    from ..scale.blob import require_ray

    require_ray("data")
    import ray as ray_mod

    from ..scale.offline import offline

    if address is not None and not ray_mod.is_initialized():
        ray_mod.init(address=address, logging_level=logging.ERROR)
    columns = {k: np.concatenate([f[k] for f in feeds]) for k in feeds[0]}
    result = offline(engine, columns, batch_size=batch_size, concurrency=concurrency, threads=threads)
    bounds = np.cumsum([0, *rows])
    split = [{k: v[bounds[i]:bounds[i + 1]] for k, v in result.outputs.items()} for i in range(len(rows))]
    return split, result.seconds, concurrency
