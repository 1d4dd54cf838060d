"""``tensorforge report`` end to end: real bench / profile / loadtest runs on tiny_mlp, the page drawn from their
JSON, then opened in headless Chromium (from the OS packages) with the network off: the dumped DOM must hold
every table and every plot's SVG with its points, and the screenshot is kept as an artifact (under tmp_path,
and copied to $TF_ARTIFACTS when that is set). Skips, saying why, on a machine without Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tensorforge.cli.main import main
from tensorforge.report import plots

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def _chromium(browser: str, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
           f"--user-data-dir={tmp / 'chrome-profile'}", "--proxy-server=127.0.0.1:9",   # nothing may be fetched
           "--window-size=1280,6000", "--hide-scrollbars", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    """Results of three real commands, and the page ``tensorforge report`` draws from them."""
    d = tmp_path_factory.mktemp("report_browser")
    engine = d / "tiny.tfe"
    assert main(["bench", "tiny_mlp", "--batch", "1,2", "--duration", "0.2", "--warmup", "0.05",
                 "--json", str(d / "bench.json")]) == 0
    assert main(["build", "tiny_mlp", "-o", str(engine)]) == 0
    assert main(["profile", str(engine), "--runs", "3", "--warmup", "1", "--json", str(d / "profile.json")]) == 0
    code = main(["loadtest", "tiny_mlp", "--scenario", "server", "--target-qps", "50,100", "--latency-bound", "50",
                 "--min-duration", "0.5", "--max-duration", "1", "--min-queries", "20", "--warmup", "0.1",
                 "--out", str(d / "lt")])
    assert code in (0, 1)                       # 1: a load past what this (shared) machine sustains is INVALID
    out = d / "report.html"
    assert main(["report", str(d / "bench.json"), str(d / "profile.json"), str(d / "lt"), "-o", str(out)]) == 0
    return out


@pytest.mark.skipif(_browser() is None, reason=f"no Chromium binary on PATH (looked for {', '.join(BROWSERS)}); "
                                               "install it with: apt-get install -y chromium")
@pytest.mark.skipif(not plots.available(), reason="matplotlib is not installed (pip install 'tensorforge[loadgen]')")
def test_page_renders_in_headless_chromium(page, tmp_path):
    browser = _browser()
    assert browser is not None
    dom = _chromium(browser, tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert re.findall(r'data-section="([a-z]+)"', html) == ["machines", "bench", "profile", "loadtest"]
    tables = dict(re.findall(r'data-table="([a-z]+)" data-rows="(\d+)"', html))
    assert {"bench", "profile", "loadtest"} <= set(tables) and all(int(n) > 0 for n in tables.values())
    figures = re.findall(r'<figure class="plot" data-plot="([^"]+)" data-points="(\d+)">(.*?)</figure>', html, re.S)
    assert {name for name, _, _ in figures} == {"throughput-vs-batch", "latency-vs-batch", "profile-0",
                                                "latency-vs-load"}
    for name, points, body in figures:
        assert int(points) > 0, name
        assert body.lstrip().startswith("<svg") and body.count("<path") > 5, name    # the browser parsed an SVG

    shot = tmp_path / "report.png"
    run = _chromium(browser, tmp_path, f"--screenshot={shot}", page.as_uri())
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 20_000          # a blank page compresses to a few KB
    artifacts = os.environ.get("TF_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artifacts) / "report_browser.png")
        shutil.copy(page, Path(artifacts) / "report_browser.html")
