"""Variable-length requests without client padding: a real server pads a BERT batch and cuts it back.

bert_tiny is built with a shape profile (batch 1..4, sequence 4..128); three concurrent clients of
lengths 7, 33 and 120 are forced into one batch (preferred batch 3, one length bucket, a window of a
minute) and each must get what the engine computes for its request alone. Shapes outside the profile
are refused with a 400 naming the input, its shape and the profile.
"""

from __future__ import annotations

import threading

import httpx
import numpy as np
import pytest
import tritonclient.grpc as tg
import tritonclient.http as th
from prometheus_client.parser import text_string_to_metric_families
from serve_testkit import build_engine, write_config
from tritonclient.utils import InferenceServerException

import tensorforge
from tensorforge.core.reference import compare
from tensorforge.core.tolerances import tolerance
from tensorforge.engine.build import BuildOptions, build
from tensorforge.errors import ConfigError
from tensorforge.models import minilm
from tensorforge.models.bert import bert_inputs
from tensorforge.serve import InferenceServer, ServerConfig
from tensorforge.serve.padding import SequenceGrouping

SHAPES = "input_ids:1x4,2x64,4x128"
LENGTHS = (7, 33, 120)
OUTPUTS = ("last_hidden_state", "pooler_output")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("lengths")
    (root / "bert" / "1").mkdir(parents=True)
    build("bert_tiny", root / "bert" / "1" / "model.tfe", BuildOptions(shapes=SHAPES))
    # max_batch_size 8 asks for more than the profile's max batch 4: the server caps it
    write_config(root / "bert", max_batch_size=8, preferred_batch_sizes=[3], max_queue_delay_ms=60_000,
                 idle_dispatch=False, sequence_buckets=[128], threads_per_instance=1)
    (root / "mlp" / "1").mkdir(parents=True)
    build_engine("tiny_mlp", root / "mlp" / "1" / "model.tfe")
    return root


@pytest.fixture(scope="module")
def server(repo):
    config = ServerConfig(http_port=0, grpc_port=0, metrics_port=0)
    with InferenceServer(repository=repo, config=config) as srv:
        yield srv


@pytest.fixture(scope="module")
def alone(repo):
    """Each length's inputs (distinct tokens per client) and the engine's outputs for it run alone."""
    session = tensorforge.load(repo / "bert" / "1" / "model.tfe", threads=1)
    cases = {}
    for i, n in enumerate(LENGTHS):
        feeds = bert_inputs(1, n, 1000, seed=10 + i)
        cases[n] = (feeds, session.run(feeds))
    return cases


def _batches_of(server, rows: int) -> int:
    sizes = server.repository.get("bert").batcher.stats()["batch_sizes"]
    return sizes.get(rows, {"count": 0})["count"]


def _run_concurrently(call, keys=LENGTHS) -> dict[int, dict[str, np.ndarray]]:
    results: dict[int, dict[str, np.ndarray]] = {}
    errors: list[BaseException] = []

    def client(n: int) -> None:
        try:
            results[n] = call(n)
        except BaseException as exc:  # reported below, with the length that failed
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    return results


def _assert_each_as_alone(results, alone) -> None:
    for n in LENGTHS:
        want = alone[n][1]
        got = results[n]
        assert got["last_hidden_state"].shape == (1, n, 128) and got["pooler_output"].shape == (1, 128)
        c = compare([got[k] for k in OUTPUTS], [want[k] for k in OUTPUTS], OUTPUTS)
        assert c.within(tolerance("fp32")), f"length {n}: {c.describe()}"


def test_model_is_padded_and_capped_to_the_profile(server):
    mv = server.repository.get("bert")
    assert isinstance(mv.grouping, SequenceGrouping)
    assert mv.grouping.edges == (128,) and mv.config.batcher.max_batch_size == 4
    assert mv.config.batcher.preferred_batch_sizes == (3,)
    assert not isinstance(server.repository.get("mlp").grouping, SequenceGrouping)
    with pytest.raises(ConfigError, match="'mlp'.*sequence_buckets"):      # no sequence axis to pad
        server.repository.load("mlp", '{"sequence_buckets": [8]}')
    assert server.repository.get("mlp").config.sequence_buckets is None     # the old version keeps serving


def test_three_lengths_share_one_batch_over_http(server, alone):
    def call(n):
        client = th.InferenceServerClient(server.http_url)
        inputs = []
        for name, value in alone[n][0].items():
            inp = th.InferInput(name, list(value.shape), "INT64")
            inp.set_data_from_numpy(value, binary_data=True)
            inputs.append(inp)
        res = client.infer("bert", inputs, outputs=[th.InferRequestedOutput(k, binary_data=True) for k in OUTPUTS])
        return {k: res.as_numpy(k) for k in OUTPUTS}

    before = _batches_of(server, 3)
    padding_before = server.repository.get("bert").grouping.padding_stats()
    results = _run_concurrently(call)
    assert _batches_of(server, 3) == before + 1          # the three went as one batch
    _assert_each_as_alone(results, alone)
    after = server.repository.get("bert").grouping.padding_stats()
    assert after["real_tokens"] - padding_before["real_tokens"] == sum(LENGTHS)
    assert after["padding_tokens"] - padding_before["padding_tokens"] == 3 * 120 - sum(LENGTHS)


def test_three_lengths_share_one_batch_over_grpc(server, alone):
    def call(n):
        client = tg.InferenceServerClient(server.grpc_target)
        inputs = []
        for name, value in alone[n][0].items():
            inp = tg.InferInput(name, list(value.shape), "INT64")
            inp.set_data_from_numpy(value)
            inputs.append(inp)
        res = client.infer("bert", inputs)
        return {k: res.as_numpy(k) for k in OUTPUTS}

    before = _batches_of(server, 3)
    results = _run_concurrently(call)
    assert _batches_of(server, 3) == before + 1
    _assert_each_as_alone(results, alone)


def test_out_of_profile_lengths_are_refused_with_400(server):
    client = th.InferenceServerClient(server.http_url)
    for n, words in ((129, "max [4, 128]"), (2, "min [1, 4]")):
        inputs = []
        for name, value in bert_inputs(1, n, 1000).items():
            inp = th.InferInput(name, list(value.shape), "INT64")
            inp.set_data_from_numpy(value)
            inputs.append(inp)
        with pytest.raises(InferenceServerException) as info:
            client.infer("bert", inputs)
        msg = str(info.value)
        assert info.value.status() == "400", msg
        assert "'input_ids'" in msg and f"[1, {n}]" in msg and words in msg and "--shapes" in msg, msg
    grpc_client = tg.InferenceServerClient(server.grpc_target)
    inputs = []
    for name, value in bert_inputs(1, 129, 1000).items():
        inp = tg.InferInput(name, list(value.shape), "INT64")
        inp.set_data_from_numpy(value)
        inputs.append(inp)
    with pytest.raises(InferenceServerException) as info:
        grpc_client.infer("bert", inputs)
    assert "INVALID_ARGUMENT" in str(info.value.status()) and "max [4, 128]" in str(info.value)


def test_padding_waste_is_reported(server, alone):
    stats = httpx.get(f"http://{server.http_url}/v2/models/bert/stats").json()["model_stats"][0]
    padding = stats["tensorforge"]["padding"]
    assert padding["padding_tokens"] > 0 and padding["bucket_edges"] == [128]
    total = padding["real_tokens"] + padding["padding_tokens"]
    assert padding["waste_ratio"] == pytest.approx(padding["padding_tokens"] / total)
    families = {f.name: f for f in text_string_to_metric_families(httpx.get(server.metrics_url).text)}
    ratio = [s for s in families["tensorforge_padding_waste_ratio"].samples if s.labels["model"] == "bert"]
    assert ratio and ratio[0].value == pytest.approx(padding["waste_ratio"])
    kinds = {s.labels["kind"]: s.value for s in families["tensorforge_sequence_tokens"].samples
             if s.name.endswith("_total") and s.labels["model"] == "bert"}
    assert kinds == {"real": padding["real_tokens"], "padding": padding["padding_tokens"]}
    assert not [s for s in families["tensorforge_padding_waste_ratio"].samples if s.labels["model"] == "mlp"]


needs_minilm = pytest.mark.skipif(not minilm.available(), reason=f"needs the text extra: {minilm.unavailable_reason()}")


@needs_minilm
def test_real_sentences_of_three_lengths_in_one_minilm_batch(tmp_path):
    """The trained MiniLM, real sentences tokenized without padding: one padded batch, each embedding as
    alone (its pooled output has a named axis of its own, never cut)."""
    from tokenizers import Tokenizer

    from tensorforge.models.sentences import SENTENCES, model_dir

    path = tmp_path / "minilm.tfe"
    build(minilm.NAME, path, BuildOptions(shapes=SHAPES))
    tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=128)
    texts = [SENTENCES[0], " ".join(SENTENCES[1:4]), " ".join(SENTENCES[4:16])]
    reqs = [{"input_ids": np.array([e.ids], np.int64), "attention_mask": np.array([e.attention_mask], np.int64),
             "token_type_ids": np.array([e.type_ids], np.int64)} for e in tok.encode_batch(texts)]
    assert len({r["input_ids"].shape[1] for r in reqs}) == 3
    write_config(tmp_path / "cfg", max_batch_size=4, preferred_batch_sizes=[3], max_queue_delay_ms=60_000,
                 idle_dispatch=False, max_padding_waste=1.0, threads_per_instance=1)
    session = tensorforge.load(path, threads=1)
    config = ServerConfig(http_port=None, grpc_port=0, metrics_port=None)
    with InferenceServer([path], config=config) as srv:
        srv.repository.load("minilm", (tmp_path / "cfg" / "config.json").read_text())

        def call(i):
            inputs = []
            for name, value in reqs[i].items():
                inp = tg.InferInput(name, list(value.shape), "INT64")
                inp.set_data_from_numpy(value)
                inputs.append(inp)
            return {"embedding": tg.InferenceServerClient(srv.grpc_target).infer("minilm", inputs).as_numpy("embedding")}

        results = _run_concurrently(call, keys=range(3))
        stats = srv.repository.get("minilm").batcher.stats()
        assert stats["batches"] == 1 and stats["batch_sizes"][3]["count"] == 1      # one batch of the three
    for i, req in enumerate(reqs):
        want = session.run(req)["embedding"]
        got = results[i]["embedding"]
        assert got.shape == (1, minilm.HIDDEN)
        c = compare([got], [want], ["embedding"])
        assert c.within(tolerance("fp32")), c.describe()
