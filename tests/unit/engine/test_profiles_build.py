"""Shape profiles through the build: recorded in the manifest, verified at min/opt/max, enforced by sessions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tensorforge.engine.build import BuildOptions, build
from tensorforge.engine.manifest import parse_manifest
from tensorforge.engine.runtime import Engine
from tensorforge.errors import ConfigError, EngineFileError, InputError
from tensorforge.models.bert import bert_inputs

SHAPES = "input_ids:1x4,2x16,4x32"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Engine, object, object]:
    path = tmp_path_factory.mktemp("prof") / "bert_tiny.tfe"
    engine, report = build("bert_tiny", path, BuildOptions(shapes=SHAPES))
    return engine, report, path


def test_profiles_recorded_and_verified(built: tuple) -> None:
    engine, report, path = built
    (p,) = engine.manifest.profiles
    assert [i.name for i in p.inputs] == ["input_ids", "attention_mask", "token_type_ids"]
    assert p.get("token_type_ids").max == (4, 32)
    assert Engine.load(path).manifest.profiles == engine.manifest.profiles      # through the file
    points = engine.manifest.build.verification["profile_points"]
    assert [(r["point"], tuple(r["shapes"]["input_ids"])) for r in points] == [
        ("min", (1, 4)), ("opt", (2, 16)), ("max", (4, 32))]
    assert all(r["passed"] and r["max_norm_err"] < 1e-5 for r in points)
    assert any("input_ids:1x4,2x16,4x32" in n and "as given" in n for n in report.notes)
    assert any("verified at 3 profile points" in n for n in report.notes)


def test_session_enforces_the_profile(built: tuple) -> None:
    engine, _, _ = built
    s = engine.session()
    out = s.run(bert_inputs(3, 20, 1000))
    assert out["last_hidden_state"].shape == (3, 20, 128)
    with pytest.raises(InputError) as info:
        s.run(bert_inputs(2, 64, 1000))
    msg = str(info.value)
    assert "'input_ids'" in msg and "[2, 64]" in msg and "max [4, 32]" in msg
    with pytest.raises(InputError, match="min"):
        s.run(bert_inputs(1, 2, 1000))


def test_defaults_are_derived_and_printed() -> None:
    engine, report = build("bert_tiny", options=BuildOptions(max_batch=4))
    (p,) = engine.manifest.profiles
    assert p.get("input_ids").min == (1, 1) and p.get("input_ids").opt == (4, 128)
    assert p.get("input_ids").max == (4, 128)           # max_batch and the model's 128 positions
    note = next(n for n in report.notes if n.startswith("shape profiles"))
    assert "default, derived from the model" in note and "sequence 1..128" in note
    assert "0.0587 GMACs per sample at opt (input_ids 4x128)" in note     # S counted, not taken as unknown


def test_macs_at_counts_the_sequence() -> None:
    from tensorforge.engine.profile_step import macs_at
    from tensorforge.models import bert, zoo

    m = zoo.build("bert_tiny")
    feeds = {n: (2, 64) for n in ("input_ids", "attention_mask", "token_type_ids")}
    assert macs_at(m, feeds) == 64 * bert.BERT_TINY.macs_per_token(64) + 128 * 128


def test_cnn_with_only_a_dynamic_batch_records_none() -> None:
    engine, _ = build("tiny_cnn", options=BuildOptions(max_batch=4))
    assert engine.manifest.profiles == ()
    assert "profiles" not in engine.manifest.to_dict()
    s = engine.session()
    assert s.run(np.zeros((4, 3, 32, 32), np.float32))["logits"].shape == (4, 10)


def test_old_manifest_without_profiles_loads_and_bad_ones_are_refused(built: tuple) -> None:
    engine, _, _ = built
    raw = json.loads(json.dumps(engine.manifest.to_dict()))
    assert raw["profiles"][0]["input_ids"] == {"min": [1, 4], "opt": [2, 16], "max": [4, 32]}
    old = dict(raw)
    del old["profiles"]
    assert parse_manifest("old.tfe", old).profiles == ()
    for bad in ({"input_ids": {"min": [1], "opt": [2], "max": [3]}}, "x", {"input_ids": {"min": [2, 2]}}):
        with pytest.raises(EngineFileError, match="profiles"):
            parse_manifest("bad.tfe", dict(raw, profiles=[bad]))


def test_bad_shapes_fail_fast() -> None:
    with pytest.raises(ConfigError, match="shapes"):
        BuildOptions(shapes="input_ids:8x128,1x16,32x512")
    with pytest.raises(ConfigError, match="no input 'ids'"):
        build("bert_tiny", options=BuildOptions(shapes="ids:1x4,2x16,4x32"))


def test_cli_build_with_shapes(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from tensorforge.cli.main import main

    out, rep = tmp_path / "b.tfe", tmp_path / "r.json"
    assert main(["build", "bert_tiny", "--shapes", "input_ids:1x8,2x16,2x24", "-o", str(out),
                 "--report", str(rep)]) == 0
    text = capsys.readouterr().out
    assert "input_ids:1x8,2x16,2x24" in text and "verified at 3 profile points" in text
    assert Engine.load(out).manifest.profiles[0].get("attention_mask").max == (2, 24)
    assert main(["build", "bert_tiny", "--shapes", "input_ids:1x8", "-o", str(out)]) != 0
    assert "shapes" in capsys.readouterr().err


def test_loadgen_payloads_use_the_profile_opt(built: tuple) -> None:
    from tensorforge.loadgen.targets import BatcherTarget
    from tensorforge.serve.batching import BatcherConfig

    engine, _, _ = built
    target = BatcherTarget.from_engine(engine, BatcherConfig(max_batch_size=4), threads=1)
    try:
        target.prepare([3])
        assert target._payloads[3][0]["input_ids"].shape == (3, 16)     # S at the profile's opt, not 1
    finally:
        target.close()
