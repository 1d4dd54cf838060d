"""Shared-memory arenas that carry tensors between a server and its instance processes.

A :class:`SharedArena` is one anonymous memory file (Linux ``memfd_create``) mapped by both
processes: the writer lays tensors out in it at 64-byte-aligned offsets and sends only a small
JSON layout (name, dtype, shape, offset, nbytes) over the control pipe; the reader maps the
same pages and views the tensors in place. A batch then crosses with one ``memcpy`` on each
side instead of being written through, and read back from, a pipe.

The file has no name in any file system: the parent creates it, hands the descriptor to the
child (``subprocess.Popen(pass_fds=…)``), and the kernel frees it when the last descriptor
closes, so a crash on either side leaks nothing. Growing is the writer's job (``ftruncate`` to
the next power of two); the reader remaps when a layout names a larger size. Every layout is
checked against the mapped size before a view is made, so a wrong offset raises instead of
reading past the mapping.

Where ``memfd_create`` does not exist (macOS, Windows) :func:`available` is false and
instance processes fall back to the pipe (``serve.worker``).
"""

from __future__ import annotations

import mmap
import os
from typing import Any, Mapping

import numpy as np

from ..errors import ModelError

ALIGN = 64
MIN_SIZE = 1 << 20


def available() -> bool:
    """Whether this platform has anonymous shared memory files (``os.memfd_create``)."""
    return hasattr(os, "memfd_create")


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


class SharedArena:
    """One shared memory file and this process's mapping of it."""

    def __init__(self, fd: int | None = None, name: str = "tensorforge") -> None:
        if fd is None:
            if not available():
                raise ModelError("shared memory instances need os.memfd_create (Linux); use the pipe transport")
            fd = os.memfd_create(name, os.MFD_CLOEXEC)
        self.fd = fd
        self._map: mmap.mmap | None = None
        self._remap()

    @property
    def size(self) -> int:
        return 0 if self._map is None else len(self._map)

    def _remap(self) -> None:
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:     # a caller still holds a view: the old mapping lives until it is dropped
                pass
            self._map = None
        size = os.fstat(self.fd).st_size
        if size:
            self._map = mmap.mmap(self.fd, size)

    def write(self, tensors: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """Copy ``tensors`` into the arena (growing it if needed); return the layout the reader needs."""
        arrays = {k: np.asarray(v) for k, v in tensors.items()}
        layout, offset = [], 0
        for name, value in arrays.items():
            if value.dtype.kind == "O":
                raise ModelError(f"tensor {name!r} holds Python objects (BYTES); they cannot cross shared "
                                 "memory — serve this model with instance_kind 'thread'")
            layout.append({"name": name, "dtype": value.dtype.str, "shape": list(value.shape),
                           "offset": offset, "nbytes": int(value.nbytes)})
            offset = _aligned(offset + value.nbytes)
        if offset > self.size:
            os.ftruncate(self.fd, max(MIN_SIZE, 1 << (offset - 1).bit_length()))
            self._remap()
        assert self._map is not None or offset == 0
        for entry, value in zip(layout, arrays.values()):
            if value.nbytes:
                dst = np.frombuffer(self._map, dtype=value.dtype, count=value.size,  # type: ignore[arg-type]
                                    offset=entry["offset"]).reshape(value.shape)
                np.copyto(dst, value)
                del dst
        return {"size": self.size, "tensors": layout}

    def read(self, layout: Mapping[str, Any], copy: bool) -> dict[str, np.ndarray]:
        """The tensors a :meth:`write` laid out: views into the arena, or copies when ``copy`` (a view is valid
        only until the arena is written or remapped again)."""
        if int(layout["size"]) != self.size:
            self._remap()
        if int(layout["size"]) > self.size:
            raise ModelError(f"shared memory layout names {layout['size']} bytes but only {self.size} are mapped")
        out: dict[str, np.ndarray] = {}
        for t in layout["tensors"]:
            dtype = np.dtype(t["dtype"])
            if dtype.kind == "O":
                raise ModelError("object tensors cannot cross shared memory")
            shape = tuple(int(d) for d in t["shape"])
            count = int(np.prod(shape, dtype=np.int64))
            offset, nbytes = int(t["offset"]), int(t["nbytes"])
            if offset < 0 or nbytes != count * dtype.itemsize or offset + nbytes > self.size:
                raise ModelError(f"shared memory layout of {t['name']!r} is out of range "
                                 f"(offset {offset}, {nbytes} bytes, arena {self.size} bytes)")
            if nbytes == 0:
                out[t["name"]] = np.empty(shape, dtype=dtype)
                continue
            view = np.frombuffer(self._map, dtype=dtype, count=count, offset=offset).reshape(shape)  # type: ignore[arg-type]
            out[t["name"]] = view.copy() if copy else view
        return out

    def close(self) -> None:
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:     # a view is still alive somewhere; the mapping goes with the process
                pass
            self._map = None
        try:
            os.close(self.fd)
        except OSError:
            pass
