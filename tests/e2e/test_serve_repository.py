"""Model repository over HTTP: versions, version policy, config files, load/unload/reload under load."""

from __future__ import annotations

import json
import shutil
import threading

import httpx
import numpy as np
import pytest
from serve_testkit import build_engine, calibrate_spin, spin_inputs, spin_model, wait_for, write_config

from tensorforge.serve import InferenceServer, ServerConfig


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    d = tmp_path_factory.mktemp("engines")
    return {"mlp": build_engine("tiny_mlp", d / "mlp.tfe"), "cnn": build_engine("tiny_cnn", d / "cnn.tfe"),
            "spin": build_engine(spin_model(), d / "spin.tfe")}


@pytest.fixture
def repo(tmp_path, engines):
    root = tmp_path / "repo"
    for version, key in ((1, "mlp"), (2, "cnn")):
        (root / "multi" / str(version)).mkdir(parents=True)
        shutil.copy(engines[key], root / "multi" / str(version) / "model.tfe")
    (root / "spin" / "1").mkdir(parents=True)
    shutil.copy(engines["spin"], root / "spin" / "1" / "model.tfe")
    write_config(root / "spin", max_batch_size=1, max_queue_delay_ms=0, threads_per_instance=1)
    return root


@pytest.fixture
def long_spin(engines):
    return calibrate_spin(engines["spin"], seconds=0.5)


def start(repo):
    return InferenceServer(repository=repo, config=ServerConfig(http_port=0, grpc_port=None, metrics_port=None)).start()


def get(srv, path):
    return httpx.get(f"http://{srv.http_url}{path}", timeout=30)


def post(srv, path, body=None):
    return httpx.post(f"http://{srv.http_url}{path}", json=body or {}, timeout=30)


def spin_json(spin):
    inputs = spin_inputs(np.ones((1, 8), np.float32), spin)
    return {"inputs": [{"name": k, "shape": list(v.shape), "datatype": "FP32" if k == "x" else "INT64",
                        "data": v.ravel().tolist()} for k, v in inputs.items()]}


def test_latest_version_by_default_and_all_with_a_policy(repo):
    srv = start(repo)
    try:
        assert get(srv, "/v2/models/multi").json()["versions"] == ["2"]
        assert get(srv, "/v2/models/multi/versions/1").status_code == 404
        write_config(repo / "multi", version_policy="all")
        assert post(srv, "/v2/repository/models/multi/load").status_code == 200
        meta = get(srv, "/v2/models/multi").json()
        assert meta["versions"] == ["1", "2"]
        assert meta["inputs"][0]["shape"] != get(srv, "/v2/models/multi/versions/1").json()["inputs"][0]["shape"]
        index = post(srv, "/v2/repository/index").json()
        assert {(m["name"], m["version"], m["state"]) for m in index} == {
            ("multi", "1", "READY"), ("multi", "2", "READY"), ("spin", "1", "READY")}
    finally:
        srv.stop()


def test_load_unload_reload_never_drop_in_flight_requests(repo, long_spin):
    srv = start(repo)
    try:
        results = []
        threads = [threading.Thread(target=lambda: results.append(post(srv, "/v2/models/spin/infer",
                                                                       spin_json(long_spin)))) for _ in range(3)]
        for t in threads:
            t.start()
        wait_for(lambda: srv.repository.get("spin").batcher.stats()["queue_depth"] == 2, what="queued requests")
        # other models come and go while spin works
        assert post(srv, "/v2/repository/models/multi/unload").status_code == 200
        assert get(srv, "/v2/models/multi").status_code == 404
        assert post(srv, "/v2/repository/models/multi/load").status_code == 200
        # spin itself is reloaded (new config) and then unloaded with requests in flight and queued
        assert post(srv, "/v2/repository/models/spin/load",
                    {"parameters": {"config": json.dumps({"max_batch_size": 2})}}).status_code == 200
        assert get(srv, "/v2/models/spin/config").json()["max_batch_size"] == 2
        r = post(srv, "/v2/models/spin/infer", spin_json(0))       # the new version serves new requests at once
        assert r.status_code == 200
        assert post(srv, "/v2/repository/models/spin/unload").status_code == 200
        assert post(srv, "/v2/models/spin/infer", spin_json(0)).status_code == 404
        for t in threads:
            t.join()
        assert [r.status_code for r in results] == [200, 200, 200]      # the old version drained its work
        assert all(r.json()["outputs"][0]["data"][0] == 2.0 for r in results)
    finally:
        srv.stop()


def test_bad_config_is_reported_and_keeps_the_old_version(repo):
    srv = start(repo)
    try:
        (repo / "multi" / "config.json").write_text('{"max_batch_size": "lots"')
        r = post(srv, "/v2/repository/models/multi/load")
        assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
        assert get(srv, "/v2/models/multi/ready").status_code == 200
        write_config(repo / "multi", max_batch_size=0)
        r = post(srv, "/v2/repository/models/multi/load")
        assert r.status_code == 400 and "`max_batch_size` must be >= 1" in r.json()["error"]
        assert post(srv, "/v2/repository/models/nope/load").status_code == 404
        assert post(srv, "/v2/repository/models/multi/unload").status_code == 200
        write_config(repo / "multi", version_policy=[7])
        r = post(srv, "/v2/repository/models/multi/load")
        assert r.status_code == 400 and "version(s) [7]" in r.json()["error"]
        entry = [m for m in post(srv, "/v2/repository/index").json() if m["name"] == "multi"][0]
        assert entry["state"] == "UNAVAILABLE" and "version(s) [7]" in entry["reason"]
        assert post(srv, "/v2/repository/index", {"ready": True}).json() == [
            {"name": "spin", "version": "1", "state": "READY", "reason": ""}]
    finally:
        srv.stop()


def test_a_new_model_dropped_into_the_directory_can_be_loaded(repo, engines):
    srv = start(repo)
    try:
        (repo / "late" / "3").mkdir(parents=True)
        shutil.copy(engines["mlp"], repo / "late" / "3" / "model.tfe")
        assert get(srv, "/v2/models/late").status_code == 404
        assert post(srv, "/v2/repository/models/late/load").status_code == 200
        assert get(srv, "/v2/models/late").json()["versions"] == ["3"]
        body = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.5] * 64}]}
        assert post(srv, "/v2/models/late/versions/3/infer", body).status_code == 200
    finally:
        srv.stop()
