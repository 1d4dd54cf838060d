"""The short CI version of the soak-and-fault run (issue 13): scripts/soak.py's own code, ~15 s of load.

``test_soak_short`` starts ``tensorforge serve`` as a subprocess, measures capacity, holds 80 % of it
with good and bad traffic, and injects every fault once — a backend op that raises, a process
instance SIGKILLed, a model unloaded and reloaded under load, an engine written into the live
repository with the disk "full", SIGTERM with stalled clients — then checks the same invariants as
the long run: no lost or wrong answer, no 5xx for a client error, every fault survived. What needs
minutes to mean anything (p99 stability) is reported but not asserted here; the RSS bound is looser
because a 15-s run has no real warm-up. The other tests pin the two pieces the faults rely on:
atomic engine writes (engine/format.py) and the restart of a killed process instance (serve/worker.py).
Nothing here asserts on wall-clock time; waits are on events, with generous hang guards.
"""

from __future__ import annotations

import errno
import importlib
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from tensorforge.engine import format as engine_format
from tensorforge.engine.build import build
from tensorforge.engine.format import MODEL_PAYLOAD, read_engine, write_engine
from tensorforge.errors import EngineFileError
from tensorforge.serve import worker
from tensorforge.serve.worker import ProcessInstance

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _soak_module():
    sys.path.insert(0, str(SCRIPTS))
    return importlib.import_module("soak")          # scripts/soak.py, the script itself


def test_soak_short(tmp_path):
    soak = _soak_module()
    opts = soak.SoakOptions(minutes=0.2, probe_s=1.0, windows=3, workers=8, slow_clients=1, drain_s=1.0,
                            drain_slack_s=60.0, header_timeout_s=2.0, p99_factor=None, rss_limit=0.10,
                            workdir=tmp_path)
    summary = soak.run_soak(opts)
    # p99 stability and keeping the pace are timings: reported by the short run, asserted by the long one
    failed = {name: check for name, check in summary["checks"].items()
              if not check["ok"] and name not in ("p99_stable", "load_held")}
    assert not failed, (failed, summary["faults"], summary["requests"])
    assert {f["name"] for f in summary["faults"]} == set(soak.FAULTS)
    totals = summary["requests"]
    assert totals["good_ok"] > 0 and totals["bad_4xx"] > 0 and totals["raised_500"] > 0
    assert totals["lost"] == totals["wrong"] == totals["bad_5xx"] == totals["unexpected"] == 0
    assert summary["restart_log_lines"] >= 1


# -- atomic engine writes --------------------------------------------------------------------------------
@pytest.fixture
def engine_parts(tmp_path):
    path = tmp_path / "old.tfe"
    build("tiny_mlp", path)
    manifest, payloads = read_engine(path)
    return manifest, payloads, path


def test_failed_write_leaves_previous_engine_and_no_temp(tmp_path, engine_parts, monkeypatch):
    manifest, payloads, _ = engine_parts
    target = tmp_path / "model.tfe"
    write_engine(target, manifest, payloads)
    before = target.read_bytes()

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(engine_format.os, "fsync", full_disk)
    with pytest.raises(EngineFileError, match="No space left on device.*nothing was written"):
        write_engine(target, manifest, {MODEL_PAYLOAD: payloads[MODEL_PAYLOAD] + b""})
    assert target.read_bytes() == before                   # the old engine is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.tfe", "old.tfe"]


def test_write_fails_cleanly_when_files_cannot_grow(tmp_path, engine_parts):
    """RLIMIT_FSIZE in a child process: write() fails with EFBIG part-way through the engine, as on a full
    disk. The child gets an EngineFileError and the directory holds nothing afterwards."""
    _, payloads, _ = engine_parts
    out = tmp_path / "out"
    out.mkdir()
    limit = len(payloads[MODEL_PAYLOAD]) // 2
    code = ("import resource, signal, sys\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "from tensorforge.engine.format import read_engine, write_engine\n"
            "from tensorforge.errors import EngineFileError\n"
            f"manifest, payloads = read_engine({str(tmp_path / 'old.tfe')!r})\n"
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
            "try:\n"
            f"    write_engine({str(out / 'model.tfe')!r}, manifest, payloads)\n"
            "except EngineFileError as exc:\n"
            "    print('EngineFileError', exc)\n"
            "    sys.exit(3)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 3, run.stderr
    assert "File too large" in run.stdout
    assert list(out.iterdir()) == []


def test_concurrent_writes_of_one_path_never_mix(tmp_path, engine_parts):
    """Each writer has its own temp file, so the winner's file is whole and loads."""
    manifest, payloads, _ = engine_parts
    target = tmp_path / "model.tfe"
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for _ in range(5):
                write_engine(target, manifest, payloads)
        except BaseException as exc:  # collected: the assertion below names it
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert read_engine(target)[1][MODEL_PAYLOAD] == payloads[MODEL_PAYLOAD]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.tfe", "old.tfe"]
    assert oct(os.stat(target).st_mode & 0o777) != oct(0o600)      # not mkstemp's private mode


# -- a killed process instance is restarted --------------------------------------------------------------
def test_killed_process_instance_fails_its_batch_only_and_restarts(engine_parts, caplog, monkeypatch):
    _, _, path = engine_parts
    x = np.random.default_rng(0).standard_normal((2, 64)).astype(np.float32)
    inst = ProcessInstance(path, threads=1)
    child = inst._proc
    try:
        expected = inst.run({"input": x})["logits"]
        total_before = worker.RESTARTS["total"]
        # mid-batch: stop the child, hand it a batch, kill it while the parent waits for that batch's answer
        waiting = threading.Event()
        real_read = worker.read_message

        def read_and_tell(stream, **kwargs):
            waiting.set()                       # the batch is written; the parent now blocks on the answer
            return real_read(stream, **kwargs)

        monkeypatch.setattr(worker, "read_message", read_and_tell)
        os.kill(child.pid, signal.SIGSTOP)
        failure: list[BaseException] = []

        def run_batch() -> None:
            try:
                inst.run({"input": x})
            except BaseException as exc:  # collected: asserted below
                failure.append(exc)

        t = threading.Thread(target=run_batch)
        t.start()
        assert waiting.wait(60)
        os.kill(child.pid, signal.SIGKILL)
        t.join(60)
        assert len(failure) == 1 and "died while running a batch" in str(failure[0])
        # the next batch restarts the child, with a log line and a counted restart
        with caplog.at_level(logging.WARNING, logger="tensorforge.serve.worker"):
            np.testing.assert_allclose(inst.run({"input": x})["logits"], expected, rtol=1e-6)
        assert inst.restarts == 1 and worker.RESTARTS["total"] == total_before + 1
        assert inst._proc.pid != child.pid
        assert any(f"instance process {child.pid} " in r.getMessage() and "signal 9" in r.getMessage()
                   for r in caplog.records)
        # killed while idle: the next batch restarts it and succeeds
        os.kill(inst._proc.pid, signal.SIGKILL)
        inst._proc.wait(30)
        np.testing.assert_allclose(inst.run({"input": x})["logits"], expected, rtol=1e-6)
        assert inst.restarts == 2
    finally:
        for proc in {child, inst._proc}:        # never leave a stopped child holding the instance's lock
            if proc is not None and proc.poll() is None:
                proc.kill()
        inst.close()
