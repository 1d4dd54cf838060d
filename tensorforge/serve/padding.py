"""Batching variable-length requests: group by a length bucket, pad on merge, cut the padding off on split.

A sequence model (BERT: ``input_ids``, ``attention_mask``, ``token_type_ids`` of shape ``[N, S]``) gets
requests of every length. :class:`SequenceGrouping` lets requests of different lengths share a batch:

* **key** — names, dtypes, the per-sample shapes other than the sequence axis, the engine profile the
  request fits, and the request's *length bucket*: the smallest bucket edge at or above its length;
* **merge** — every sequence input is padded with 0 to the longest length in the batch (token id 0 is
  BERT's ``[PAD]``; an attention mask of 0 hides the padded positions from every real one, so the real
  positions compute what they would alone);
* **split** — each request gets its own rows, and the outputs carrying the sequence axis (found by the
  symbolic dim name the output specs share with the inputs, e.g. ``last_hidden_state [N, S, H]``) are
  cut back to the request's own length.

The buckets bound the waste: a batch of bucket ``(a, b]`` is padded to at most ``b`` and each of its
requests is longer than ``a``, so at most ``1 - (a + 1) / b`` of the positions the model computes are
padding. :func:`bucket_edges` derives edges from a cap (``max_padding_waste`` 0.5 gives powers of two)
or checks given ones against it. The grouping counts the positions it sends (real and padding), the
``tensorforge_sequence_tokens_total`` counters and ``tensorforge_padding_waste_ratio`` gauge of the
metrics port.

Example::

    g = SequenceGrouping.for_specs(engine.inputs, engine.outputs, engine.manifest.profiles)
    batcher = DynamicBatcher(execute, config, grouping=g)
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass
from typing import Any, Hashable, Mapping, Sequence

import numpy as np

from ..core.profiles import ShapeProfile
from ..core.specs import TensorSpec
from ..errors import ConfigError, InputError
from .merge import request_rows
from .merge import split as split_rows

DEFAULT_MAX_WASTE = 0.5          # without sequence_buckets: geometric edges at ratio 2 (powers of two from the max)
MASK_HINT = "mask"               # an input named like this, on the sequence axis, makes padding safe


@dataclass(frozen=True)
class SequenceLayout:
    """Which inputs and outputs carry the sequence axis (axis 1), and its symbolic name. ``loose_outputs``
    have an unnamed axis 1 (shape inference lost it): they are cut when it has the padded length."""

    symbol: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    loose_outputs: tuple[str, ...] = ()


def sequence_layout(inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]) -> SequenceLayout | None:
    """The padding layout of a model, or None when padding is not safe for it: it needs a batch axis
    (symbolic axis 0) on every input, a symbolic axis 1 shared by the sequence inputs, and an
    attention-style input (its name holds ``mask``) on that axis, so the padded positions are masked."""
    if not inputs or any(not s.shape or isinstance(s.shape[0], int) for s in inputs):
        return None
    symbols = {s.shape[1] for s in inputs if len(s.shape) > 1 and isinstance(s.shape[1], str)}
    for symbol in sorted(symbols, key=str):
        seq = tuple(s.name for s in inputs if len(s.shape) > 1 and s.shape[1] == symbol)
        if any(MASK_HINT in name.lower() for name in seq):
            outs = tuple(s.name for s in outputs if len(s.shape) > 1 and s.shape[1] == symbol)
            loose = tuple(s.name for s in outputs if len(s.shape) > 1 and _unknown(s.shape[1]))
            return SequenceLayout(str(symbol), seq, outs, loose)
    return None


def _unknown(dim: object) -> bool:
    """An axis shape inference left unnamed (None, or ONNX's ``unk__N``); a named one other than the
    sequence's (MiniLM's pooled ``Divembedding_dim_1``) is some other size and is never cut."""
    return dim is None or (isinstance(dim, str) and dim.startswith("unk__"))


def bucket_edges(max_length: int, min_length: int = 1, *, buckets: Sequence[int] | None = None,
                 max_waste: float | None = None) -> tuple[int, ...]:
    """Upper edges of the length buckets, ascending, the last one ``max_length``.

    ``buckets`` given: those edges (clipped to ``min_length..max_length``), checked against
    ``max_waste`` when that is given too (ConfigError naming the bucket that can waste more).
    Otherwise edges shrinking from ``max_length`` by the factor ``1 - max_waste`` (default 0.5:
    128, 64, 32, ...), so no batch wastes more than ``max_waste`` of its positions; 1 or more means one
    bucket (any lengths together); 0, one bucket per length (no padding at all).
    """
    if max_length < 1 or not 1 <= min_length <= max_length:
        raise ConfigError(f"sequence lengths {min_length}..{max_length}: need 1 <= min <= max")
    if max_waste is not None and not 0.0 <= max_waste:
        raise ConfigError(f"max_padding_waste must be >= 0 (a fraction of padded positions), got {max_waste}")
    if buckets is not None:
        if not all(isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in buckets):
            raise ConfigError(f"sequence_buckets must be lengths >= 1, got {list(buckets)}")
        edges = sorted({min(max(int(b), min_length), max_length) for b in buckets} | {max_length})
        if max_waste is not None:
            low = min_length - 1
            for edge in edges:
                worst = 1.0 - (low + 1) / edge
                if worst > max_waste + 1e-12:
                    raise ConfigError(f"sequence_buckets: bucket {low + 1}..{edge} can pad up to {worst:.0%} of a "
                                      f"batch, over max_padding_waste {max_waste}; add edges between them or "
                                      "raise max_padding_waste")
                low = edge
        return tuple(edges)
    waste = DEFAULT_MAX_WASTE if max_waste is None else max_waste
    out = [max_length]
    while waste < 1.0 and out[-1] > min_length:
        # the next lower edge a: (a, e] wastes at most 1 - (a+1)/e <= waste, so a + 1 >= e * (1 - waste)
        # (the round edge e * (1 - waste) itself, e.g. 64 under 128, rather than one below it)
        low = int(np.ceil(out[-1] * (1.0 - waste)))
        if low < min_length:
            break
        out.append(min(low, out[-1] - 1))
    return tuple(sorted(out))


class SequenceGrouping:
    """The :class:`~tensorforge.serve.merge.Grouping` of a model with a padded sequence axis (module doc)."""

    def __init__(self, layout: SequenceLayout, edges: Sequence[int], profiles: Sequence[ShapeProfile] = (),
                 pad_values: Mapping[str, int | float] | None = None) -> None:
        if not edges or list(edges) != sorted(set(edges)):
            raise ConfigError(f"bucket edges must be ascending and distinct, got {list(edges)}")
        self.layout = layout
        self.edges = tuple(int(e) for e in edges)
        self.profiles = tuple(profiles)
        self.pad_values = dict(pad_values or {})
        self._seq = frozenset(layout.inputs)
        self._seq_out = frozenset(layout.outputs + layout.loose_outputs)
        self._lock = threading.Lock()
        self._real = 0            # positions of real tokens sent to the model (rows x own length)
        self._padded = 0          # positions of padding sent to the model

    @classmethod
    def for_specs(cls, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec],
                  profiles: Sequence[ShapeProfile] = (), *, buckets: Sequence[int] | None = None,
                  max_waste: float | None = None, max_length: int | None = None) -> "SequenceGrouping | None":
        """The grouping for a model's specs and profiles (None when padding is not safe: :func:`sequence_layout`).
        The lengths run over the profiles' min..max on the sequence axis (else 1..``max_length``, else
        the largest bucket given); with none of them, None too (nothing bounds the padding)."""
        layout = sequence_layout(inputs, outputs)
        if layout is None:
            return None
        bounds = [p for prof in profiles for p in prof.inputs if p.name in layout.inputs]
        lows, highs = [p.min[1] for p in bounds], [p.max[1] for p in bounds]
        hi = max(highs) if highs else max_length or (max(buckets) if buckets else None)
        if hi is None:
            return None         # an engine without profiles (older builds): no bound to bucket by
        lo = min(lows) if lows else 1
        return cls(layout, bucket_edges(hi, lo, buckets=buckets, max_waste=max_waste), profiles)

    # -- Grouping -------------------------------------------------------------------------------------
    def length(self, inputs: Mapping[str, np.ndarray]) -> int:
        """The request's sequence length (axis 1 of its sequence inputs, which must agree)."""
        lengths = {int(inputs[n].shape[1]) for n in self.layout.inputs if n in inputs and inputs[n].ndim > 1}
        if len(lengths) != 1:
            raise InputError(f"the sequence inputs {list(self.layout.inputs)} must all be given with one length on "
                             f"axis 1 ({self.layout.symbol}); got {sorted(lengths)}")
        return lengths.pop()

    def bucket(self, length: int) -> int:
        """The upper edge of ``length``'s bucket (past the last edge: the length itself, a bucket of its own)."""
        i = bisect.bisect_left(self.edges, length)
        return self.edges[i] if i < len(self.edges) else length

    def key(self, inputs: Mapping[str, np.ndarray]) -> Hashable:
        length = self.length(inputs)
        shapes = tuple(sorted((name, v.dtype.str, tuple(-1 if (name in self._seq and axis == 1) else d
                                                         for axis, d in enumerate(v.shape) if axis > 0))
                              for name, v in inputs.items()))
        profile = -1
        if self.profiles:
            full = {name: tuple(int(d) for d in v.shape) for name, v in inputs.items()}
            profile = next((i for i, p in enumerate(self.profiles) if p.fits(full)), -1)
        return ("sequence", shapes, profile, self.bucket(length))

    def merge(self, requests: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
        if not requests:
            raise ValueError("merge() needs at least one request")
        rows = [request_rows(r) for r in requests]
        lengths = [self.length(r) for r in requests]
        longest = max(lengths)
        real = sum(n * k for n, k in zip(rows, lengths))
        with self._lock:
            self._real += real
            self._padded += sum(rows) * longest - real
        if len(requests) == 1:
            return dict(requests[0])
        out: dict[str, np.ndarray] = {}
        for name, first in requests[0].items():
            parts = [r[name] for r in requests]
            if name not in self._seq or all(k == longest for k in lengths):
                out[name] = np.concatenate(parts, axis=0)
                continue
            batch = np.full((sum(rows), longest, *first.shape[2:]), self.pad_values.get(name, 0), first.dtype)
            start = 0
            for part, n, k in zip(parts, rows, lengths):
                batch[start:start + n, :k] = part
                start += n
            out[name] = batch
        return out

    def split(self, outputs: Mapping[str, np.ndarray],
              requests: Sequence[Mapping[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        parts = split_rows(outputs, [request_rows(r) for r in requests])
        if len(requests) == 1:
            return parts
        lengths = [self.length(r) for r in requests]
        longest = max(lengths)
        cut = [name for name, v in outputs.items() if name in self._seq_out and v.ndim > 1 and v.shape[1] == longest]
        for part, k in zip(parts, lengths):
            if k < longest:
                for name in cut:
                    part[name] = part[name][:, :k]
        return parts

    # -- accounting -----------------------------------------------------------------------------------
    def padding_stats(self) -> dict[str, Any]:
        """Positions sent to the model so far: real tokens, padding, and the padding's share (0 when none)."""
        with self._lock:
            real, padded = self._real, self._padded
        total = real + padded
        return {"real_tokens": real, "padding_tokens": padded, "waste_ratio": padded / total if total else 0.0,
                "bucket_edges": list(self.edges)}
