"""An engine carries its tokenizer: a second payload, recorded and checksummed in the manifest.

bert_tiny is built with a tokenizer made here with the ``tokenizers`` library (a word-level vocab, no
download); the file must hold it byte for byte, record its sha256, the token inputs and the profile's
longest sequence, and refuse a tampered or corrupt one with EngineFileError.
"""

from __future__ import annotations

import dataclasses

import pytest

from tensorforge.engine.build import BuildOptions, build
from tensorforge.engine.format import TOKENIZER_PAYLOAD, read_engine, write_engine
from tensorforge.engine.manifest import parse_manifest
from tensorforge.engine.tokenizer import load_tokenizer, tokenizer_payload
from tensorforge.errors import ConfigError, EngineFileError

tokenizers = pytest.importorskip("tokenizers", reason="the tokenizer payload needs the 'tokenizers' package")

SHAPES = "input_ids:1x4,2x16,4x32"
WORDS = "the a cat dog sat on mat quick brown fox jumps over lazy".split()


def tiny_tokenizer_json() -> str:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, **{w: i + 4 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                       special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return tok.to_str()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("tok")
    tok_path = root / "tokenizer.json"
    tok_path.write_text(tiny_tokenizer_json())
    out = root / "bert.tfe"
    build("bert_tiny", out, BuildOptions(shapes=SHAPES, tokenizer=str(tok_path), verify=False))
    return out, tok_path


def test_engine_holds_and_records_the_tokenizer(built):
    out, tok_path = built
    manifest, payloads = read_engine(out)
    assert payloads[TOKENIZER_PAYLOAD] == tok_path.read_bytes()
    record = manifest.tokenizer
    assert record is not None
    assert record.payload == TOKENIZER_PAYLOAD
    assert record.sha256 == manifest.payloads[TOKENIZER_PAYLOAD].sha256
    assert record.max_length == 32                      # the profile's longest sequence
    assert record.inputs == ("input_ids", "attention_mask", "token_type_ids")
    tok = load_tokenizer(str(out), record, payloads[TOKENIZER_PAYLOAD])
    long = tok.encode(" ".join(WORDS * 5))
    assert len(long.ids) == 32                          # truncated to max_length, never padded
    assert len(tok.encode("the cat").ids) == 4


def test_tampered_tokenizer_payload_is_refused(built, tmp_path):
    out, _ = built
    data = out.read_bytes()
    assert data.count(b'"[UNK]"') >= 1
    bad = tmp_path / "bad.tfe"
    bad.write_bytes(data.replace(b'"[UNK]"', b'"[UNX]"'))      # same length: only the checksums can tell
    with pytest.raises(EngineFileError):
        read_engine(bad)


def test_corrupt_tokenizer_with_valid_checksums_fails_at_load(built, tmp_path):
    """A payload whose checksums agree but that is no tokenizer: read_engine passes, parsing refuses."""
    out, _ = built
    manifest, payloads = read_engine(out)
    garbage = b'{"version": "1.0", "model": {"type": "NoSuchModel"}}'
    from tensorforge.core.hashing import sha256

    record = dataclasses.replace(manifest.tokenizer, sha256=sha256(garbage))
    fresh = dataclasses.replace(manifest, tokenizer=record, payloads={}, format=None, format_version=None)
    path = write_engine(tmp_path / "corrupt.tfe", fresh, {**payloads, TOKENIZER_PAYLOAD: garbage})
    m2, p2 = read_engine(path)
    with pytest.raises(EngineFileError, match="not a readable tokenizer"):
        load_tokenizer(str(path), m2.tokenizer, p2[TOKENIZER_PAYLOAD])


def test_manifest_record_must_match_inputs_and_payloads(built):
    out, _ = built
    manifest, payloads = read_engine(out)
    raw = manifest.to_dict()
    raw["tokenizer"]["inputs"] = ["input_ids", "pixels"]
    with pytest.raises(EngineFileError, match="pixels"):
        parse_manifest("x.tfe", raw)
    raw = manifest.to_dict()
    raw["tokenizer"]["sha256"] = "0" * 64
    with pytest.raises(EngineFileError, match="payload table"):
        parse_manifest("x.tfe", raw)
    raw = manifest.to_dict()
    raw["tokenizer"]["max_length"] = 0
    with pytest.raises(EngineFileError, match="tokenizer"):
        parse_manifest("x.tfe", raw)


def test_bad_tokenizer_option_names_it(built, tmp_path):
    out, _ = built
    manifest, _ = read_engine(out)
    inputs, profiles = manifest.inputs, manifest.profiles
    with pytest.raises(ConfigError, match="no such file"):
        tokenizer_payload(str(tmp_path / "missing.json"), inputs, profiles)
    not_tok = tmp_path / "not.json"
    not_tok.write_text('{"hello": 1}')
    with pytest.raises(ConfigError, match="not a `tokenizers` tokenizer.json"):
        tokenizer_payload(str(not_tok), inputs, profiles)
    no_ids = [dataclasses.replace(s, name="pixels") for s in inputs[:1]]
    with pytest.raises(ConfigError, match="input_ids"):
        tokenizer_payload(str(built[1]), no_ids, ())
