"""SequenceGrouping (serve/padding.py): layout detection, length buckets, pad on merge, cut on split, waste."""

from __future__ import annotations

import numpy as np
import pytest

from tensorforge.core.profiles import parse_shapes, resolve_profile
from tensorforge.core.specs import TensorSpec
from tensorforge.errors import ConfigError, InputError
from tensorforge.serve.config import ModelConfig
from tensorforge.serve.padding import SequenceGrouping, bucket_edges, sequence_layout

H = 3
BERT_IN = [TensorSpec("input_ids", "int64", ("N", "S")), TensorSpec("attention_mask", "int64", ("N", "S")),
           TensorSpec("token_type_ids", "int64", ("N", "S"))]
BERT_OUT = [TensorSpec("last_hidden_state", "float32", ("N", "S", H)), TensorSpec("pooled", "float32", ("N", H))]


def request(rows: int, length: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"input_ids": rng.integers(1, 100, (rows, length), dtype=np.int64),
            "attention_mask": np.ones((rows, length), np.int64),
            "token_type_ids": rng.integers(0, 2, (rows, length), dtype=np.int64)}


def model(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A masked toy encoder: per-position features, and a masked mean over the real positions."""
    mask = feeds["attention_mask"].astype(np.float32)[..., None]
    x = np.stack([feeds["input_ids"], feeds["token_type_ids"], feeds["input_ids"] ** 2], axis=-1).astype(np.float32)
    hidden = x * mask
    pooled = hidden.sum(axis=1) / mask.sum(axis=1)
    return {"last_hidden_state": hidden, "pooled": pooled}


def grouping(**kw) -> SequenceGrouping:
    (p,) = parse_shapes("input_ids:1x1,4x64,8x128")
    g = SequenceGrouping.for_specs(BERT_IN, BERT_OUT, [resolve_profile(p, BERT_IN)], **kw)
    assert g is not None
    return g


def test_layout_needs_a_batch_axis_a_shared_sequence_axis_and_a_mask() -> None:
    layout = sequence_layout(BERT_IN, BERT_OUT)
    assert layout is not None and layout.symbol == "S"
    assert layout.inputs == ("input_ids", "attention_mask", "token_type_ids")
    assert layout.outputs == ("last_hidden_state",)
    no_mask = [s for s in BERT_IN if s.name != "attention_mask"]
    assert sequence_layout(no_mask, BERT_OUT) is None
    static = [TensorSpec(s.name, s.dtype, (1, "S")) for s in BERT_IN]
    assert sequence_layout(static, BERT_OUT) is None
    unnamed = [TensorSpec("last_hidden_state", "float32", ("N", None, H)), TensorSpec("x", "float32", ("N", "unk__3")),
               TensorSpec("embedding", "float32", ("N", "Divembedding_dim_1"))]    # MiniLM's pooled output
    layout = sequence_layout(BERT_IN, unnamed)
    assert layout.outputs == () and layout.loose_outputs == ("last_hidden_state", "x")


def test_default_buckets_are_powers_of_two_and_every_cap_holds() -> None:
    assert bucket_edges(128) == (1, 2, 4, 8, 16, 32, 64, 128)
    assert bucket_edges(128, max_waste=1.0) == (128,)
    assert bucket_edges(6, max_waste=0.0) == (1, 2, 3, 4, 5, 6)
    assert bucket_edges(512, 16) == (16, 32, 64, 128, 256, 512)
    for waste in (0.1, 0.25, 0.5, 0.8):
        edges = bucket_edges(300, 5, max_waste=waste)
        assert edges[-1] == 300 and edges[0] >= 5
        lows = (4,) + edges[:-1]
        assert all(1 - (lo + 1) / hi <= waste + 1e-12 for lo, hi in zip(lows, edges)), (waste, edges)


def test_given_buckets_are_clipped_completed_and_checked_against_the_cap() -> None:
    assert bucket_edges(128, buckets=[16, 64, 300]) == (16, 64, 128)
    assert bucket_edges(128, 8, buckets=[4, 32], max_waste=0.9) == (8, 32, 128)
    with pytest.raises(ConfigError, match=r"bucket 33\.\.128 .*max_padding_waste 0\.5"):
        bucket_edges(128, 32, buckets=[32], max_waste=0.5)
    with pytest.raises(ConfigError, match="sequence_buckets"):
        bucket_edges(128, buckets=[0, 8])
    with pytest.raises(ConfigError, match="max_padding_waste"):
        bucket_edges(128, max_waste=-0.1)


def test_keys_group_by_bucket_and_by_everything_but_the_length() -> None:
    g = grouping(buckets=[16, 64])
    assert g.edges == (16, 64, 128)
    assert g.key(request(1, 20)) == g.key(request(3, 64)) != g.key(request(1, 16)) != g.key(request(1, 65))
    as_int32 = {k: v.astype(np.int32) if k == "input_ids" else v for k, v in request(1, 20).items()}
    assert g.key(as_int32) != g.key(request(1, 20))
    with pytest.raises(InputError, match="one length"):
        g.key({**request(1, 20), "attention_mask": np.ones((1, 21), np.int64)})


def test_merge_pads_masks_and_split_gives_each_request_its_own_result() -> None:
    g = grouping(max_waste=1.0)
    reqs = [request(1, 7, 1), request(2, 33, 2), request(1, 120, 3)]
    batch = g.merge(reqs)
    assert {k: v.shape for k, v in batch.items()} == {k: (4, 120) for k in reqs[0]}
    assert batch["attention_mask"][0].tolist() == [1] * 7 + [0] * 113
    assert (batch["input_ids"][1:3, 33:] == 0).all() and (batch["input_ids"][1:3, :33] == reqs[1]["input_ids"]).all()
    parts = g.split(model(batch), reqs)
    for req, part in zip(reqs, parts):
        alone = model(req)
        assert part["last_hidden_state"].shape == alone["last_hidden_state"].shape
        np.testing.assert_array_equal(part["last_hidden_state"], alone["last_hidden_state"])
        np.testing.assert_allclose(part["pooled"], alone["pooled"], rtol=1e-6)


def test_unmasked_padding_would_change_the_result() -> None:
    """The split is only right because the mask hides the padding: the same batch with mask 1 differs."""
    g = grouping(max_waste=1.0)
    reqs = [request(1, 7, 1), request(1, 120, 3)]
    batch = g.merge(reqs)
    batch["attention_mask"][:] = 1
    part = g.split(model(batch), reqs)[0]
    assert not np.allclose(part["pooled"], model(reqs[0])["pooled"])


def test_one_request_passes_through_and_waste_is_counted() -> None:
    g = grouping()
    one = request(2, 9)
    merged = g.merge([one])
    assert all(merged[k] is one[k] for k in one)
    assert g.padding_stats()["padding_tokens"] == 0 and g.padding_stats()["real_tokens"] == 18
    g.merge([request(1, 10), request(3, 4)])          # 10 + 12 real, 4 rows x 10 = 40 positions
    stats = g.padding_stats()
    assert (stats["real_tokens"], stats["padding_tokens"]) == (18 + 22, 18)
    assert stats["waste_ratio"] == pytest.approx(18 / 58)


def test_loose_outputs_are_cut_when_they_have_the_padded_length() -> None:
    outs = [TensorSpec("hidden", "float32", ("N", None, H)), TensorSpec("logits", "float32", ("N", None))]
    g = SequenceGrouping.for_specs(BERT_IN, outs, max_length=64)
    assert g is not None and g.edges[-1] == 64
    reqs = [request(1, 5), request(1, 8)]
    got = g.split({"hidden": np.zeros((2, 8, H), np.float32), "logits": np.zeros((2, 2), np.float32)}, reqs)
    assert got[0]["hidden"].shape == (1, 5, H) and got[0]["logits"].shape == (1, 2)


def test_split_refuses_outputs_without_a_batch_axis() -> None:
    g = grouping()
    with pytest.raises(ValueError, match="max_batch_size 1"):
        g.split({"last_hidden_state": np.zeros((3, 8, H), np.float32)}, [request(1, 8), request(1, 4)])


def test_without_a_profile_or_a_bound_there_is_no_padding() -> None:
    assert SequenceGrouping.for_specs(BERT_IN, BERT_OUT) is None
    assert SequenceGrouping.for_specs(BERT_IN, BERT_OUT, buckets=[32, 96]).edges == (32, 96)


def test_model_config_keys() -> None:
    c = ModelConfig.from_dict({"sequence_buckets": [64, 16, 16], "max_padding_waste": 0.25})
    assert c.sequence_buckets == (16, 64) and c.max_padding_waste == 0.25
    assert ModelConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ConfigError, match="sequence_buckets"):
        ModelConfig.from_dict({"sequence_buckets": [0]})
    with pytest.raises(ConfigError, match="max_padding_waste"):
        ModelConfig.from_dict({"max_padding_waste": 2})
