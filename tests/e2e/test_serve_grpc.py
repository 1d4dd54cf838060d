"""The server over real gRPC on loopback, driven by the stock tritonclient.grpc and the official stub."""

from __future__ import annotations

import threading

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tg
from serve_testkit import calibrate_spin, make_repository, spin_inputs, wait_for
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

import tensorforge
from tensorforge.serve import InferenceServer, ServerConfig


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return make_repository(tmp_path_factory.mktemp("repo"))


@pytest.fixture(scope="module")
def server(repo):
    with InferenceServer(repository=repo, config=ServerConfig(http_port=None, grpc_port=0, metrics_port=None)) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    return tg.InferenceServerClient(server.grpc_target)


@pytest.fixture(scope="module")
def long_spin(repo):
    return calibrate_spin(repo / "spin" / "1" / "model.tfe", seconds=0.6)


def spin_stats(client):
    s = client.get_inference_statistics("spin", as_json=True)["model_stats"][0]
    return s


def spin_live(server):
    """Live gauges come from the HTTP-only extension block; over gRPC read them from the repository."""
    return server.repository.get("spin").batcher.stats()


def spin_request(spin=0, idx=0, rows=1):
    inputs = []
    for name, value in spin_inputs(np.arange(8 * rows, dtype=np.float32).reshape(rows, 8), spin, idx).items():
        inp = tg.InferInput(name, list(value.shape), "FP32" if name == "x" else "INT64")
        inp.set_data_from_numpy(value)
        inputs.append(inp)
    return inputs


def test_health_metadata_config(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.get_server_metadata(as_json=True)["name"] == "tensorforge"
    assert client.is_model_ready("tiny_mlp") and not client.is_model_ready("nope")
    meta = client.get_model_metadata("tiny_mlp", as_json=True)
    assert meta["inputs"][0] == {"name": "input", "datatype": "FP32", "shape": ["-1", "64"]}
    config = client.get_model_config("tiny_mlp", as_json=True)["config"]
    assert config["max_batch_size"] == 16 and config["input"][0]["dims"] == ["64"]


def test_infer_with_raw_contents_matches_session(client, repo):
    session = tensorforge.load(repo / "tiny_mlp" / "1" / "model.tfe", threads=1)
    x = np.random.default_rng(3).standard_normal((4, 64)).astype(np.float32)
    inp = tg.InferInput("input", [4, 64], "FP32")
    inp.set_data_from_numpy(x)
    result = client.infer("tiny_mlp", [inp], outputs=[tg.InferRequestedOutput("logits")], request_id="g1")
    np.testing.assert_allclose(result.as_numpy("logits"), session.run(x)["logits"], rtol=1e-5, atol=1e-6)
    assert result.get_response().id == "g1"


def test_typed_contents_and_datatypes(server):
    stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(server.grpc_target))
    request = service_pb2.ModelInferRequest(model_name="dtypes")
    a = np.array([[1, 2, 3, 250]], np.uint8)
    k = np.array([[-1, 2, -3, 4]], np.int32)
    b = np.array([[True, False, True, False]])
    h = np.array([[0.5, 1.5, -2.0, 0.0]], np.float16)
    t = request.inputs.add(name="a", datatype="UINT8", shape=[1, 4])
    t.contents.uint_contents.extend(a.ravel().tolist())
    t = request.inputs.add(name="k", datatype="INT32", shape=[1, 4])
    t.contents.int_contents.extend(k.ravel().tolist())
    t = request.inputs.add(name="b", datatype="BOOL", shape=[1, 4])
    t.contents.bool_contents.extend(b.ravel().tolist())
    t = request.inputs.add(name="h", datatype="FP16", shape=[1, 4])
    with pytest.raises(grpc.RpcError) as info:                # FP16 has no typed field
        stub.ModelInfer(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "raw_input_contents" in info.value.details()
    # the same request in raw form (what tritonclient sends) works for every datatype
    raw = service_pb2.ModelInferRequest(model_name="dtypes")
    for name, value, dt in (("h", h, "FP16"), ("a", a, "UINT8"), ("k", k, "INT32"), ("b", b, "BOOL")):
        raw.inputs.add(name=name, datatype=dt, shape=list(value.shape))
        raw.raw_input_contents.append(value.tobytes())
    response = stub.ModelInfer(raw)
    outs = {o.name: (o, blob) for o, blob in zip(response.outputs, response.raw_output_contents)}
    assert np.frombuffer(outs["k_out"][1], np.int32).tolist() == (a.astype(np.int32) * k).ravel().tolist()
    assert np.frombuffer(outs["b_out"][1], np.bool_).tolist() == (~b).ravel().tolist()
    assert outs["h_out"][0].datatype == "FP16"


def test_concurrent_multi_sample_requests_get_their_own_rows(server, repo):
    session = tensorforge.load(repo / "tiny_mlp" / "1" / "model.tfe", threads=1)
    errors = []

    def worker(cid):
        client = tg.InferenceServerClient(server.grpc_target)
        rng = np.random.default_rng(cid)
        for i in range(12):
            rows = int(rng.integers(1, 5))
            x = rng.standard_normal((rows, 64)).astype(np.float32)
            inp = tg.InferInput("input", [rows, 64], "FP32")
            inp.set_data_from_numpy(x)
            got = client.infer("tiny_mlp", [inp]).as_numpy("logits")
            if got.shape != (rows, 10) or not np.allclose(got, session.run(x)["logits"], rtol=1e-4, atol=1e-5):
                errors.append((cid, i))
        client.close()

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_status_codes(client):
    with pytest.raises(InferenceServerException) as info:
        client.get_model_metadata("nope")
    assert info.value.status() == "StatusCode.NOT_FOUND"
    inp = tg.InferInput("input", [1, 32], "FP32")
    inp.set_data_from_numpy(np.zeros((1, 32), np.float32))
    with pytest.raises(InferenceServerException, match="axis 1 must be 64") as info:
        client.infer("tiny_mlp", [inp])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    with pytest.raises(InferenceServerException, match="GatherElements") as info:
        client.infer("spin", spin_request(idx=50))          # a real ORT failure at run time
    assert info.value.status() == "StatusCode.INTERNAL"
    assert client.infer("spin", spin_request()).as_numpy("y")[0, 1] == 2.0      # still serving


def _occupy(server, client, spin):
    t = threading.Thread(target=lambda: client.infer("spin", spin_request(spin=spin)))
    t.start()
    wait_for(lambda: spin_live(server)["busy_instances"] == 1, what="the instance to be busy")
    return t


def test_queue_full_is_unavailable(server, client, long_spin):
    busy = _occupy(server, client, long_spin)
    waiting = [threading.Thread(target=lambda: client.infer("spin", spin_request())) for _ in range(2)]
    for t in waiting:
        t.start()
    wait_for(lambda: spin_live(server)["queue_depth"] == 2, what="two queued requests")
    with pytest.raises(InferenceServerException, match="queue full") as info:
        client.infer("spin", spin_request())
    assert info.value.status() == "StatusCode.UNAVAILABLE"
    for t in [busy, *waiting]:
        t.join()


def test_timeout_parameter_is_deadline_exceeded(server, client, long_spin):
    before = spin_stats(client)
    busy = _occupy(server, client, long_spin)
    with pytest.raises(InferenceServerException, match="timed out") as info:
        client.infer("spin", spin_request(), timeout=20_000)     # µs, Triton's request parameter
    assert info.value.status() == "StatusCode.DEADLINE_EXCEEDED"
    busy.join()
    after = spin_stats(client)
    assert int(after["execution_count"]) == int(before["execution_count"]) + 1


def test_client_deadline_drops_queued_work(server, client, long_spin):
    before = spin_live(server)
    busy = _occupy(server, client, long_spin)
    with pytest.raises(InferenceServerException) as info:
        client.infer("spin", spin_request(), client_timeout=0.1)     # the RPC is cancelled client-side
    assert info.value.status() == "StatusCode.DEADLINE_EXCEEDED"
    wait_for(lambda: spin_live(server)["cancelled"] == before["cancelled"] + 1, what="the cancellation")
    busy.join()
    assert spin_live(server)["batches"] == before["batches"] + 1      # the dropped request never ran


def test_repository_calls(client):
    index = client.get_model_repository_index(as_json=True)["models"]
    assert {m["name"] for m in index} == {"tiny_mlp", "spin", "dtypes"}
    client.unload_model("dtypes")
    assert not client.is_model_ready("dtypes")
    states = {m["name"]: m.get("state") for m in client.get_model_repository_index(as_json=True)["models"]}
    assert states["dtypes"] == "UNAVAILABLE"
    client.load_model("dtypes", config='{"max_batch_size": 4}')
    assert client.is_model_ready("dtypes")
    assert client.get_model_config("dtypes", as_json=True)["config"]["max_batch_size"] == 4
    with pytest.raises(InferenceServerException, match="unknown model config key") as info:
        client.load_model("dtypes", config='{"max_batch": 4}')
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert client.is_model_ready("dtypes")                    # a failed reload keeps the old version serving
    with pytest.raises(InferenceServerException) as info:
        client.load_model("nope")
    assert info.value.status() == "StatusCode.NOT_FOUND"


def test_statistics(client):
    stats = client.get_inference_statistics("tiny_mlp", as_json=True)["model_stats"][0]
    assert int(stats["inference_count"]) > 0 and int(stats["execution_count"]) > 0
    assert stats["batch_stats"]
    all_stats = client.get_inference_statistics(as_json=True)["model_stats"]
    assert {s["name"] for s in all_stats} >= {"tiny_mlp", "spin"}


def test_bearer_token_auth(repo):
    config = ServerConfig(http_port=None, grpc_port=0, metrics_port=None, auth_token="tok")
    with InferenceServer([repo / "tiny_mlp" / "1" / "model.tfe"], config=config) as srv:
        client = tg.InferenceServerClient(srv.grpc_target)
        assert client.is_server_live()                        # health stays open
        with pytest.raises(InferenceServerException, match="bearer token") as info:
            client.get_model_metadata("model")
        assert info.value.status() == "StatusCode.UNAUTHENTICATED"
        meta = client.get_model_metadata("model", headers={"authorization": "Bearer tok"}, as_json=True)
        assert meta["name"] == "model"
        client.close()
