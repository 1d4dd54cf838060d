"""Requests of varying sequence length: the token lengths a load test sends to a sequence model.

Random inputs at the profile's ``opt`` shape send every request at one length, which says nothing
of how a server that pads by length bucket (:mod:`tensorforge.serve.padding`) copes with real
traffic. :class:`LengthSamples` makes BERT-style requests (``input_ids``, ``attention_mask``,
``token_type_ids``; any input whose axis 1 shares the sequence symbol) whose lengths follow a
distribution, given as a string:

* ``fixed:N`` — every request ``N`` tokens long;
* ``uniform:A-B`` — lengths uniform in ``A..B``;
* ``lognormal:MEDIAN,SIGMA`` — ``exp(N(ln MEDIAN, SIGMA))`` rounded: the long right tail of real
  text (most sentences short, a few paragraphs long);
* ``sentences`` — the token lengths of the real sentences of :mod:`tensorforge.models.sentences`
  (MiniLM's WordPiece tokenizer), drawn with replacement.

Every length is clipped to the engine profile's range on the sequence axis. ``pad_to`` makes each
request the way a client without server-side padding must send it: ``pad_to`` tokens, the
attention mask 0 past the request's own length (the pad-everything-to-max baseline). Token ids are
drawn from ``[1, vocab)`` (default 1000, valid for every BERT vocabulary in the zoo); token types are 0.

The object plugs into :class:`~tensorforge.loadgen.targets.BatcherTarget` as its ``inputs``: the
target takes :meth:`LengthSamples.feeds` once per batch size and sends those requests in turn.

Example::

    samples = length_samples("lognormal:48,0.7", engine.inputs, engine.manifest.profiles)
    target = BatcherTarget.from_engine(engine, config, inputs=samples)
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..core.profiles import ShapeProfile
from ..core.specs import TensorSpec
from ..errors import InputError

__all__ = ["LengthSamples", "length_samples", "draw_lengths"]

POOL = 256              # distinct requests per batch size (their lengths follow the distribution)
_HELP = "write fixed:N, uniform:A-B, lognormal:MEDIAN,SIGMA or sentences"


def draw_lengths(spec: str, count: int, low: int, high: int, seed: int = 0) -> np.ndarray:
    """``count`` lengths of distribution ``spec`` (module doc), clipped to ``low..high``."""
    rng = np.random.default_rng(seed)
    kind, _, body = spec.strip().lower().partition(":")
    try:
        if kind == "fixed":
            raw = np.full(count, int(body))
        elif kind == "uniform":
            a, b = (int(x) for x in body.split("-"))
            if a > b:
                raise ValueError
            raw = rng.integers(a, b + 1, size=count)
        elif kind == "lognormal":
            median, sigma = (float(x) for x in body.split(","))
            if not (median > 0 and sigma >= 0):
                raise ValueError
            raw = np.rint(np.exp(rng.normal(np.log(median), sigma, size=count)))
        elif kind == "sentences" and not body:
            from ..models import sentences

            real = sentences.tokenize(sentences.SENTENCES)["attention_mask"].sum(axis=1)
            raw = rng.choice(real, size=count)
        else:
            raise ValueError
    except ValueError:
        raise InputError(f"bad sequence-length distribution `lengths`={spec!r}; {_HELP}") from None
    return np.clip(raw, low, high).astype(np.int64)


class LengthSamples:
    """Requests of the given lengths for a sequence model's inputs (module doc); ``feeds(batch)`` for a target."""

    def __init__(self, specs: Sequence[TensorSpec], lengths: Sequence[int], *, pad_to: int | None = None,
                 vocab: int = 1000, seed: int = 0, source: str = "") -> None:
        self.specs = list(specs)
        self.sequence = [s.name for s in self.specs if len(s.shape) > 1 and isinstance(s.shape[1], str)]
        if not self.sequence:
            raise InputError("`lengths` needs a sequence model: inputs with a symbolic axis 1 (e.g. input_ids "
                             f"[N, S]); this one has {[(s.name, list(s.shape)) for s in self.specs]}")
        self.lengths = np.asarray(lengths, np.int64)
        if self.lengths.size == 0 or int(self.lengths.min()) < 1:
            raise InputError("`lengths` must be at least one length, each >= 1")
        if pad_to is not None and pad_to < int(self.lengths.max()):
            raise InputError(f"`pad_to` {pad_to} is shorter than the longest length {int(self.lengths.max())}")
        self.pad_to = pad_to
        self.vocab = vocab
        self.seed = seed
        self.source = source

    def request(self, batch: int, length: int, seed: int) -> dict[str, np.ndarray]:
        """One request of ``batch`` rows of ``length`` real tokens (padded to ``pad_to`` when set)."""
        width = self.pad_to or length
        rng = np.random.default_rng(seed)
        out: dict[str, np.ndarray] = {}
        for s in self.specs:
            shape = (batch, width, *(d if isinstance(d, int) else 1 for d in s.shape[2:]))
            if s.name not in self.sequence:
                raise InputError(f"`lengths` makes sequence inputs only; input {s.name!r} {list(s.shape)} has no "
                                 "sequence axis — feed this model real data (`inputs`) instead")
            value = np.zeros(shape, np.dtype(s.dtype))
            if "mask" in s.name.lower():
                value[:, :length] = 1
            elif "type" not in s.name.lower():
                value[:, :length] = rng.integers(1, self.vocab, size=(batch, length, *shape[2:]))
            out[s.name] = value
        return out

    def feeds(self, batch: int) -> list[dict[str, np.ndarray]]:
        """One request per drawn length, in the drawn order (the target sends them in turn)."""
        if batch < 1:
            raise InputError(f"batch must be >= 1, got {batch}")
        return [self.request(batch, int(n), self.seed + i) for i, n in enumerate(self.lengths)]

    def padding_waste(self) -> float:
        """The share of positions that are padding when each request goes alone (0 without ``pad_to``)."""
        if self.pad_to is None:
            return 0.0
        return 1.0 - float(self.lengths.mean()) / self.pad_to

    def describe(self) -> dict[str, Any]:
        n = self.lengths
        return {"source": self.source or "given lengths", "requests": int(n.size), "pad_to": self.pad_to,
                "length_mean": float(n.mean()), "length_p50": float(np.percentile(n, 50)),
                "length_p90": float(np.percentile(n, 90)), "length_min": int(n.min()), "length_max": int(n.max())}


def length_samples(spec: str, specs: Sequence[TensorSpec], profiles: Sequence[ShapeProfile] = (), *,
                   pad_to: int | str | None = None, count: int = POOL, seed: int = 0,
                   vocab: int = 1000) -> LengthSamples:
    """Requests with lengths of distribution ``spec``, clipped to the profiles' range on the sequence
    axis (1..512 without profiles); ``pad_to="max"`` pads each to the profiles' longest length."""
    names = {s.name for s in specs if len(s.shape) > 1 and isinstance(s.shape[1], str)}
    bounds = [p for prof in profiles for p in prof.inputs if p.name in names and p.max]
    low = min((p.min[1] for p in bounds), default=1)
    high = max((p.max[1] for p in bounds), default=512)
    if pad_to == "max":
        pad_to = high
    elif isinstance(pad_to, str):
        raise InputError(f"`pad_to` must be a length or 'max', got {pad_to!r}")
    lengths = draw_lengths(spec, count, low, high, seed)
    return LengthSamples(specs, lengths.tolist(), pad_to=pad_to, vocab=vocab, seed=seed,
                         source=f"{spec} clipped to {low}..{high}")
