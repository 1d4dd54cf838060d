"""The tuner on a tiny real model: a slowed candidate loses, a wrong one is rejected, the cache hits,
misses and refuses stale entries, and missing backends are skipped, not fatal.

The "slowed" and "wrong" backends (tune_fake_backends.py) are real ONNX Runtime sessions with a
sleep added to each run, or with their outputs shifted — registered through the public
``register_backend`` hook. Candidates run in worker processes (the default) unless a test says
``isolate=False``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tensorforge.backends.registry import register_backend, unregister_backend
from tensorforge.core.specs import io_specs
from tensorforge.engine.build import BuildOptions, build
from tensorforge.errors import InputError, TuningError
from tensorforge.tune import Candidate, TimingCache, TuneOptions, default_space, tune

FAST = dict(budget_s=3.0, rounds=3, cache=False)
# the budget's clock (not the duels'): frozen, so on a busy machine a slow worker start never uses
# up the budget and skips a candidate a test is about; the budget tests pass costs of their own


def NO_BUDGET_SPENT() -> float:
    return 0.0


FAKES = ("slowed", "wrong", "broken", "absent", "crashing")


@pytest.fixture(autouse=True)
def _test_backends():
    # by "module:Class" path, so the tuner's worker processes can import them too
    for name in FAKES:
        register_backend(name, f"tune_fake_backends:{name.capitalize()}Backend")
    yield
    for name in FAKES:
        unregister_backend(name)


@pytest.fixture
def tiny(conv_bn_model):
    inputs, _ = io_specs(conv_bn_model)
    return conv_bn_model.SerializeToString(), inputs


def _rows(result):
    return {row.candidate.backend: row for row in result.candidates}


def test_faster_candidate_takes_over_from_a_slowed_incumbent(tiny):
    result = tune(*tiny, TuneOptions(candidates=(Candidate("slowed"), Candidate("onnxruntime")), **FAST),
        clock=NO_BUDGET_SPENT)
    assert result.winner.backend == "onnxruntime"
    rows = _rows(result)
    assert rows["slowed"].status == "baseline" and rows["onnxruntime"].status == "winner"
    assert rows["onnxruntime"].ratio > 2 and result.speedup_vs_first > 2
    assert "beat slowed" in rows["onnxruntime"].reason


@pytest.mark.parametrize("isolate", [True, False])
def test_slowed_challenger_loses(tiny, isolate):
    result = tune(*tiny, TuneOptions(candidates=(Candidate("onnxruntime"), Candidate("slowed")), isolate=isolate,
                                     **FAST), clock=NO_BUDGET_SPENT)
    assert result.winner.backend == "onnxruntime" and result.speedup_vs_first == 1.0
    slowed = _rows(result)["slowed"]
    assert slowed.status == "slower" and slowed.ratio < 0.5
    assert slowed.throughput_sps > 0 and slowed.p50_ms >= 4.0


def test_a_clearly_slower_challenger_is_stopped_after_two_rounds(tiny):
    # the budget goes to candidates that might win: 4 ms of sleep per call is far below 0.85×
    result = tune(*tiny, TuneOptions(candidates=(Candidate("onnxruntime"), Candidate("slowed")), budget_s=3.0,
                                     rounds=5, cache=False))
    slowed = _rows(result)["slowed"]
    assert slowed.status == "slower" and "stopped after 2 rounds" in slowed.reason


def test_duel_stops_early_only_when_behind_in_every_first_round():
    from tensorforge.tune.measure import duel

    class Fixed:
        def __init__(self, rates):
            self.rates, self.calls = list(rates), 0

        def warm(self, seconds):
            pass

        def run(self, seconds):
            self.calls += 1
            return self.rates.pop(0)

        def p50_ms(self):
            return 1.0

    behind = duel(Fixed([80, 80, 80, 80]), Fixed([100] * 4), rounds=4, round_s=0, warmup_s=0, min_gain=0.02)
    assert behind.stopped_early and behind.verdict == "slower" and len(behind.ratios) == 2
    close = duel(Fixed([80, 95, 80, 80]), Fixed([100] * 4), rounds=4, round_s=0, warmup_s=0, min_gain=0.02)
    assert not close.stopped_early and len(close.ratios) == 4 and close.verdict == "slower"
    faster = duel(Fixed([120] * 4), Fixed([100] * 4), rounds=4, round_s=0, warmup_s=0, min_gain=0.02)
    assert faster.verdict == "faster" and not faster.stopped_early


def test_default_space_puts_each_backends_best_bet_first_and_compiles_last():
    from tensorforge.tune.space import _interleave

    a = [Candidate("a", 1), Candidate("a", 2), Candidate("a", 3)]
    b = [Candidate("b", 1), Candidate("b", 2)]
    c = [Candidate("c", 1), Candidate("c", 2, cost_s=60.0)]
    order = [(x.backend, x.threads) for x in _interleave([a, b, c])]
    assert order == [("a", 1), ("b", 1), ("c", 1), ("a", 2), ("b", 2), ("a", 3), ("c", 2)]


def test_wrong_outputs_rejected_even_when_faster(tiny):
    result = tune(*tiny, TuneOptions(candidates=(Candidate("slowed"), Candidate("wrong")), **FAST),
        clock=NO_BUDGET_SPENT)
    wrong = _rows(result)["wrong"]
    assert wrong.status == "rejected" and "differ from the reference" in wrong.reason
    assert wrong.max_err > 1e-2 and result.winner.backend == "slowed"


def test_failing_candidate_is_recorded_not_fatal(tiny):
    result = tune(*tiny, TuneOptions(candidates=(Candidate("broken"), Candidate("onnxruntime")), **FAST),
        clock=NO_BUDGET_SPENT)
    broken = _rows(result)["broken"]
    assert broken.status == "failed" and "cannot take the model" in broken.reason
    assert result.winner.backend == "onnxruntime"


def test_a_worker_that_dies_while_starting_is_reported_not_waited_for(tiny, monkeypatch):
    # regression: the parent kept waiting for the full start-up timeout (600 s), because the pipe
    # handed to a spawned child never reads end-of-file when the child dies before fetching it
    from tensorforge.tune import worker

    monkeypatch.setattr(worker, "_START_TIMEOUT_S", 120.0)
    result = tune(*tiny, TuneOptions(candidates=(Candidate("onnxruntime"), Candidate("crashing")), **FAST),
        clock=NO_BUDGET_SPENT)
    row = _rows(result)["crashing"]
    assert row.status == "failed" and "exited (code 3) before it was ready" in row.reason, row
    assert result.winner.backend == "onnxruntime"


UNGUARDED_SCRIPT = """
import onnx
from onnx import TensorProto, helper
from tensorforge.core.specs import TensorSpec
from tensorforge.tune import Candidate, TuneOptions, tune

import numpy as np
from onnx import numpy_helper

# megabytes of weights: more than a pipe holds, as with any real model
weights = numpy_helper.from_array(np.ones((1, 1 << 20), np.float32), "w")
graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1 << 20])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1 << 20])], [weights])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
# no `if __name__ == "__main__":` guard: a spawned worker re-runs this, fails and exits
tune(model.SerializeToString(), [TensorSpec("x", "float32", ["N", 1 << 20])],
     TuneOptions(candidates=(Candidate("onnxruntime"),), budget_s=2, rounds=2, cache=False))
"""


def test_a_script_without_a_main_guard_fails_fast_with_the_fix(tmp_path):
    # regression: the worker of an unguarded script died while starting up, and the tuner hung for
    # ever in Process.start() writing the model into the spawn pipe; now it reports at once, saying
    # what to do
    import subprocess
    import sys

    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED_SCRIPT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240)
    assert done.returncode != 0
    assert "TuningError" in done.stderr and "exited (code 1) before it was ready" in done.stderr, done.stderr
    assert "__name__" in done.stderr and "isolate=False" in done.stderr


def test_a_backend_registered_as_an_object_fails_cleanly_in_a_worker(tiny):
    from tune_fake_backends import SlowedBackend

    register_backend("object_only", SlowedBackend)
    try:
        result = tune(*tiny, TuneOptions(candidates=(Candidate("onnxruntime"), Candidate("object_only")), **FAST),
            clock=NO_BUDGET_SPENT)
    finally:
        unregister_backend("object_only")
    row = _rows(result)["object_only"]
    assert row.status == "failed" and "unknown backend" in row.reason


def test_no_correct_candidate_is_an_error(tiny):
    with pytest.raises(TuningError, match="no candidate ran the model correctly"):
        tune(*tiny, TuneOptions(candidates=(Candidate("wrong"), Candidate("broken")), **FAST), clock=NO_BUDGET_SPENT)


def test_budget_skips_what_does_not_fit(tiny):
    result = tune(*tiny, TuneOptions(candidates=(Candidate("onnxruntime"), Candidate("slowed", cost_s=3600)),
                                     **FAST), clock=NO_BUDGET_SPENT)
    slowed = _rows(result)["slowed"]
    assert slowed.status == "skipped" and slowed.reason.startswith("budget")


def test_default_space_skips_missing_backends_with_the_reason():
    tried, skipped = default_space("latency", backends=["onnxruntime", "absent", "nonexistent"])
    assert tried[0] == Candidate("onnxruntime")          # ORT defaults is the incumbent
    reasons = {c.backend: why for c, why in skipped}
    assert "absent SDK is not installed" in reasons["absent"]
    assert "unknown backend" in reasons["nonexistent"]
    with pytest.raises(InputError, match="no backend"):
        default_space("latency", backends=["absent"])
    with pytest.raises(InputError, match="objective"):
        default_space("fastest")


def test_throughput_space_has_streams():
    tried, _ = default_space("throughput", backends=["onnxruntime"])
    from tensorforge.tune.space import cores

    if cores()[0] >= 2:
        assert any(c.streams == 2 for c in tried)
    latency, _ = default_space("latency", backends=["onnxruntime"])
    assert all(c.streams == 1 for c in latency)


def test_streams_candidate_counts_every_stream(tiny):
    result = tune(*tiny, TuneOptions(objective="throughput", batch=2,
                                     candidates=(Candidate("slowed"), Candidate("slowed", streams=2)), **FAST),
                                         clock=NO_BUDGET_SPENT)
    two = [r for r in result.candidates if r.candidate.streams == 2][0]
    # two streams of a sleep-bound session overlap: more samples per second than one stream (about
    # twice on an idle machine; only "more" is asserted, since a busy machine delays the wake-ups)
    assert two.status == "winner" and two.ratio > 1.0
    assert result.winner.streams == 2


def test_cache_hit_miss_and_stale(tiny, tmp_path, monkeypatch):
    opts = dict(candidates=(Candidate("onnxruntime"), Candidate("slowed")), budget_s=3.0, rounds=3, cache=tmp_path)
    first = tune(*tiny, TuneOptions(**opts))
    assert not first.cached and any("no entry" in n for n in first.notes)
    assert len(list(tmp_path.glob("*.json"))) == 1
    again = tune(*tiny, TuneOptions(**opts))
    assert again.cached      # not re-measured: the timings below are identical, not merely close
    assert any("timing cache: used" in n for n in again.notes)
    assert again.winner == first.winner and again.candidates == first.candidates
    # another batch is another key: a miss
    other = tune(*tiny, TuneOptions(batch=3, **opts))
    assert not other.cached and len(list(tmp_path.glob("*.json"))) == 2

    entry_path = TimingCache(tmp_path).path(_key_of(tmp_path, first))
    entry = json.loads(entry_path.read_text())
    entry["host"]["cpu_model"] = "Some Other CPU"
    entry_path.write_text(json.dumps(entry))
    stale = tune(*tiny, TuneOptions(**opts))
    assert not stale.cached and any("another host" in n for n in stale.notes)

    entry = json.loads(entry_path.read_text())              # re-timed and stored afresh
    entry["versions"]["onnxruntime"] = "0.0.1"
    entry_path.write_text(json.dumps(entry))
    stale = tune(*tiny, TuneOptions(**opts))
    assert not stale.cached and any("other library versions" in n and "0.0.1" in n for n in stale.notes)

    entry = json.loads(entry_path.read_text())              # re-timed and stored afresh, then damaged
    del entry["result"]["winner"]
    entry_path.write_text(json.dumps(entry))
    damaged = tune(*tiny, TuneOptions(**opts))
    assert not damaged.cached and any("unreadable entry" in n for n in damaged.notes)

    entry_path.write_text("{not json")
    broken = tune(*tiny, TuneOptions(**opts))
    assert not broken.cached and any("ignored" in n for n in broken.notes)


def _key_of(directory, result):
    for path in directory.glob("*.json"):
        entry = json.loads(path.read_text())
        if entry["result"]["batch"] == result.batch:
            return entry["key"]
    raise AssertionError("entry not found")


def test_options_checked():
    with pytest.raises(InputError):
        TuneOptions(objective="speed")
    with pytest.raises(InputError):
        TuneOptions(budget_s=0)
    with pytest.raises(InputError):
        TuneOptions(rounds=1)


def test_build_records_the_winner(conv_bn_path, tmp_path):
    out = tmp_path / "tuned.tfe"
    engine, report = build(conv_bn_path, out, BuildOptions(tune="latency", tune_budget_s=3,
                                                           tune_backends=("onnxruntime",), tune_cache=tmp_path))
    tuning = report.tuning
    assert tuning is not None and tuning.objective == "latency" and tuning.batch == 1
    assert engine.manifest.to_dict()["build"]["tuning"] == tuning.to_dict()      # the manifest's JSON of it
    recorded = engine.manifest.backend
    assert recorded.name == tuning.winner.backend == report.backend
    assert recorded.settings == report.backend_settings                           # one typed object in both
    assert recorded.settings.session_config() == tuning.winner.session_config("cpu")
    assert recorded.settings.streams == tuning.winner.streams
    statuses = [r.status for r in tuning.candidates]
    assert statuses.count("winner") == 1 and len(statuses) >= 3
    assert report.to_dict()["tuning"]["winner"] == dict(tuning.winner.to_dict(), label=tuning.winner.label)
    session = engine.session()
    out_ = session.run(np.zeros((1, 3, 16, 16), np.float32))
    assert out_["y"].shape == (1, 5)
    _, again = build(conv_bn_path, tmp_path / "again.tfe", BuildOptions(
        tune="latency", tune_budget_s=3, tune_backends=("onnxruntime",), tune_cache=tmp_path))
    assert again.tuning is not None and again.tuning.cached and again.tuning.winner == tuning.winner


def test_build_tunes_with_the_reduced_precision_tolerance(conv_bn_path, tmp_path):
    _, report = build(conv_bn_path, None, BuildOptions(precision="fp16", tune="latency", tune_budget_s=2,
                                                       tune_backends=("onnxruntime",), tune_cache=False))
    assert report.tuning is not None and report.tuning.precision == "fp16" and report.tuning.tolerance == 1e-2


def test_on_a_cpu_torch_is_tried_after_the_other_backends():
    pytest.importorskip("torch")
    tried, _ = default_space("latency", "cpu", backends=["torch", "onnxruntime"])
    backends = [c.backend for c in tried]
    assert backends[0] == "onnxruntime" and backends.index("torch") > max(
        i for i, b in enumerate(backends) if b == "onnxruntime")
    assert tried[-1].cost_s >= 10          # the compile comes last
