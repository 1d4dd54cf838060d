"""The server over real HTTP on loopback, driven by the stock tritonclient and raw requests."""

from __future__ import annotations

import json
import socket
import struct
import threading

import httpx
import numpy as np
import pytest
import tritonclient.http as th
from prometheus_client.parser import text_string_to_metric_families
from serve_testkit import calibrate_spin, make_repository, spin_inputs, wait_for
from tritonclient.utils import InferenceServerException

import tensorforge
from tensorforge.serve import InferenceServer, ServerConfig


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return make_repository(tmp_path_factory.mktemp("repo"))


@pytest.fixture(scope="module")
def server(repo):
    config = ServerConfig(http_port=0, grpc_port=None, metrics_port=0, max_request_bytes=1 << 20)
    with InferenceServer(repository=repo, config=config) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    return th.InferenceServerClient(server.http_url)


@pytest.fixture(scope="module")
def mlp(repo):
    return tensorforge.load(repo / "tiny_mlp" / "1" / "model.tfe", threads=1)


def url(server, path):
    return f"http://{server.http_url}{path}"


def stats(server, model):
    return httpx.get(url(server, f"/v2/models/{model}/stats")).json()["model_stats"][0]


def spin_call(server, spin=0, idx=0, priority=0, timeout_us=None, rows=1):
    """One raw JSON request to the spin model; returns (status, body)."""
    params = {}
    if priority:
        params["priority"] = priority
    if timeout_us:
        params["timeout"] = timeout_us
    inputs = spin_inputs(np.arange(8 * rows, dtype=np.float32).reshape(rows, 8), spin, idx)
    body = {"inputs": [{"name": k, "shape": list(v.shape), "datatype": "FP32" if k == "x" else "INT64",
                        "data": v.ravel().tolist()} for k, v in inputs.items()], "parameters": params}
    r = httpx.post(url(server, "/v2/models/spin/infer"), json=body, timeout=30)
    return r.status_code, r.json() if r.content else {}


def test_health_and_metadata(server, client):
    assert client.is_server_live() and client.is_server_ready()
    meta = client.get_server_metadata()
    assert meta["name"] == "tensorforge" and "binary_tensor_data" in meta["extensions"]
    assert client.is_model_ready("tiny_mlp") and client.is_model_ready("tiny_mlp", "1")
    assert not client.is_model_ready("nope")
    m = client.get_model_metadata("tiny_mlp")
    assert m["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}]
    assert m["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}] and m["versions"] == ["1"]
    assert client.get_model_metadata("tiny_mlp", "1")["name"] == "tiny_mlp"
    cfg = client.get_model_config("tiny_mlp")
    assert cfg["max_batch_size"] == 16 and cfg["dynamic_batching"]["max_queue_delay_microseconds"] == 5000
    assert cfg["instance_group"][0]["count"] == 2


@pytest.mark.parametrize("binary", [True, False])
def test_infer_matches_in_process_session(client, mlp, binary):
    x = np.random.default_rng(1).standard_normal((3, 64)).astype(np.float32)
    inp = th.InferInput("input", [3, 64], "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    out = th.InferRequestedOutput("logits", binary_data=binary)
    result = client.infer("tiny_mlp", [inp], outputs=[out], request_id="r-7")
    np.testing.assert_allclose(result.as_numpy("logits"), mlp.run(x)["logits"], rtol=1e-5, atol=1e-6)
    assert result.get_response()["id"] == "r-7"
    assert ("parameters" in result.get_response()["outputs"][0]) == binary


def test_all_outputs_binary_by_default(client, mlp):
    x = np.ones((1, 64), np.float32)
    inp = th.InferInput("input", [1, 64], "FP32")
    inp.set_data_from_numpy(x)
    result = client.infer("tiny_mlp", [inp])              # no outputs listed → binary_data_output
    np.testing.assert_allclose(result.as_numpy("logits"), mlp.run(x)["logits"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("binary", [True, False])
def test_datatypes_round_trip(client, binary):
    rng = np.random.default_rng(2)
    h = rng.standard_normal((2, 4)).astype(np.float16)
    a = rng.integers(0, 255, (2, 4)).astype(np.uint8)
    k = rng.integers(-50, 50, (2, 4)).astype(np.int32)
    b = rng.integers(0, 2, (2, 4)).astype(bool)
    inputs = []
    for name, value, dt in (("h", h, "FP16"), ("a", a, "UINT8"), ("k", k, "INT32"), ("b", b, "BOOL")):
        inp = th.InferInput(name, list(value.shape), dt)
        inp.set_data_from_numpy(value, binary_data=binary)
        inputs.append(inp)
    outs = [th.InferRequestedOutput(n, binary_data=binary) for n in ("h_out", "k_out", "b_out")]
    r = client.infer("dtypes", inputs, outputs=outs)
    np.testing.assert_array_equal(r.as_numpy("h_out"), h + a.astype(np.float16))
    np.testing.assert_array_equal(r.as_numpy("k_out"), a.astype(np.int32) * k)
    np.testing.assert_array_equal(r.as_numpy("b_out"), ~b)


def test_concurrent_multi_sample_requests_get_their_own_rows(server, mlp):
    errors: list[str] = []
    before = stats(server, "tiny_mlp")["execution_count"]

    def worker(cid: int) -> None:
        client = th.InferenceServerClient(server.http_url)
        rng = np.random.default_rng(100 + cid)
        for i in range(12):
            rows = int(rng.integers(1, 5))
            x = rng.standard_normal((rows, 64)).astype(np.float32)
            inp = th.InferInput("input", [rows, 64], "FP32")
            inp.set_data_from_numpy(x, binary_data=bool(i % 2))
            got = client.infer("tiny_mlp", [inp]).as_numpy("logits")
            if got.shape != (rows, 10) or not np.allclose(got, mlp.run(x)["logits"], rtol=1e-4, atol=1e-5):
                errors.append(f"client {cid} request {i}")
        client.close()

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    after = stats(server, "tiny_mlp")
    assert after["execution_count"] - before < 72          # requests were merged into batches
    assert max(b["batch_size"] for b in after["batch_stats"]) <= 16


def test_backend_failure_fails_only_that_request(server):
    assert spin_call(server)[0] == 200
    status, body = spin_call(server, idx=99)               # GatherElements index out of range in ORT
    assert status == 500 and "GatherElements" in body["error"]
    status, body = spin_call(server)
    assert status == 200 and body["outputs"][0]["data"][:3] == [0.0, 2.0, 4.0]
    assert stats(server, "spin")["tensorforge"]["backend_error"] >= 1


@pytest.fixture(scope="module")
def long_spin(repo):
    """Loop turns that keep the spin model busy for ~0.6 s on this machine (calibrated, not asserted)."""
    return calibrate_spin(repo / "spin" / "1" / "model.tfe", seconds=0.6)


def _occupy(server, spin):
    """Start a long request in the background and wait until the spin model's only instance runs it."""
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("r", spin_call(server, spin=spin)))
    t.start()
    wait_for(lambda: stats(server, "spin")["tensorforge"]["busy_instances"] == 1, what="the instance to be busy")
    return t, result


def test_queue_full_is_rejected_at_once_with_retry_after(server, long_spin):
    busy, first = _occupy(server, long_spin)
    waiting = [threading.Thread(target=spin_call, args=(server,)) for _ in range(2)]
    for t in waiting:
        t.start()
    wait_for(lambda: stats(server, "spin")["tensorforge"]["queue_depth"] == 2, what="two queued requests")
    inputs = spin_inputs(np.zeros((1, 8)))
    body = {"inputs": [{"name": k, "shape": list(v.shape), "datatype": "FP32" if k == "x" else "INT64",
                        "data": v.ravel().tolist()} for k, v in inputs.items()]}
    r = httpx.post(url(server, "/v2/models/spin/infer"), json=body)
    assert r.status_code == 503 and r.headers["retry-after"] == "1" and "queue full" in r.json()["error"]
    for t in [busy, *waiting]:
        t.join()
    assert first["r"][0] == 200


def test_timeout_drops_the_request_before_compute(server, long_spin):
    before = stats(server, "spin")
    busy, _ = _occupy(server, long_spin)
    status, body = spin_call(server, timeout_us=20_000)
    assert status == 504 and "timed out" in body["error"]
    busy.join()
    after = stats(server, "spin")
    assert after["tensorforge"]["timed_out"] == before["tensorforge"]["timed_out"] + 1
    assert after["execution_count"] == before["execution_count"] + 1     # only the occupying request ran


def test_priority_serves_the_high_level_first(server, long_spin):
    busy, _ = _occupy(server, long_spin)
    done: list[str] = []
    low = threading.Thread(target=lambda: (spin_call(server, spin=200, priority=2), done.append("low")))
    low.start()
    wait_for(lambda: stats(server, "spin")["tensorforge"]["queue_depth"] == 1, what="the low-priority request")
    high = threading.Thread(target=lambda: (spin_call(server, spin=200, priority=1), done.append("high")))
    high.start()
    wait_for(lambda: stats(server, "spin")["tensorforge"]["queue_depth"] == 2, what="the high-priority request")
    for t in (busy, low, high):
        t.join()
    assert done == ["high", "low"]


def test_disconnected_client_is_dropped_before_compute(server, long_spin):
    before = stats(server, "spin")
    busy, _ = _occupy(server, long_spin)
    inputs = spin_inputs(np.zeros((1, 8)))
    payload = json.dumps({"inputs": [{"name": k, "shape": list(v.shape),
                                      "datatype": "FP32" if k == "x" else "INT64", "data": v.ravel().tolist()}
                                     for k, v in inputs.items()]}).encode()
    host, port = server.http_url.split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(b"POST /v2/models/spin/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)
    wait_for(lambda: stats(server, "spin")["tensorforge"]["queue_depth"] == 1, what="the request to queue")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()                                              # the client goes away while queued
    wait_for(lambda: stats(server, "spin")["tensorforge"]["cancelled"] == before["tensorforge"]["cancelled"] + 1,
             what="the cancellation")
    busy.join()
    assert stats(server, "spin")["execution_count"] == before["execution_count"] + 1


def _post(server, path, body: bytes, headers=None):
    return httpx.post(url(server, path), content=body, headers=headers or {})


def _binary_body(header: dict, blob: bytes):
    head = json.dumps(header).encode()
    return head + blob, {"Inference-Header-Content-Length": str(len(head)), "Content-Type": "application/octet-stream"}


BAD_JSON = [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "JSON must be an object"),
    (b'{"inputs": []}', "non-empty 'inputs'"),
    (b'{"inputs": [{"name": "wrong", "shape": [1, 64], "datatype": "FP32", "data": ' + str([0.0] * 64).encode() + b"}]}",
     "missing input(s) ['input']; unexpected input(s) ['wrong']"),
    (b'{"inputs": [{"name": "input", "shape": [1, 63], "datatype": "FP32", "data": ' + str([0.0] * 63).encode() + b"}]}",
     "model 'tiny_mlp' expects [N, 64] (axis 1 must be 64)"),
    (b'{"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP64", "data": ' + str([0.0] * 64).encode() + b"}]}",
     "dtype float64; model 'tiny_mlp' expects float32"),
    (b'{"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP99", "data": []}]}', "unknown datatype 'FP99'"),
    (b'{"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [1, 2]}]}', "2 data elements"),
    (b'{"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": ' + str(["a"] * 64).encode().replace(b"'", b'"') + b"}]}",
     "string values"),
    (b'{"inputs": [{"name": "input", "shape": [1, -64], "datatype": "FP32", "data": []}]}', "non-negative integers"),
    (b'{"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": ' + str([0.0] * 63 + ["NaN"]).encode().replace(b"'", b"") + b"}]}",
     "holds 1 NaN/Inf value(s)"),
    (b'{"inputs": [{"name": "input", "shape": [17, 64], "datatype": "FP32", "data": ' + str([0.0] * 17 * 64).encode() + b"}]}",
     "batch 17, more than the max batch 16 of model 'tiny_mlp'"),
    (b'{"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": ' + str([0.0] * 64).encode() + b'}], "outputs": [{"name": "nope"}]}',
     "no output(s) ['nope']"),
    (b'{"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": ' + str([0.0] * 64).encode() + b'}], "parameters": {"priority": 5}}',
     "priority 5 is out of range"),
]


@pytest.mark.parametrize("body,message", BAD_JSON, ids=[m for _, m in BAD_JSON])
def test_bad_json_requests_are_400_naming_the_problem(server, body, message):
    r = _post(server, "/v2/models/tiny_mlp/infer", body)
    assert r.status_code == 400, r.text
    assert message in r.json()["error"]


def test_bad_binary_requests_are_400(server):
    header = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32",
                          "parameters": {"binary_data_size": 256}}]}
    ok_blob = np.zeros(64, np.float32).tobytes()
    body, headers = _binary_body(header, ok_blob)
    assert _post(server, "/v2/models/tiny_mlp/infer", body, headers).status_code == 200
    body, headers = _binary_body(header, ok_blob[:100])                         # truncated payload
    r = _post(server, "/v2/models/tiny_mlp/infer", body, headers)
    assert r.status_code == 400 and "truncated" in r.json()["error"]
    body, headers = _binary_body(header, ok_blob + b"xx")                       # trailing bytes
    r = _post(server, "/v2/models/tiny_mlp/infer", body, headers)
    assert r.status_code == 400 and "after the last tensor" in r.json()["error"]
    header["inputs"][0]["parameters"]["binary_data_size"] = 200                 # wrong byte count for the shape
    body, headers = _binary_body(header, ok_blob[:200])
    r = _post(server, "/v2/models/tiny_mlp/infer", body, headers)
    assert r.status_code == 400 and "needs 256 bytes" in r.json()["error"]
    headers["Inference-Header-Content-Length"] = str(len(body) + 5)             # header length past the body
    r = _post(server, "/v2/models/tiny_mlp/infer", body, headers)
    assert r.status_code == 400 and "Inference-Header-Content-Length" in r.json()["error"]


def test_unknown_model_version_and_route_are_404(server):
    r = httpx.get(url(server, "/v2/models/nope"))
    assert r.status_code == 404 and "'nope' is not loaded" in r.json()["error"]
    r = httpx.get(url(server, "/v2/models/tiny_mlp/versions/7"))
    assert r.status_code == 404 and "no loaded version '7'" in r.json()["error"]
    r = _post(server, "/v2/models/nope/infer", b"{}")
    assert r.status_code == 404
    assert httpx.get(url(server, "/v3/whatever")).status_code == 404


def test_body_size_limit_is_413(server):
    big = b"{" + b" " * (2 << 20) + b"}"
    r = _post(server, "/v2/models/tiny_mlp/infer", big)
    assert r.status_code == 413 and "limit" in r.json()["error"]


def test_server_keeps_serving_after_bad_requests(client, mlp):
    x = np.ones((2, 64), np.float32)
    inp = th.InferInput("input", [2, 64], "FP32")
    inp.set_data_from_numpy(x)
    np.testing.assert_allclose(client.infer("tiny_mlp", [inp]).as_numpy("logits"), mlp.run(x)["logits"], rtol=1e-5)


def test_tritonclient_reports_server_errors(client):
    inp = th.InferInput("input", [1, 63], "FP32")
    inp.set_data_from_numpy(np.zeros((1, 63), np.float32))
    with pytest.raises(InferenceServerException, match="axis 1 must be 64") as info:
        client.infer("tiny_mlp", [inp])
    assert info.value.status() == "400"


def test_statistics_and_metrics_agree(server, client):
    x = np.ones((1, 64), np.float32)
    inp = th.InferInput("input", [1, 64], "FP32")
    inp.set_data_from_numpy(x)
    for _ in range(3):
        client.infer("tiny_mlp", [inp])
    assert spin_call(server, idx=99)[0] == 500            # one backend error of this test's own
    text = httpx.get(server.metrics_url).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("tensorforge_requests", "tensorforge_request_duration_seconds", "tensorforge_queue_duration_seconds",
                 "tensorforge_compute_duration_seconds", "tensorforge_batch_size", "tensorforge_batch_fill_ratio",
                 "tensorforge_queue_depth", "tensorforge_inflight_requests", "tensorforge_busy_instances",
                 "tensorforge_restarts"):
        assert name in families, name

    def sample(family, suffix="", **labels):
        return sum(s.value for s in families[family].samples if s.name == family + suffix
                   and all(s.labels.get(k) == v for k, v in labels.items()))

    st = client.get_inference_statistics("tiny_mlp")["model_stats"][0]
    assert sample("tensorforge_requests", "_total", model="tiny_mlp", outcome="success") == st["inference_stats"]["success"]["count"]
    assert sample("tensorforge_requests", "_total", model="tiny_mlp", outcome="bad_request") == st["tensorforge"]["bad_request"]
    assert sample("tensorforge_batch_size", "_count", model="tiny_mlp") == st["execution_count"]
    assert sample("tensorforge_queue_duration_seconds", "_count", model="tiny_mlp", phase="batch_fill") > 0
    # whatever earlier tests did to spin, both views count it the same (they read one store)
    spin = client.get_inference_statistics("spin")["model_stats"][0]["tensorforge"]
    for outcome in ("rejected", "timed_out", "cancelled", "backend_error"):
        assert sample("tensorforge_requests", "_total", model="spin", outcome=outcome) == spin[outcome], outcome
    assert spin["backend_error"] >= 1
    assert sample("tensorforge_restarts", "_total", model="tiny_mlp", part="instance_process") == 0
    fill = sample("tensorforge_batch_fill_ratio", "_sum", model="tiny_mlp") / sample("tensorforge_batch_fill_ratio", "_count", model="tiny_mlp")
    assert 0 < fill <= 1


def test_bearer_token_auth(repo):
    config = ServerConfig(http_port=0, grpc_port=None, metrics_port=None, auth_token="s3cret")
    with InferenceServer([repo / "tiny_mlp" / "1" / "model.tfe"], config=config) as srv:
        assert httpx.get(url(srv, "/v2/health/live")).status_code == 200          # health stays open
        r = httpx.get(url(srv, "/v2/models/model"))
        assert r.status_code == 401 and "bearer token" in r.json()["error"]
        assert httpx.get(url(srv, "/v2/models/model"), headers={"Authorization": "Bearer nope"}).status_code == 401
        client = th.InferenceServerClient(srv.http_url)
        meta = client.get_model_metadata("model", headers={"Authorization": "Bearer s3cret"})
        assert meta["name"] == "model"                        # an engine file is served under its file stem
