"""Shape profiles: parsing --shapes, resolving against a model's inputs, defaults, and the feed check."""

from __future__ import annotations

import numpy as np
import pytest

from tensorforge.core.feeds import check_feeds
from tensorforge.core.profiles import (
    InputProfile,
    ShapeProfile,
    default_profile,
    parse_shapes,
    profile_for,
    resolve_profile,
    resolve_profiles,
)
from tensorforge.core.specs import TensorSpec
from tensorforge.errors import ConfigError, InputError

BERT = [TensorSpec(n, "int64", ("N", "S")) for n in ("input_ids", "attention_mask", "token_type_ids")]
CNN = [TensorSpec("input", "float32", ("N", 3, 32, 32))]


def test_parse_one_and_several_profiles() -> None:
    (p,) = parse_shapes("input_ids:1x16,8x128,32x512")
    assert p.inputs == (InputProfile("input_ids", (1, 16), (8, 128), (32, 512)),)
    assert p.text() == "input_ids:1x16,8x128,32x512"
    a, b = parse_shapes(["input_ids:1x1,1x64,1x128", "x:1x3,2x3,4x3; y:2,2,2"])
    assert a.get("input_ids").max == (1, 128)
    assert [i.name for i in b.inputs] == ["x", "y"] and b.get("y").opt == (2,)
    assert parse_shapes(None) == () and parse_shapes([p]) == (p,)


@pytest.mark.parametrize("bad", ["", "input_ids", "input_ids:1x16,8x128", "input_ids:1x16,8x128,32x512,64x512",
                                 "input_ids:1xa,8x128,32x512", ":1,2,3", "input_ids:8x128,1x16,32x512",
                                 "input_ids:1x16,8x128,32", "input_ids:0x16,8x128,32x512",
                                 "a:1,2,3 a:1,2,3"])
def test_bad_specs_are_config_errors(bad: str) -> None:
    with pytest.raises(ConfigError, match="shapes"):
        parse_shapes(bad)


def test_shared_symbols_follow_the_named_input() -> None:
    (p,) = parse_shapes("input_ids:1x16,8x128,32x512")
    r = resolve_profile(p, BERT)
    assert [i.name for i in r.inputs] == ["input_ids", "attention_mask", "token_type_ids"]
    assert r.shapes("opt") == {n: (8, 128) for n in ("input_ids", "attention_mask", "token_type_ids")}
    with pytest.raises(ValueError):
        r.shapes("best")


def test_resolve_errors_name_the_input() -> None:
    with pytest.raises(ConfigError, match="no input 'ids'.*input_ids"):
        resolve_profile(parse_shapes("ids:1x1,1x2,1x3")[0], BERT)
    with pytest.raises(ConfigError, match="rank 2"):
        resolve_profile(parse_shapes("input_ids:1,2,3")[0], BERT)
    with pytest.raises(ConfigError, match="must agree"):
        resolve_profile(parse_shapes("input_ids:1x1,2x2,3x3;attention_mask:1x1,2x2,3x4")[0], BERT)
    with pytest.raises(ConfigError, match="fixed at 3"):
        resolve_profile(parse_shapes("input:1x1x32x32,2x3x32x32,4x3x32x32")[0], CNN)
    with pytest.raises(ConfigError, match="max_batch 16"):
        resolve_profile(parse_shapes("input_ids:1x1,8x8,32x8")[0], BERT, max_batch=16)


def test_defaults() -> None:
    p = default_profile(BERT, max_sequence=512)
    assert p.get("input_ids") == InputProfile("input_ids", (1, 1), (8, 128), (8, 512))
    p = default_profile(BERT, max_batch=32)
    assert p.get("token_type_ids") == InputProfile("token_type_ids", (1, 1), (8, 128), (32, 128))
    assert default_profile(BERT, max_batch=2, max_sequence=64).get("input_ids").opt == (2, 64)
    # Only the batch is dynamic: no default profile (max_batch stays the one bound, as before).
    assert resolve_profiles((), CNN) == ()
    assert len(resolve_profiles((), BERT)) == 1


def test_serialization_round_trip_and_errors() -> None:
    p = resolve_profile(parse_shapes("input_ids:1x16,8x128,32x512")[0], BERT)
    assert ShapeProfile.from_dict(p.to_dict()) == p
    for bad in ({}, {"x": {"min": [1], "opt": [2]}}, {"x": {"min": [1], "opt": [2], "max": ["3"]}},
                {"x": {"min": [2], "opt": [1], "max": [3]}}):
        with pytest.raises(ValueError):
            ShapeProfile.from_dict(bad)


def _feeds(n: int, s: int) -> dict[str, np.ndarray]:
    return {spec.name: np.zeros((n, s), dtype=np.int64) for spec in BERT}


def test_feed_check_enforces_profiles() -> None:
    profiles = resolve_profiles(parse_shapes(["input_ids:1x16,8x128,32x512", "input_ids:64x1,64x8,64x16"]), BERT)
    check_feeds(_feeds(1, 16), BERT, profiles=profiles)
    check_feeds(_feeds(32, 512), BERT, profiles=profiles)
    check_feeds(_feeds(64, 10), BERT, profiles=profiles)          # the second profile
    assert profile_for(profiles, {"input_ids": (64, 10)}) is profiles[1]
    with pytest.raises(InputError) as info:
        check_feeds(_feeds(2, 600), BERT, profiles=profiles, model="bert")
    msg = str(info.value)
    assert "'input_ids'" in msg and "[2, 600]" in msg and "max [32, 512]" in msg and "min [1, 16]" in msg
    assert "2 profiles" in msg and "--shapes" in msg
    with pytest.raises(InputError, match=r"\[2, 8\]"):
        check_feeds(_feeds(2, 8), BERT, profiles=profiles[:1])      # under min
    check_feeds(_feeds(2, 600), BERT)                               # no profiles: no such check


def test_random_inputs_use_the_profile_opt_for_non_batch_axes() -> None:
    from tensorforge.core.specs import concrete_shape, random_inputs

    opt = resolve_profile(parse_shapes("input_ids:1x16,8x128,32x512")[0], BERT).shapes("opt")
    assert concrete_shape(BERT[0], 3) == (3, 1)                     # no profile: 1, as before
    assert concrete_shape(BERT[0], 3, opt) == (3, 128)              # the batch stays the caller's
    feeds = random_inputs(BERT, 2, seed=0, opt=opt)
    assert {k: v.shape for k, v in feeds.items()} == {s.name: (2, 128) for s in BERT}
