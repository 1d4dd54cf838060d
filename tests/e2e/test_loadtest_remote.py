"""Remote mode against this project's KServe v2 server over loopback (HTTP and gRPC), in-process on free ports."""

from __future__ import annotations

import json

import pytest

from tensorforge.cli.main import main
from tensorforge.errors import ServingError
from tensorforge.loadgen.remote import GrpcTarget, HttpTarget, open_remote
from tensorforge.loadgen.scenarios import ScenarioSettings, run_scenario
from tensorforge.loadgen.verdict import summarize

pytest.importorskip("aiohttp")
pytest.importorskip("uvicorn")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from tensorforge.engine.build import build
    from tensorforge.serve import BatcherConfig, InferenceServer, ModelConfig, ServerConfig

    path = tmp_path_factory.mktemp("remote") / "tiny_mlp.tfe"
    build("tiny_mlp", path)
    srv = InferenceServer([path], config=ServerConfig(http_port=0, grpc_port=0, metrics_port=None),
                          model_config=ModelConfig(batcher=BatcherConfig(max_batch_size=8, max_queue_delay_ms=1)))
    srv.start()
    yield srv
    srv.stop(drain=True, timeout_s=10)


def _served(server) -> int:
    return server.repository.get("tiny_mlp").batcher.stats()["success"]


@pytest.mark.parametrize("scheme", ["http", "grpc"])
def test_server_and_offline_scenarios_over_loopback(server, scheme):
    url = f"http://{server.http_url}" if scheme == "http" else f"grpc://{server.grpc_target}"
    target = open_remote(url, "tiny_mlp", concurrency=16)
    try:
        assert isinstance(target, HttpTarget if scheme == "http" else GrpcTarget)
        assert [s.name for s in target.input_specs] == ["input"] and target.output_names == ["logits"]
        before = _served(server)
        # the bound is a generous hang guard only: a loaded machine must not make the run invalid
        s = ScenarioSettings(scenario="server", target_qps=300.0, latency_bound_ms=10_000.0, percentile=0.9,
                             min_duration_s=0.3, warmup_s=0.05)
        r = summarize(run_scenario(target, s), target.describe())
        assert r.valid, r.reasons
        assert r.error_count == 0 and r.latency.count == r.query_count
        # every query reached the real server's batcher (plus the warm-up queries)
        assert _served(server) - before >= r.query_count
        off = summarize(run_scenario(target, ScenarioSettings(scenario="offline", min_duration_s=0.2, warmup_s=0.05)),
                        target.describe())
        assert off.error_count == 0 and off.sample_count == off.settings["offline_sample_count"]
        assert _served(server) - before >= r.query_count + off.query_count
    finally:
        target.close()


def test_http_target_reads_max_batch_from_the_model_config(server):
    target = open_remote(f"http://{server.http_url}", "tiny_mlp")
    try:
        assert target.max_batch == 8 and target.describe()["server_max_batch_size"] == 8
        r = summarize(run_scenario(target, ScenarioSettings(scenario="multi-stream", max_query_count=30,
                                                            warmup_s=0)), target.describe())
        assert r.sample_count == 240 and r.error_count == 0
    finally:
        target.close()


def test_cli_against_the_server(server, capsys, tmp_path):
    code = main(["loadtest", f"http://{server.http_url}", "--model", "tiny_mlp", "--scenario", "single-stream",
                 "--min-duration", "0.2", "--warmup", "0.05", "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "VALID" in out
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["configs"][0]["target"]["kind"] == "http" and data["configs"][0]["runs"][0]["query_count"] >= 64


def test_unknown_model_and_unreachable_server_are_clear_errors(server, capsys, tmp_path):
    with pytest.raises(ServingError, match="no_such_model"):
        HttpTarget(f"http://{server.http_url}", "no_such_model")
    with pytest.raises(ServingError, match="no_such_model"):
        GrpcTarget(f"grpc://{server.grpc_target}", "no_such_model")
    code = main(["loadtest", "http://127.0.0.1:9", "--model", "m", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "cannot reach" in err and "Traceback" not in err
