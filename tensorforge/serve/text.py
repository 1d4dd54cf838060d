"""Raw text in, tokens out: a model whose engine carries a tokenizer takes a BYTES input named ``text``.

The engine's tokenizer (engine/tokenizer.py) turns each string of ``text`` (one per row, UTF-8) into the
token inputs the engine records (``input_ids``, ``attention_mask``, ``token_type_ids``), in the server before the
request is queued (on the thread that decoded it; the ``tokenizers`` library is Rust and fast). Each text is
truncated to the engine's longest sequence (``TokenizerRecord.max_length``); the rows of one request are
padded with 0 (mask 0) to its longest text, and at least to the shortest sequence the profiles take; the
batcher then pads across requests by length bucket (padding.py), as for token requests.

A request carries either ``text`` or the token inputs, never both. Limits, checked before tokenizing,
each a 400 naming it: at most the model's max batch size (and :data:`MAX_TEXTS`) strings per request,
each at most :data:`MAX_TEXT_BYTES` bytes of UTF-8.

Example (tritonclient)::

    t = httpclient.InferInput("text", [2], "BYTES")
    t.set_data_from_numpy(np.array([b"a short one", b"a longer sentence"], dtype=object))
    client.infer("minilm", [t]).as_numpy("embedding")
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np

from ..core.profiles import ShapeProfile
from ..core.specs import TensorSpec
from ..engine.manifest import Manifest
from ..engine.tokenizer import load_tokenizer
from ..errors import InputError
from .protocol import InferRequest, datatype_of

TEXT_INPUT = "text"
MAX_TEXTS = 1024                 # strings per request, also capped at the model's max batch size
MAX_TEXT_BYTES = 64 << 10        # per string; past max_length tokens the rest is truncated anyway


@dataclass
class TextInput:
    """A loaded model's tokenizer and what it produces: token inputs of these specs, truncated at
    ``max_length``, padded within a request to at least ``min_length``."""

    tokenizer: Any
    specs: tuple[TensorSpec, ...]
    max_length: int
    min_length: int = 1

    @classmethod
    def from_engine(cls, where: str, manifest: Manifest, payloads: dict[str, bytes]) -> "TextInput | None":
        """The model's text input, or None when its engine carries no tokenizer; EngineFileError when it
        carries a corrupt one."""
        record = manifest.tokenizer
        if record is None:
            return None
        tok = load_tokenizer(where, record, payloads[record.payload])
        specs = tuple(s for s in manifest.inputs if s.name in record.inputs)
        return cls(tok, specs, record.max_length, _min_length(manifest.profiles))

    @staticmethod
    def metadata() -> dict[str, Any]:
        """The extra input listed by /v2/models/NAME: one UTF-8 string per row."""
        return {"name": TEXT_INPUT, "datatype": "BYTES", "shape": [-1]}

    def encode(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Token inputs for ``texts``: [len(texts), L] arrays, L the longest encoding (at least min_length)."""
        encodings = self.tokenizer.encode_batch(list(texts))
        length = max([self.min_length] + [len(e.ids) for e in encodings])
        fields = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}
        out: dict[str, np.ndarray] = {}
        for spec in self.specs:
            arr = np.zeros((len(encodings), length), dtype=np.dtype(spec.dtype))
            for row, e in enumerate(encodings):
                values = getattr(e, fields[spec.name])
                arr[row, :len(values)] = values
            out[spec.name] = arr
        return out


def _min_length(profiles: Sequence[ShapeProfile]) -> int:
    mins = [p.min[1] for prof in profiles for p in prof.inputs if p.name == "input_ids" and len(p.min) > 1]
    return max(min(mins), 1) if mins else 1


def text_request(model: str, text: TextInput | None, inputs: Sequence[TensorSpec], request: InferRequest,
                 max_texts: int) -> InferRequest:
    """``request`` with its ``text`` input tokenized into the token inputs; unchanged when it has none (or
    the model has a real input named ``text``). InputError (400) for every misuse, naming the fix."""
    if TEXT_INPUT not in request.inputs or any(s.name == TEXT_INPUT for s in inputs):
        return request
    if text is None:
        raise InputError(f"model {model!r} takes token inputs {[s.name for s in inputs]}, not {TEXT_INPUT!r}: its "
                         "engine carries no tokenizer — tokenize on the client, or rebuild the engine with "
                         "`tensorforge build --tokenizer tokenizer.json`")
    others = sorted(n for n in request.inputs if n != TEXT_INPUT)
    if others:
        raise InputError(f"model {model!r}: send either {TEXT_INPUT!r} or the token inputs "
                         f"{[s.name for s in text.specs]}, not both (this request also has {others})")
    datatype = request.datatypes.get(TEXT_INPUT, "BYTES")
    if datatype != "BYTES":
        raise InputError(f"model {model!r}: input {TEXT_INPUT!r} must be BYTES (one UTF-8 string per row), "
                         f"got {datatype}")
    flat = np.asarray(request.inputs[TEXT_INPUT], dtype=object).reshape(-1)
    limit = min(MAX_TEXTS, max_texts)
    if len(flat) > limit:
        raise InputError(f"model {model!r}: input {TEXT_INPUT!r} holds {len(flat)} strings; at most {limit} per "
                         "request (the model's max batch size, and MAX_TEXTS) — split the request")
    if len(flat) == 0:
        raise InputError(f"model {model!r}: input {TEXT_INPUT!r} holds no strings; send at least one")
    texts = []
    for i, value in enumerate(flat):
        raw = value.encode("utf-8") if isinstance(value, str) else value
        if not isinstance(raw, (bytes, bytearray)):
            raise InputError(f"model {model!r}: {TEXT_INPUT!r} element {i} is {type(value).__name__}, not a string")
        if len(raw) > MAX_TEXT_BYTES:
            raise InputError(f"model {model!r}: {TEXT_INPUT!r} element {i} is {len(raw)} bytes; at most "
                             f"{MAX_TEXT_BYTES} bytes per string (text past {text.max_length} tokens is truncated "
                             "anyway) — shorten it")
        try:
            texts.append(bytes(raw).decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise InputError(f"model {model!r}: {TEXT_INPUT!r} element {i} is not valid UTF-8 ({exc})") from None
    feeds = text.encode(texts)
    return replace(request, inputs=feeds, datatypes={n: datatype_of(a.dtype) for n, a in feeds.items()})
