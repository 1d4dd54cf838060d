"""Malformed or oversized declarations over real HTTP and gRPC (issue #13): 400 with {"error": …} /
INVALID_ARGUMENT naming the problem — never a 500 — and a huge timeout leaves timeouts working."""

from __future__ import annotations

import json

import grpc
import httpx
import pytest
from serve_testkit import build_engine
from tritonclient.grpc import service_pb2, service_pb2_grpc

from tensorforge.serve import InferenceServer, ServerConfig


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    engine = build_engine("tiny_mlp", tmp_path_factory.mktemp("limits") / "mlp.tfe")
    with InferenceServer([engine], config=ServerConfig(http_port=0, grpc_port=0, metrics_port=None)) as srv:
        yield srv


def infer_json(shape, data, parameters=None, datatype="FP32"):
    return json.dumps({"inputs": [{"name": "input", "shape": shape, "datatype": datatype, "data": data}],
                       "parameters": parameters or {}}).encode()


CASES = {
    "deep-json": b'{"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32","data":[0]}],"parameters":{"x":'
                 + b"[" * 1000 + b"]" * 1000 + b"}}",
    "deep-data": b'{"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32","data":' + b"[" * 1000 + b"0"
                 + b"]" * 1000 + b"}]}",
    "zero-and-huge": infer_json([0, 2**70], []),
    "rank-65": infer_json([1] * 65, [0.0]),
    "bytes-2**27": b'{"inputs":[{"name":"input","shape":[134217728],"datatype":"BYTES","parameters":'
                   b'{"binary_data_size":0}}]}',
    "bytes-2**40": b'{"inputs":[{"name":"input","shape":[1099511627776],"datatype":"BYTES","parameters":'
                   b'{"binary_data_size":0}}]}',
    "timeout-2**63": infer_json([1, 64], [0.0] * 64, {"timeout": 2**63}),
    "priority-2**63": infer_json([1, 64], [0.0] * 64, {"priority": 2**63}),
}
MESSAGES = {"deep-json": "nests JSON", "deep-data": "nests JSON", "zero-and-huge": "more than",
            "rank-65": "65 dimensions", "bytes-2**27": "BYTES elements", "bytes-2**40": "BYTES elements",
            "timeout-2**63": "'timeout'", "priority-2**63": "'priority'"}


@pytest.mark.parametrize("case", list(CASES))
def test_http_answers_400_naming_the_problem(server, case):
    body = CASES[case]
    headers = {"inference-header-content-length": str(len(body))} if case.startswith("bytes") else {}
    r = httpx.post(f"http://{server.http_url}/v2/models/mlp/infer", content=body, headers=headers, timeout=30)
    assert r.status_code == 400, r.text
    assert MESSAGES[case] in r.json()["error"]


def test_repository_json_nested_too_deep_is_400(server):
    r = httpx.post(f"http://{server.http_url}/v2/repository/index", content=b"[" * 100_000 + b"]" * 100_000)
    assert r.status_code == 400 and "nests JSON" in r.json()["error"]


@pytest.mark.parametrize("shape, datatype, message", [
    ([1] * 65, "FP32", "65 dimensions"),
    ([0, 2**40, 2**40], "FP32", "more than"),
    ([2**27], "BYTES", "BYTES elements"),
])
def test_grpc_answers_invalid_argument(server, shape, datatype, message):
    stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(server.grpc_target))
    request = service_pb2.ModelInferRequest(model_name="mlp")
    request.inputs.add(name="input", datatype=datatype, shape=shape)
    request.raw_input_contents.append(b"")
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in info.value.details()


def test_grpc_huge_timeout_is_invalid_argument(server):
    stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(server.grpc_target))
    request = service_pb2.ModelInferRequest(model_name="mlp")
    request.inputs.add(name="input", datatype="FP32", shape=[1, 64]).contents.fp32_contents.extend([0.0] * 64)
    request.parameters["timeout"].uint64_param = 2**63
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "'timeout'" in info.value.details()
