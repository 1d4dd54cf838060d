"""`tensorforge serve` as a subprocess: ports printed, requests served, SIGTERM drains in-flight work."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading

import httpx
import numpy as np
import pytest
from serve_testkit import build_engine, calibrate_spin, spin_inputs, spin_model, wait_for


@pytest.fixture(scope="module")
def spin_engine(tmp_path_factory):
    return build_engine(spin_model(), tmp_path_factory.mktemp("cli") / "spin.tfe")


def _start(*args):
    proc = subprocess.Popen([sys.executable, "-m", "tensorforge", "serve", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("press Ctrl-C"):
            break
    text = "".join(lines)
    ports = dict(re.findall(r"^\s+(http|grpc|metrics)\s+\S*?:(\d+)", text, re.M))
    assert "http" in ports, text + proc.stderr.read() if proc.poll() is not None else text
    return proc, {k: int(v) for k, v in ports.items()}, text


def test_sigterm_drains_in_flight_requests(spin_engine):
    long_spin = calibrate_spin(spin_engine, seconds=0.3)
    proc, ports, text = _start(str(spin_engine), "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0",
                               "--max-batch-size", "1", "--max-queue-delay-ms", "0", "--threads-per-instance", "1")
    try:
        assert "serving 1 model(s): spin" in text and {"http", "grpc", "metrics"} <= set(ports)
        base = f"http://127.0.0.1:{ports['http']}"
        inputs = spin_inputs(np.ones((1, 8), np.float32), long_spin)
        body = {"inputs": [{"name": k, "shape": list(v.shape), "datatype": "FP32" if k == "x" else "INT64",
                            "data": v.ravel().tolist()} for k, v in inputs.items()]}
        results = []
        threads = [threading.Thread(target=lambda: results.append(httpx.post(f"{base}/v2/models/spin/infer",
                                                                             json=body, timeout=60)))
                   for _ in range(3)]
        for t in threads:
            t.start()

        def queued():
            s = httpx.get(f"{base}/v2/models/spin/stats").json()["model_stats"][0]["tensorforge"]
            return s["busy_instances"] == 1 and s["queue_depth"] == 2

        wait_for(queued, what="one running and two queued requests")
        proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join()
        assert [r.status_code for r in results] == [200, 200, 200]
        assert proc.wait(30) == 0
        assert "stopped" in proc.stdout.read()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base}/v2/health/live")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_nothing_to_serve_is_a_clear_error():
    proc = subprocess.run([sys.executable, "-m", "tensorforge", "serve"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "nothing to serve" in proc.stderr


def test_help_explains_the_command():
    out = subprocess.run([sys.executable, "-m", "tensorforge", "serve", "--help"], capture_output=True, text=True,
                         timeout=60).stdout
    for words in ("KServe v2", "--max-queue-delay-ms", "--repository", "127.0.0.1", "SIGTERM"):
        assert words in out
