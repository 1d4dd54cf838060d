"""Progress on long work, partial results and exit codes of ``loadtest`` (issue 15, item 3)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

from tensorforge.cli._checks import progress_lines
from tensorforge.cli.main import main

FIND_MAX = ["loadtest", "sleep:2ms", "--scenario", "server", "--latency-bound", "30ms", "--percentile", "90",
            "--find-max", "--min-duration", "0.3", "--warmup", "0.05", "--tolerance", "0.2"]


def test_progress_lines_when_piped():
    """Piped, each step is one plain line (with the elapsed time); a repeated step prints nothing."""
    out = io.StringIO()
    with progress_lines("tune", stream=out, tty=False) as step:
        step("candidate 1/3")
        step("candidate 1/3")
        step("candidate 2/3", 0.66)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("tune: candidate 1/3 [") and "(66 %)" in lines[1]


def test_find_max_progress_piped_and_probes_kept(tmp_path):
    """Piped stderr gets one line per probe; every probe is also in results.jsonl."""
    p = subprocess.run([sys.executable, "-m", "tensorforge", *FIND_MAX, "--max-probes", "3", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode in (0, 1) and "Traceback" not in p.stderr, p.stderr
    probe_lines = [line for line in p.stderr.splitlines() if line.startswith("loadtest: ") and " probe " in line]
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert rows and all(r["kind"] == "probe" for r in rows)
    assert len(probe_lines) == len(rows)
    found = json.loads((tmp_path / "results.json").read_text())["configs"][0]["find_max"]
    # the exit code is the verdict: 1 when no probed load was VALID
    assert p.returncode == (1 if found["max_valid_qps"] is None else 0)


def test_invalid_run_exits_1(capsys, tmp_path):
    rc = main(["loadtest", "sleep:5ms", "--scenario", "server", "--target-qps", "20", "--latency-bound", "1",
               "--min-duration", "0.2", "--warmup", "0", "--out", str(tmp_path)])
    assert rc == 1
    assert "INVALID" in capsys.readouterr().out
    assert json.loads((tmp_path / "results.jsonl").read_text().splitlines()[0])["verdict"] == "INVALID"


def test_sigint_keeps_the_probes(tmp_path):
    """Ctrl-C during find-max: exit 130 and the probes so far stay in results.jsonl."""
    partial = tmp_path / "results.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "tensorforge", *FIND_MAX, "--max-probes", "30",
                             "--tolerance", "0.001", "--min-duration", "0.5", "--out", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (partial.exists() and partial.read_text().count("\n") >= 1):
            time.sleep(0.1)
        assert partial.exists(), "no probe written in 120 s"
        os.kill(proc.pid, signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "result(s) kept in" in err
    rows = [json.loads(line) for line in partial.read_text().splitlines()]
    assert rows and rows[0]["kind"] == "probe"


def test_sweep_probes_kept_with_their_budget(capsys, tmp_path):
    rc = main(["loadtest", "sleep:1ms", "--scenario", "server", "--sweep-latency", "40ms", "--percentile", "90",
               "--min-duration", "0.25", "--warmup", "0.02", "--tolerance", "0.3", "--max-probes", "3",
               "--out", str(tmp_path)])
    assert rc in (0, 1)
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert rows and all(r["kind"] == "probe" and r["budget_ms"] == 40.0 for r in rows)


def test_tuning_reports_each_candidate_when_piped(tmp_path):
    """`build --tune` piped: one progress line per tuner candidate, numbered against the candidate count."""
    p = subprocess.run([sys.executable, "-m", "tensorforge", "build", "tiny_mlp", "--tune", "latency", "--tune-budget", "4", "--no-tune-cache",
                        "--no-verify", "-o", str(tmp_path / "t.tfe")], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    steps = [line for line in p.stderr.splitlines() if "tuning " in line and "candidate " in line]
    assert steps, p.stderr
    first = steps[0].split("tuning ", 1)[1]
    assert first.startswith("1/"), steps[0]
