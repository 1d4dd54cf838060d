"""The KServe v2 codec without sockets: JSON and binary requests, responses, every datatype, bad payloads."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tensorforge.errors import InputError
from tensorforge.serve.grpc_codec import decode_grpc_request, encode_grpc_response
from tensorforge.serve.protocol import (
    DATATYPES,
    InferRequest,
    array_from_bytes,
    array_to_bytes,
    datatype_of,
    decode_http_request,
    dtype_of,
    encode_http_response,
)

NUMERIC = [d for d in DATATYPES if d != "BYTES"]


def pb2():
    """KServe v2 gRPC messages (tritonclient, in the serve extra): a test that needs them skips without it."""
    return pytest.importorskip("tritonclient.grpc").service_pb2


def sample(datatype, shape, seed=0):
    rng = np.random.default_rng(seed)
    dtype = dtype_of(datatype)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -1000), min(info.max, 1000), shape).astype(dtype)


def binary_body(tensors: dict[str, np.ndarray], extra: dict | None = None):
    header = {"inputs": [], **(extra or {})}
    blobs = []
    for name, value in tensors.items():
        blob = array_to_bytes(value)
        header["inputs"].append({"name": name, "shape": list(value.shape), "datatype": datatype_of(value.dtype),
                                 "parameters": {"binary_data_size": len(blob)}})
        blobs.append(blob)
    head = json.dumps(header).encode()
    return head + b"".join(blobs), len(head)


@pytest.mark.parametrize("datatype", NUMERIC)
def test_binary_and_json_decode_every_numeric_datatype(datatype):
    value = sample(datatype, (2, 3))
    body, n = binary_body({"t": value})
    np.testing.assert_array_equal(decode_http_request(body, n).inputs["t"], value)
    as_json = {"inputs": [{"name": "t", "shape": [2, 3], "datatype": datatype, "data": value.ravel().tolist()}]}
    decoded = decode_http_request(json.dumps(as_json).encode(), None)
    np.testing.assert_array_equal(decoded.inputs["t"], value)
    assert decoded.inputs["t"].dtype == value.dtype and decoded.datatypes == {"t": datatype}


def test_json_accepts_nested_data():
    body = {"inputs": [{"name": "t", "shape": [2, 2], "datatype": "INT64", "data": [[1, 2], [3, 4]]}]}
    np.testing.assert_array_equal(decode_http_request(json.dumps(body).encode(), None).inputs["t"], [[1, 2], [3, 4]])


def test_bytes_tensors_match_tritonclient_serialization():
    triton_utils = pytest.importorskip("tritonclient.utils")
    serialize_byte_tensor = triton_utils.serialize_byte_tensor
    deserialize_bytes_tensor = triton_utils.deserialize_bytes_tensor
    value = np.array([b"hello", b"", "wörld".encode()], dtype=object).reshape(3, 1)
    ours = array_to_bytes(value)
    assert ours == serialize_byte_tensor(value).item()
    back = array_from_bytes(ours, "BYTES", [3, 1], "s")
    assert back.ravel().tolist() == deserialize_bytes_tensor(ours).tolist()
    body = {"inputs": [{"name": "s", "shape": [2], "datatype": "BYTES", "data": ["a", "ß"]}]}
    assert decode_http_request(json.dumps(body).encode(), None).inputs["s"].tolist() == [b"a", "ß".encode()]
    with pytest.raises(InputError, match="truncated"):
        array_from_bytes(ours[:-3] + struct.pack("<I", 99), "BYTES", [4], "s")
    with pytest.raises(InputError, match="left over"):
        array_from_bytes(ours + b"x", "BYTES", [3, 1], "s")


@settings(max_examples=40, deadline=None)
@given(datatype=st.sampled_from(NUMERIC), rows=st.integers(1, 4), cols=st.integers(1, 5), seed=st.integers(0, 999),
       binary=st.booleans())
def test_response_round_trips_through_tritonclient_result_parser(datatype, rows, cols, seed, binary):
    InferResult = pytest.importorskip("tritonclient.http").InferResult

    value = sample(datatype, (rows, cols), seed)
    request = InferRequest(inputs={}, datatypes={}, outputs=[("out", binary)], id="q")
    body, header_len = encode_http_response("m", "1", request, {"out": value, "unused": value})
    result = InferResult.from_response_body(body, header_length=header_len)
    got = result.as_numpy("out")
    assert got.dtype == value.dtype
    np.testing.assert_array_equal(got, value)
    assert result.get_output("unused") is None and result.get_response()["id"] == "q"


@pytest.mark.parametrize("header,blob,message", [
    ({"inputs": [{"name": "t", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 8}}]}, b"\0" * 4,
     "truncated"),
    ({"inputs": [{"name": "t", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 4}}]}, b"\0" * 4,
     "needs 8 bytes"),
    ({"inputs": [{"name": "t", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 8}}]}, b"\0" * 9,
     "after the last tensor"),
    ({"inputs": [{"name": "t", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": -8}}]}, b"",
     "non-negative integer"),
    ({"inputs": [{"name": "t", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 8},
                  "data": [1, 2]}]}, b"\0" * 8, "both 'data' and binary_data_size"),
    ({"inputs": [{"name": "t", "shape": [2], "datatype": "FP32"}]}, b"", "neither 'data'"),
    ({"inputs": [{"name": "t", "shape": [1], "datatype": "FP32", "data": [1]},
                 {"name": "t", "shape": [1], "datatype": "FP32", "data": [1]}]}, b"", "given twice"),
    ({"inputs": [{"name": "t", "shape": [2], "datatype": "UINT8", "data": [1, 300]}]}, b"", "outside the UINT8 range"),
    ({"inputs": [{"name": "t", "shape": [2], "datatype": "INT32", "data": [1.5, 2]}]}, b"", "floating-point values"),
    ({"inputs": [{"name": "t", "shape": [2], "datatype": "BOOL", "data": [1, 0]}]}, b"", "integer values"),
    ({"inputs": [{"name": "t", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3]]}]}, b"", "ragged"),
    ({"inputs": [{"name": "t", "shape": "2", "datatype": "FP32", "data": [1, 2]}]}, b"", "shape must be a list"),
    ({"inputs": [{"name": "t", "shape": [2], "datatype": "FP32", "data": 5}]}, b"", "must be a JSON array"),
    ({"inputs": [{"shape": [2], "datatype": "FP32", "data": [1, 2]}]}, b"", "needs a 'name'"),
    ({"inputs": [{"name": "t", "shape": [1], "datatype": "FP32", "data": [1]}], "outputs": "y"}, b"", "'outputs'"),
    ({"inputs": [{"name": "t", "shape": [1], "datatype": "FP32", "data": [1]}], "parameters": {"priority": -1}}, b"",
     "non-negative integer"),
])
def test_bad_payloads_name_the_problem(header, blob, message):
    head = json.dumps(header).encode()
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace("[", r"\[")):
        decode_http_request(head + blob, len(head) if blob or "binary_data_size" in head.decode() else None)


def test_request_parameters_are_read():
    body = {"id": "x1", "inputs": [{"name": "t", "shape": [1], "datatype": "FP32", "data": [1]}],
            "parameters": {"priority": 2, "timeout": 5000, "binary_data_output": True},
            "outputs": [{"name": "y", "parameters": {"binary_data": False}}]}
    req = decode_http_request(json.dumps(body).encode(), None)
    assert (req.id, req.priority, req.timeout_us, req.binary_output, req.outputs) == ("x1", 2, 5000, True,
                                                                                     [("y", False)])


def test_grpc_codec_raw_and_typed_contents():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    req = pb2().ModelInferRequest(model_name="m", id="g")
    req.inputs.add(name="x", datatype="FP32", shape=[2, 3])
    req.raw_input_contents.append(x.tobytes())
    req.parameters["priority"].uint64_param = 2
    req.parameters["timeout"].int64_param = 1000
    decoded = decode_grpc_request(req)
    np.testing.assert_array_equal(decoded.inputs["x"], x)
    assert (decoded.priority, decoded.timeout_us, decoded.outputs) == (2, 1000, None)
    typed = pb2().ModelInferRequest(model_name="m")
    t = typed.inputs.add(name="x", datatype="INT64", shape=[3])
    t.contents.int64_contents.extend([1, 2, 3])
    assert decode_grpc_request(typed).inputs["x"].tolist() == [1, 2, 3]
    t.contents.int64_contents.append(4)
    with pytest.raises(InputError, match="4 elements"):
        decode_grpc_request(typed)
    req.raw_input_contents.append(b"extra")
    with pytest.raises(InputError, match="one per input"):
        decode_grpc_request(req)
    response = encode_grpc_response("m", "1", decoded, {"y": x * 2})
    assert response.outputs[0].name == "y" and list(response.outputs[0].shape) == [2, 3]
    np.testing.assert_array_equal(np.frombuffer(response.raw_output_contents[0], np.float32), (x * 2).ravel())
