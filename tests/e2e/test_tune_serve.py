"""`tensorforge tune-serve` and `tensorforge offline` end to end, and their one-line errors.

tune-serve measures each candidate on the real server over HTTP; its budget follows an injected clock
(:class:`Ticks`, 10 s per reading), so how many candidates run does not depend on the machine's speed.
The repository it writes is then served by a real `tensorforge serve --repository` subprocess and
answers tritonclient as ``Session.run`` does.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

import tensorforge
from tensorforge.api.offline import offline_files
from tensorforge.api.tune_serve import tune_serve
from tensorforge.cli.main import main
from tensorforge.core.tolerances import tolerance


class Ticks:
    """A clock that moves 10 s per reading: the search's budget decisions follow the readings alone."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 10.0
        return self.t


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from tensorforge.engine.build import BuildOptions, build

    out = tmp_path_factory.mktemp("tune") / "tiny_mlp.tfe"
    build("tiny_mlp", out, BuildOptions(max_batch=16))
    return out


def _serve_repository(root):
    proc = subprocess.Popen([sys.executable, "-m", "tensorforge", "serve", "--repository", str(root), "--http-port",
                             "0", "--grpc-port", "off", "--metrics-port", "off"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("press Ctrl-C"):
            break
    url = next((m.group(1) for m in map(re.compile(r"^\s+http\s+(\S+)").match, lines) if m), None)
    if url is None:
        proc.kill()
        pytest.fail(f"the server did not start: {''.join(lines)}{proc.stderr.read()}")
    return proc, url


def test_budgeted_search_writes_a_repository_that_serve_loads(engine, tmp_path):
    out = tmp_path / "repo"
    # Ticks: start 10; candidate 1 checked at 20 (guess 7 s fits in 50), measured 30..40 (cost 10); candidate 2
    # checked at 50 (20 left), measured 60..70; at 80 the budget (ends at 70) holds no more
    result = tune_serve(engine, slo="p90=300ms", budget_s=60, output=out, probe_s=0.5, max_probes=3, clock=Ticks())
    assert [t.stage for t in result.trials] == ["engine", "instances x batch"]
    assert result.skipped and all(why.startswith("budget") for _, why in result.skipped)
    assert result.best is not None and result.best.valid and result.best.max_valid_qps > 0
    assert result.best.percentile_latency_ms <= 300
    model_dir = out / "tiny_mlp"
    config = json.loads((model_dir / "config.json").read_text())
    assert config == result.best.candidate.model_config()
    assert (model_dir / "1" / "model.tfe").read_bytes() == engine.read_bytes()     # an engine file is kept as is
    assert json.loads((model_dir / "tune-serve.json").read_text())["winner"]["max_valid_qps"] == \
        result.best.max_valid_qps

    import tritonclient.http as th

    proc, url = _serve_repository(out)
    try:
        client = th.InferenceServerClient(url)
        assert client.is_model_ready("tiny_mlp")
        assert client.get_model_config("tiny_mlp")["max_batch_size"] == config["max_batch_size"]
        rows = min(3, config["max_batch_size"])           # a request holds at most the tuned max batch
        x = np.random.default_rng(0).standard_normal((rows, 64)).astype(np.float32)
        inp = th.InferInput("input", [rows, 64], "FP32")
        inp.set_data_from_numpy(x)
        got = client.infer("tiny_mlp", [inp]).as_numpy("logits")
        want = tensorforge.load(engine).run(x)["logits"]
        assert float(np.max(np.abs(got - want))) <= tolerance("fp32", across_kernels=True) * float(np.max(np.abs(want)))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_a_budget_too_short_for_one_candidate_says_so(engine, tmp_path):
    result = tune_serve(engine, slo="p90=300ms", budget_s=12, output=tmp_path / "repo", probe_s=0.5, max_probes=3,
                        clock=Ticks())                 # one reading leaves 2 s; a candidate needs about 7 s
    assert result.trials == () and result.best is None and not (tmp_path / "repo").exists()
    assert any("holds no candidate" in n for n in result.notes) and result.skipped


def test_cli_builds_engines_prints_every_candidate_and_writes_json(tmp_path, capsys):
    out, report = tmp_path / "repo", tmp_path / "ts.json"
    rc = main(["tune-serve", "tiny_mlp", "--slo", "p90=300ms", "--budget", "20s", "--backends", "onnxruntime",
               "--precisions", "fp32", "--max-batch", "8", "--probe-seconds", "0.5", "--max-probes", "2",
               "-o", str(out), "--json", str(report)])
    text = capsys.readouterr().out
    data = json.loads(report.read_text())
    assert data["trials"] and data["trials"][0]["stage"] == "engine" and data["trials"][0]["backend"] == "onnxruntime"
    assert "max QPS" in text and "onnxruntime fp32" in text
    if rc == 0:                   # a VALID load was found: the winner is in the repository
        assert (out / "tiny_mlp" / "1" / "model.tfe").is_file() and (out / "tiny_mlp" / "config.json").is_file()
        assert "tensorforge serve --repository" in text
    else:
        assert rc == 1 and "no configuration met" in text


def test_offline_in_process_equals_session_run(engine, tmp_path, capsys):
    rng = np.random.default_rng(3)
    (tmp_path / "in").mkdir()
    a, b = rng.standard_normal((37, 64)).astype(np.float32), rng.standard_normal((5, 64)).astype(np.float32)
    np.save(tmp_path / "in" / "a.npy", a)
    np.savez(tmp_path / "in" / "b.npz", whatever=b)
    rc = main(["offline", str(engine), "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"),
               "--batch-size", "8", "--streams", "2", "--json", str(tmp_path / "s.json")])
    assert rc == 0 and "42 samples from 2 file(s)" in capsys.readouterr().out
    session = tensorforge.load(engine)
    for stem, x in (("a", a), ("b", b)):
        with np.load(tmp_path / "out" / f"{stem}.npz") as got:
            assert sorted(got.files) == ["logits"]
            want = np.concatenate([session.run(x[i:i + 16])["logits"] for i in range(0, len(x), 16)])  # max batch 16
            np.testing.assert_allclose(got["logits"], want, rtol=1e-5, atol=1e-6)
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["samples"] == 42 and summary["mode"] == "in-process" and summary["samples_per_s"] > 0
    result = offline_files(engine, [tmp_path / "in" / "a.npy"], tmp_path / "out2", batch_size=64)
    assert result.files == 1 and result.samples == 37


@pytest.mark.parametrize("argv, words", [
    (["tune-serve", "tiny_mlp", "--slo", "p99=abc"], "--slo must look like p99=50ms"),
    (["tune-serve", "tiny_mlp", "--slo", "p99=5ms", "--budget", "1x"], "--budget must be a duration"),
    (["tune-serve", "tiny_mlp", "--slo", "p99=5ms", "--budget", "0"], "--budget must be a positive duration"),
    (["tune-serve", "tiny_mlp", "--slo", "p99=5ms", "-o", "/proc/tf-tune-serve"], "--output /proc/tf-tune-serve"),
    (["offline", "ENGINE", "--input", "/nonexistent/in", "--output", "OUT"], "--input: '/nonexistent/in' does not"),
    (["offline", "ENGINE", "--input", "IN", "--output", "/proc/tf-offline"], "--output /proc/tf-offline: cannot"),
    (["offline", "ENGINE", "--input", "IN", "--output", "OUT", "--address", "auto"], "add --ray"),
    (["serve", "ENGINE", "--replicas", "2"], "are for Ray Serve; add --ray"),
])
def test_bad_arguments_are_one_line_and_exit_2(argv, words, engine, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    np.save(tmp_path / "in" / "x.npy", np.zeros((1, 64), np.float32))
    subst = {"ENGINE": str(engine), "IN": str(tmp_path / "in"), "OUT": str(tmp_path / "out")}
    assert main([subst.get(a, a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and words in err, err


@pytest.mark.parametrize("command", [["serve", "ENGINE", "--ray"], ["offline", "ENGINE", "--input", "IN",
                                                                    "--output", "OUT", "--ray"]])
def test_ray_flags_without_ray_name_the_extra(command, engine, tmp_path):
    (tmp_path / "in").mkdir()
    np.save(tmp_path / "in" / "x.npy", np.zeros((1, 64), np.float32))
    subst = {"ENGINE": str(engine), "IN": str(tmp_path / "in"), "OUT": str(tmp_path / "out")}
    # a None entry in sys.modules is how Python spells "not installed" for find_spec: no uninstalling needed
    code = ("import sys; sys.modules['ray'] = None; from tensorforge.cli.main import main; "
            f"sys.exit(main({[subst.get(a, a) for a in command]!r}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'tensorforge[scale]'" in lines[0], proc.stderr


def test_help_explains_the_search_and_the_flags(capsys):
    for command in ("tune-serve", "offline"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
    text = capsys.readouterr().out
    assert "coordinate search" in text and "--slo" in text and "--budget" in text and "--ray" in text
