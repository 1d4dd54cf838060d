"""Every REST endpoint's body against the Open Inference Protocol's schemas (oip_schema.py), on both HTTP stacks.

The server runs on loopback once with uvicorn + h11 (the default) and once with our own protocol (wire.py):
both serve the same ASGI app, and these tests hold them to the same bodies and statuses. The
KServe Python SDK itself (too heavy for the test extra: kubernetes, fastapi, its own pandas) is
exercised by scripts/kserve_conformance.py; tests here drive the stock tritonclient, which reads
only status codes, to show the bodies did not break it.
"""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
import tritonclient.http as th
from oip_schema import check
from serve_testkit import make_repository

from tensorforge.serve import InferenceServer, ServerConfig


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return make_repository(tmp_path_factory.mktemp("repo"))


@pytest.fixture(scope="module", params=["uvicorn", "wire"])
def server(repo, request):
    config = ServerConfig(http_port=0, grpc_port=None, metrics_port=None, http_impl=request.param)
    with InferenceServer(repository=repo, config=config) as srv:
        yield srv


def call(server, method, path, body=None, status=200, schema=None, headers=None) -> httpx.Response:
    """One request; asserts the status, a JSON content type, and the body against ``schema``."""
    content = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    r = httpx.request(method, f"http://{server.http_url}{path}", content=content, headers=headers, timeout=30)
    assert r.status_code == status, (method, path, r.status_code, r.content[:300])
    assert r.headers["content-type"] == "application/json", (path, r.headers)
    assert r.content, f"{method} {path} answered {status} with an empty body"
    check(r.json(), schema or ("error" if status >= 400 else ""))
    return r


def mlp_request(rows=2, binary=False):
    x = np.linspace(-1, 1, rows * 64, dtype=np.float32).reshape(rows, 64)
    if not binary:
        return {"id": "req-7", "inputs": [{"name": "input", "shape": [rows, 64], "datatype": "FP32",
                                           "data": x.tolist()}]}, None
    head = json.dumps({"inputs": [{"name": "input", "shape": [rows, 64], "datatype": "FP32",
                                   "parameters": {"binary_data_size": x.nbytes}}],
                       "outputs": [{"name": "logits", "parameters": {"binary_data": True}}]}).encode()
    return head + x.tobytes(), {"Inference-Header-Content-Length": str(len(head)),
                                "Content-Type": "application/octet-stream"}


# -- regression (issue 19): health answered 200 with content-type JSON and an empty body -------------------
def test_health_and_readiness_bodies_are_the_protocol_objects(server):
    assert call(server, "GET", "/v2/health/live", schema="server_live").json() == {"live": True}
    assert call(server, "GET", "/v2/health/ready", schema="server_ready").json() == {"ready": True}
    assert call(server, "GET", "/v2/models/tiny_mlp/ready", schema="model_ready").json() == {
        "name": "tiny_mlp", "ready": True}
    assert call(server, "GET", "/v2/models/tiny_mlp/versions/1/ready", schema="model_ready").json()["ready"] is True


def test_metadata_bodies(server):
    meta = call(server, "GET", "/v2", schema="server_metadata").json()
    assert meta["name"] == "tensorforge" and "binary_tensor_data" in meta["extensions"]
    assert call(server, "GET", "/v2/", schema="server_metadata").json() == meta
    for path in ("/v2/models/tiny_mlp", "/v2/models/tiny_mlp/versions/1", "/v2/models/dtypes", "/v2/models/spin"):
        call(server, "GET", path, schema="model_metadata")
    call(server, "GET", "/v2/models/tiny_mlp/config", schema="model_config")


def test_infer_bodies_json_and_binary(server):
    body, _ = mlp_request()
    out = call(server, "POST", "/v2/models/tiny_mlp/infer", body, schema="inference_response").json()
    assert out["id"] == "req-7" and out["model_name"] == "tiny_mlp" and out["outputs"][0]["shape"] == [2, 10]
    body, headers = mlp_request(binary=True)
    r = httpx.post(f"http://{server.http_url}/v2/models/tiny_mlp/versions/1/infer", content=body, headers=headers)
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    n = int(r.headers["inference-header-content-length"])
    header = json.loads(r.content[:n])
    check(header, "inference_response")
    assert n + header["outputs"][0]["parameters"]["binary_data_size"] == len(r.content)


def test_extension_bodies(server):
    call(server, "GET", "/v2/models/stats", schema="statistics")
    call(server, "GET", "/v2/models/tiny_mlp/stats", schema="statistics")
    call(server, "GET", "/v2/models/tiny_mlp/versions/1/stats", schema="statistics")
    index = call(server, "POST", "/v2/repository/index", schema="repository_index").json()
    assert {m["name"] for m in index} == {"tiny_mlp", "spin", "dtypes"}
    call(server, "POST", "/v2/repository/index", {"ready": True}, schema="repository_index")
    try:
        assert call(server, "POST", "/v2/repository/models/dtypes/unload", schema="repository_unload").json() == {
            "name": "dtypes", "unload": True}
        # a model the repository holds but has not loaded is not ready: 503 with the error object
        error = call(server, "GET", "/v2/models/dtypes/ready", status=503).json()["error"]
        assert "not loaded" in error and "/v2/repository/models/dtypes/load" in error
        assert not th.InferenceServerClient(server.http_url).is_model_ready("dtypes")
    finally:
        assert call(server, "POST", "/v2/repository/models/dtypes/load", schema="repository_load").json() == {
            "name": "dtypes", "load": True}
    call(server, "GET", "/v2/models/dtypes/ready", schema="model_ready")


@pytest.mark.parametrize("method, path, body, status", [
    ("GET", "/v2/models/nope", None, 404),
    ("GET", "/v2/models/nope/ready", None, 404),                      # unknown name: not ready, and why
    ("GET", "/v2/models/tiny_mlp/versions/9/ready", None, 404),
    ("GET", "/v2/models/tiny_mlp/versions/9", None, 404),
    ("GET", "/v2/models/nope/stats", None, 404),
    ("GET", "/v2/models/nope/config", None, 404),
    ("POST", "/v2/models/nope/infer", {"inputs": []}, 404),
    ("POST", "/v2/models/tiny_mlp/infer", b"{not json", 400),
    ("POST", "/v2/models/tiny_mlp/infer", {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32",
                                                       "data": [1, 2, 3]}]}, 400),
    ("POST", "/v2/models/tiny_mlp", None, 405),
    ("GET", "/v2/repository/index", None, 405),
    ("POST", "/v2/repository/models/nope/load", None, 404),
    ("GET", "/v2/health/sick", None, 404),
    ("GET", "/v2/nope", None, 404),
    ("GET", "/v1/models", None, 404),
])
def test_error_bodies(server, method, path, body, status):
    call(server, method, path, body, status=status)


def test_a_stopping_server_is_not_ready_with_both_objects(repo):
    """``stop()`` marks the core as shutting down before it closes the listeners; that state answers 503."""
    config = ServerConfig(http_port=0, grpc_port=None, metrics_port=None)
    with InferenceServer([repo / "tiny_mlp" / "1" / "model.tfe"], config=config) as srv:
        srv.core.shutting_down = True
        try:
            r = call(srv, "GET", "/v2/health/ready", status=503)
            assert r.json()["ready"] is False and r.headers["retry-after"]
            check(r.json(), "server_ready")
            assert "shutting down" in call(srv, "GET", "/v2/models/model/ready", status=503).json()["error"]
            assert call(srv, "GET", "/v2/health/live", schema="server_live").json() == {"live": True}
            client = th.InferenceServerClient(srv.http_url)
            assert client.is_server_live() and not client.is_server_ready() and not client.is_model_ready("model")
        finally:
            srv.core.shutting_down = False


def test_tritonclient_still_reads_every_call(server):
    """Triton's client looks at the status only: the bodies changed nothing for it."""
    client = th.InferenceServerClient(server.http_url)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("tiny_mlp") and not client.is_model_ready("nope")
    assert client.get_server_metadata()["name"] == "tensorforge"
    assert client.get_model_metadata("tiny_mlp")["platform"]
    assert client.get_model_repository_index()
    client.unload_model("dtypes")
    client.load_model("dtypes")
    assert client.is_model_ready("dtypes")
    assert client.get_inference_statistics("tiny_mlp")["model_stats"]
    inp = th.InferInput("input", [1, 64], "FP32")
    inp.set_data_from_numpy(np.ones((1, 64), np.float32), binary_data=True)
    assert client.infer("tiny_mlp", [inp]).as_numpy("logits").shape == (1, 10)
