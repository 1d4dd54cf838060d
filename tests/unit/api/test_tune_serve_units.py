"""The pure parts of tune-serve and offline: SLO and budget parsing, candidate settings, input discovery."""

from __future__ import annotations

import numpy as np
import pytest

from tensorforge.api.offline import input_files
from tensorforge.api.tune_serve import ServeCandidate, parse_budget, parse_slo
from tensorforge.errors import ConfigError, InputError
from tensorforge.serve.config import ModelConfig


@pytest.mark.parametrize("text, want", [("p99=50ms", (0.99, 50.0)), ("p95=0.02s", (0.95, 20.0)), ("50", (0.99, 50.0)),
                                        ("p99.9 = 7.5ms", (0.999, 7.5)), ("P90=500us", (0.9, 0.5))])
def test_slo_forms(text, want):
    pct, ms = parse_slo(text)
    assert pct == pytest.approx(want[0]) and ms == pytest.approx(want[1])


@pytest.mark.parametrize("text", ["p99=abc", "p99=", "p100=5ms", "p0=5ms", "p99=0ms", "99=5ms", "", "p99=5 hours"])
def test_bad_slo_names_the_parameter(text):
    with pytest.raises(ConfigError, match="`slo`"):
        parse_slo(text)


@pytest.mark.parametrize("text, seconds", [("10m", 600.0), ("90s", 90.0), ("1h", 3600.0), ("45", 45.0), (12, 12.0),
                                           ("2.5min", 150.0)])
def test_budget_forms(text, seconds):
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["1x", "0", "-5m", "ten minutes", float("inf"), 0])
def test_bad_budget_names_the_parameter(text):
    with pytest.raises(ConfigError, match="`budget`"):
        parse_budget(text)


def test_candidate_config_is_a_model_config_the_server_reads():
    cand = ServeCandidate("onnxruntime", "fp32", instances=2, max_batch_size=16, max_queue_delay_ms=0.5,
                          preferred_batch_sizes=(16,))
    config = ModelConfig.from_dict(cand.model_config())
    assert (config.batcher.instances, config.batcher.max_batch_size, config.batcher.max_queue_delay_ms,
            config.batcher.preferred_batch_sizes) == (2, 16, 0.5, (16,))
    assert cand.to_dict()["backend"] == "onnxruntime"


def test_input_files_from_folders_and_files(tmp_path):
    (tmp_path / "d").mkdir()
    np.save(tmp_path / "d" / "b.npy", np.zeros(2))
    np.savez(tmp_path / "d" / "a.npz", x=np.zeros(2))
    (tmp_path / "d" / "notes.txt").write_text("skipped")
    np.save(tmp_path / "c.npy", np.zeros(2))
    assert [p.name for p in input_files([tmp_path / "d", tmp_path / "c.npy"])] == ["a.npz", "b.npy", "c.npy"]


def test_input_file_errors_name_the_parameter_and_the_fix(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "x.txt").write_text("")
    np.save(tmp_path / "a.npy", np.zeros(1))
    (tmp_path / "sub").mkdir()
    np.save(tmp_path / "sub" / "a.npy", np.zeros(1))
    for bad, words in ((tmp_path / "missing", "does not exist"), (tmp_path / "empty", "holds no .npy or .npz"),
                       (tmp_path / "x.txt", "is not a .npy or .npz"), ([], "give a folder"),
                       ([tmp_path / "a.npy", tmp_path / "sub"], "several files are named ['a']")):
        with pytest.raises(InputError, match="`inputs`") as info:
            input_files(bad)
        assert words in str(info.value)
