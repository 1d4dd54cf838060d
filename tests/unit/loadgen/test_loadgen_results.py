"""Results files: the HDR histogram (text and encoded), the plots, the JSON report; optional imports stay lazy."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tensorforge.loadgen.plan import LoadtestOptions, TargetConfig, loadtest, target_configs
from tensorforge.loadgen.results import hdr_histogram, plot_load_curve, write_hgrm, write_report
from tensorforge.loadgen.scenarios import ScenarioSettings
from tensorforge.serve.batching import BatcherConfig


def test_hgrm_file_and_encoded_histogram_round_trip(tmp_path):
    HdrHistogram = pytest.importorskip("hdrh.histogram").HdrHistogram     # the loadgen extra

    lat = np.random.default_rng(1).integers(1_000_000, 30_000_000, size=5000)   # 1–30 ms in ns
    path, encoded = write_hgrm(tmp_path / "lat.hgrm", lat)
    text = path.read_text()
    assert "Percentile" in text and "TotalCount" in text and "#[Max" in text
    decoded = HdrHistogram.decode(encoded)
    assert decoded.get_total_count() == 5000
    p99_ms = decoded.get_value_at_percentile(99) / 1000.0
    assert p99_ms == pytest.approx(np.percentile(lat, 99) / 1e6, rel=0.01)       # 3 significant digits
    assert hdr_histogram(lat).get_max_value() >= 29_000


def test_loadtest_report_json_hgrm_and_plot(tmp_path):
    pytest.importorskip("hdrh")           # the loadgen extra: HDR histograms ...
    pytest.importorskip("matplotlib")     # ... and the plot
    settings = ScenarioSettings(scenario="server", target_qps=50.0, latency_bound_ms=50.0, percentile=0.9,
                                min_duration_s=0.2, warmup_s=0.02)
    configs = [TargetConfig("sleep:1ms", BatcherConfig(max_batch_size=1, max_queue_delay_ms=0))]
    report = loadtest(configs, LoadtestOptions(settings, qps=(50.0, 150.0)), outdir=tmp_path)
    files = write_report(report, tmp_path, plot=True)
    data = json.loads((tmp_path / "results.json").read_text())
    runs = data["configs"][0]["runs"]
    assert [r["settings"]["target_qps"] for r in runs] == [50.0, 150.0]
    for r in runs:
        # the JSON verdict is the one its checks give (whichever that is on this machine)
        assert r["verdict"] == ("VALID" if all(c["passed"] for c in r["checks"]) else "INVALID")
        assert r["reasons"] == [f'{c["name"]}: {c["detail"]}' for c in r["checks"] if not c["passed"]]
        assert r["settings"]["latency_bound_ms"] == 50.0
        assert r["latency"]["p99_ms"] > 0 and r["hdr_histogram"]["encoded"].startswith("HISTF")
        assert r["early_stopping"]["confidence"] == 0.99 and r["lateness"]["threshold_us"] == 500.0
    assert data["host"] and data["mode"] == "run" and data["options"]["qps"] == [50.0, 150.0]
    png = (tmp_path / "latency_vs_load.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and files["plot"].endswith(".png")
    assert len([f for f in files if f.startswith("hgrm:")]) == 2


def test_plot_needs_a_completed_run(tmp_path):
    from tensorforge.errors import InputError

    with pytest.raises(InputError):
        plot_load_curve(tmp_path / "x.png", {"empty": []})


def test_target_configs_product_and_remote_passthrough():
    cs = target_configs(["sleep:1ms", "http://127.0.0.1:9/"], [1, 8], [0, 2], instances=2)
    local = [c for c in cs if not c.remote]
    assert len(local) == 4 and {(c.batcher.max_batch_size, c.batcher.max_queue_delay_ms) for c in local} == \
        {(1, 0.0), (1, 2.0), (8, 0.0), (8, 2.0)}
    assert all(c.batcher.instances == 2 for c in local)
    remote = [c for c in cs if c.remote]
    assert len(remote) == 1 and remote[0].batcher is None and remote[0].name() == "http://127.0.0.1:9/"


def test_importing_the_loadgen_package_pulls_in_no_optional_sdk():
    code = ("import sys, tensorforge.loadgen.scenarios, tensorforge.loadgen.targets, tensorforge.loadgen.remote, "
            "tensorforge.loadgen.mlperf, tensorforge.loadgen.results, tensorforge.loadgen.plan, "
            "tensorforge.cli.loadtest_cmd\n"
            "bad = [m for m in ('matplotlib', 'mlperf_loadgen', 'aiohttp', 'grpc', 'hdrh', 'tritonclient') "
            "if m in sys.modules]\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
