"""Raw text over KServe: an engine that carries its tokenizer takes a BYTES ``text`` input, HTTP and gRPC.

bert_tiny is built with a word-level tokenizer made here (``tokenizers``, no download) and served next to
the same model built without one. Three sentences of different lengths sent as ``text`` must give what
the same model gives for the token tensors tokenized on the client (padded to the longest); misuse is a
400 naming the problem: text and tokens together, text that is not BYTES, too many or too long strings,
text to a model whose engine has no tokenizer (naming ``build --tokenizer``).
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import tritonclient.grpc as tg
import tritonclient.http as th
from tritonclient.utils import InferenceServerException

from tensorforge.core.reference import compare
from tensorforge.core.tolerances import tolerance
from tensorforge.engine.build import BuildOptions, build
from tensorforge.models import minilm
from tensorforge.serve import InferenceServer, ServerConfig
from tensorforge.serve.text import MAX_TEXT_BYTES

pytest.importorskip("tokenizers", reason="serving text needs the 'tokenizers' package")

SHAPES = "input_ids:1x4,2x64,4x128"
WORDS = "the a cat dog sat on mat quick brown fox jumps over lazy".split()
SENTENCES = ["the cat sat", "the quick brown fox jumps over the lazy dog",
             "a dog sat on the mat and the cat sat on a dog and the fox jumps over a lazy cat on the mat"]
OUTPUTS = ("last_hidden_state", "pooler_output")


def tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, **{w: i + 4 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                       special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return tok


def client_tokens(tok, texts) -> dict[str, np.ndarray]:
    """What a client would send: the texts tokenized and padded to the longest."""
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    enc = tok.encode_batch(list(texts))
    return {"input_ids": np.array([e.ids for e in enc], np.int64),
            "attention_mask": np.array([e.attention_mask for e in enc], np.int64),
            "token_type_ids": np.array([e.type_ids for e in enc], np.int64)}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("text")
    (root / "tokenizer.json").write_text(tiny_tokenizer().to_str())
    build("bert_tiny", root / "bert.tfe", BuildOptions(shapes=SHAPES, tokenizer=str(root / "tokenizer.json")))
    build("bert_tiny", root / "plain.tfe", BuildOptions(shapes=SHAPES, verify=False))
    config = ServerConfig(http_port=0, grpc_port=0, metrics_port=None)
    with InferenceServer([root / "bert.tfe", root / "plain.tfe"], config=config) as srv:
        yield srv


def _http(server, model, tensors, binary=True):
    client = th.InferenceServerClient(server.http_url)
    inputs = []
    for name, (value, datatype) in tensors.items():
        inp = th.InferInput(name, list(value.shape), datatype)
        inp.set_data_from_numpy(value, binary_data=binary)
        inputs.append(inp)
    result = client.infer(model, inputs)
    return {n: result.as_numpy(n) for n in OUTPUTS}


def _grpc(server, model, tensors):
    client = tg.InferenceServerClient(server.grpc_target)
    inputs = []
    for name, (value, datatype) in tensors.items():
        inp = tg.InferInput(name, list(value.shape), datatype)
        inp.set_data_from_numpy(value)
        inputs.append(inp)
    result = client.infer(model, inputs)
    return {n: result.as_numpy(n) for n in OUTPUTS}


def _text(texts) -> dict[str, tuple[np.ndarray, str]]:
    return {"text": (np.array([t.encode() for t in texts], dtype=object), "BYTES")}


def _tokens(feeds) -> dict[str, tuple[np.ndarray, str]]:
    return {n: (v, "INT64") for n, v in feeds.items()}


def _same(got, want):
    assert got["last_hidden_state"].shape == want["last_hidden_state"].shape
    c = compare([got[n] for n in OUTPUTS], [want[n] for n in OUTPUTS], list(OUTPUTS))
    assert c.within(tolerance("fp32")), c.describe()


def test_metadata_lists_the_text_input(server):
    meta = httpx.get(f"http://{server.http_url}/v2/models/bert").json()
    assert {"name": "text", "datatype": "BYTES", "shape": [-1]} in meta["inputs"]
    assert "input_ids" in [i["name"] for i in meta["inputs"]]
    grpc_meta = tg.InferenceServerClient(server.grpc_target).get_model_metadata("bert")
    assert "text" in [i.name for i in grpc_meta.inputs]
    plain = httpx.get(f"http://{server.http_url}/v2/models/plain").json()
    assert "text" not in [i["name"] for i in plain["inputs"]]


@pytest.mark.parametrize("protocol", ["http-binary", "http-json", "grpc"])
def test_text_gives_what_client_tokens_give(server, protocol):
    feeds = client_tokens(tiny_tokenizer(), SENTENCES)
    assert len(set(int(m.sum()) for m in feeds["attention_mask"])) == 3        # three different lengths
    if protocol == "grpc":
        got, want = _grpc(server, "bert", _text(SENTENCES)), _grpc(server, "bert", _tokens(feeds))
    else:
        binary = protocol == "http-binary"
        got = _http(server, "bert", _text(SENTENCES), binary)
        want = _http(server, "bert", _tokens(feeds), binary)
    _same(got, want)


def test_long_text_is_truncated_and_short_text_padded_to_the_profile(server):
    long = _http(server, "bert", _text([" ".join(WORDS * 20)]))
    assert long["last_hidden_state"].shape[:2] == (1, 128)          # the profile's max sequence
    short = _http(server, "bert", _text(["cat"]))                     # [CLS] cat [SEP]: 3 tokens, min is 4
    assert short["last_hidden_state"].shape[:2] == (1, 4)


def _refused(call, *fragments):
    with pytest.raises(InferenceServerException) as info:
        call()
    assert str(info.value.status()) in ("400", "StatusCode.INVALID_ARGUMENT"), str(info.value)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_misuse_is_a_400_naming_the_problem(server, protocol):
    send = _grpc if protocol == "grpc" else _http
    feeds = client_tokens(tiny_tokenizer(), SENTENCES)
    _refused(lambda: send(server, "bert", {**_text(SENTENCES), **_tokens(feeds)}), "not both")
    _refused(lambda: send(server, "bert", {"text": (np.array([1, 2, 3], np.int64), "INT64")}), "must be BYTES")
    _refused(lambda: send(server, "bert", _text(["the cat"] * 5)), "5 strings", "at most 4")
    _refused(lambda: send(server, "bert", _text(["cat " * (MAX_TEXT_BYTES // 4 + 1)])), f"{MAX_TEXT_BYTES} bytes")
    _refused(lambda: send(server, "plain", _text(SENTENCES)), "build --tokenizer")
    # the model still serves afterwards
    _same(send(server, "bert", _text(SENTENCES)), send(server, "bert", _tokens(feeds)))


@pytest.mark.skipif(not minilm.available(), reason=f"needs the text extra: {minilm.unavailable_reason()}")
def test_minilm_with_its_shipped_tokenizer(tmp_path):
    """The real MiniLM built with tokenizer='auto': text over gRPC embeds as the client-side tokens do."""
    from tokenizers import Tokenizer

    from tensorforge.models.sentences import SENTENCES as REAL
    from tensorforge.models.sentences import model_dir

    path = tmp_path / "minilm.tfe"
    build(minilm.NAME, path, BuildOptions(shapes=SHAPES, tokenizer="auto", verify=False))
    texts = [REAL[0], " ".join(REAL[1:3]), " ".join(REAL[3:9])]
    tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tok.enable_truncation(max_length=128)
    feeds = client_tokens(tok, texts)
    config = ServerConfig(http_port=None, grpc_port=0, metrics_port=None)
    with InferenceServer([path], config=config) as srv:
        client = tg.InferenceServerClient(srv.grpc_target)

        def embed(tensors):
            inputs = []
            for name, (value, datatype) in tensors.items():
                inp = tg.InferInput(name, list(value.shape), datatype)
                inp.set_data_from_numpy(value)
                inputs.append(inp)
            return client.infer("minilm", inputs).as_numpy("embedding")

        got, want = embed(_text(texts)), embed(_tokens(feeds))
    assert got.shape == (3, minilm.HIDDEN)
    c = compare([got], [want], ["embedding"])
    assert c.within(tolerance("fp32")), c.describe()
