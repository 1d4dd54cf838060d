"""Permanent fuzz tests of the server's request surfaces, bounded in time (issue #13).

Hypothesis throws random requests at a real server on loopback, once per HTTP stack (uvicorn, the default,
and our own protocol, wire.py; gRPC is fuzzed once, on the first): raw request bytes on a socket, structured KServe infer bodies, the binary tensor extension with a
lying ``Inference-Header-Content-Length``, and gRPC ``ModelInferRequest`` messages. For every example the
rule is: a client error is a 4xx / a non-INTERNAL gRPC status, a valid request a 200 / OK — never a 5xx /
INTERNAL — and a good request right after it still succeeds (the server is alive and not wedged).
``max_examples`` is bounded so the file runs in well under a minute on two cores; the number of cases
tried per surface is printed by the last test. The server runs in this process, so the last test also
bounds the growth of this process's RSS over the whole run.
"""

from __future__ import annotations

import json
import re
import socket

import grpc
import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serve_testkit import build_engine, dtypes_model, raw_connect
from tritonclient.grpc import service_pb2, service_pb2_grpc

from tensorforge.serve import InferenceServer, ServerConfig
from tensorforge.serve.protocol import DATATYPES

psutil = pytest.importorskip("psutil")

FUZZ = settings(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
CASES: dict[str, int] = {}
OUTCOMES: dict[str, dict[str, int]] = {}        # surface → answer (status / code) → count
# Generous: the server runs in this process, so its RSS also holds Hypothesis's own bookkeeping, the clients,
# allocator caches, pooled body buffers and ORT arenas (about 15-30 MiB over the default run here).
RSS_GROWTH_LIMIT = 100 << 20
GOOD = json.dumps({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.5] * 64}]})


def count(server, surface: str) -> None:
    surface = f"{surface} [{server.config.http_impl}]"
    CASES[surface] = CASES.get(surface, 0) + 1


def outcome(server, surface: str, answer: object) -> None:
    seen = OUTCOMES.setdefault(f"{surface} [{server.config.http_impl}]", {})
    seen[str(answer)] = seen.get(str(answer), 0) + 1


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    return [build_engine("tiny_mlp", root / "mlp.tfe"), build_engine(dtypes_model(), root / "dtypes.tfe")]


@pytest.fixture(scope="module", params=["uvicorn", "wire"])
def server(engines, request):
    config = ServerConfig(http_port=0, grpc_port=0, metrics_port=None, http_impl=request.param,
                          max_request_bytes=1 << 20)
    with InferenceServer(engines, config=config) as srv:
        srv.http = httpx.Client(base_url=f"http://{srv.http_url}", timeout=30)
        channel = grpc.insecure_channel(srv.grpc_target)
        srv.stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        assert_alive(srv)
        assert_alive(srv)
        srv.rss_before = psutil.Process().memory_info().rss
        yield srv
        srv.http.close()
        channel.close()


def assert_alive(server) -> None:
    """A good HTTP and a good gRPC request both succeed."""
    r = server.http.post("/v2/models/mlp/infer", content=GOOD)
    assert r.status_code == 200, r.text
    request = service_pb2.ModelInferRequest(model_name="mlp")
    request.inputs.add(name="input", datatype="FP32", shape=[1, 64]).contents.fp32_contents.extend([0.5] * 64)
    assert len(server.stub.ModelInfer(request, timeout=30).raw_output_contents) == 1


def check_http_status(status: int, text: str, timed: bool = False) -> None:
    # 504 is the documented answer to a request whose own `timeout` ran out in the queue
    assert status == 200 or 400 <= status < 500 or (timed and status == 504), f"{status}: {text[:500]}"


# -- HTTP: raw request bytes on a socket ------------------------------------------------------------------
PATHS = ["/v2/models/mlp/infer", "/v2/models/dtypes/infer", "/v2/models/mlp/versions/1/infer", "/v2/models/mlp",
         "/v2/models/mlp/ready", "/v2/models/mlp/config", "/v2/models/stats", "/v2/health/live", "/v2",
         "/v2/repository/index", "/v2/repository/models/mlp/load", "/v2/models/nope/infer", "/", "*",
         "/v2/models/%00/infer", "/v2/models/mlp/infer?x=1#f", "//v2//models//mlp"]
TOKEN = st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"), min_size=1, max_size=12)
HEADER_NAMES = ["Content-Type", "Content-Encoding", "Transfer-Encoding", "Expect", "Connection",
                "Inference-Header-Content-Length", "Authorization", "Host", "Upgrade"]
HEADER_VALUES = ["application/json", "gzip", "deflate", "br", "chunked", "100-continue", "close", "keep-alive",
                 "0", "-1", "99999999999999999999", "h2c", "", "identity"]


@st.composite
def raw_requests(draw) -> tuple[bytes, bool]:
    """A valid infer request on the wire, with zero to four parts of it replaced or cut; and whether the
    client must half-close to end it (else it asks for ``Connection: close`` and waits for the answer)."""
    method, path, version, body = "POST", "/v2/models/mlp/infer", "HTTP/1.1", GOOD.encode()
    headers: list[tuple[str, str]] = [("Content-Type", "application/json")]
    length = "actual"
    truncate = False
    for mutation in draw(st.lists(st.sampled_from(["method", "path", "version", "body", "header", "length",
                                                    "truncate", "pipeline"]), max_size=4)):
        if mutation == "method":
            method = draw(st.sampled_from(["GET", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT"]) | TOKEN)
        elif mutation == "path":
            path = draw(st.sampled_from(PATHS) | st.text(st.characters(min_codepoint=33, max_codepoint=126),
                                                         max_size=40).map(lambda s: "/" + s))
        elif mutation == "version":
            version = draw(st.sampled_from(["HTTP/1.0", "HTTP/2.0", "HTTP/9", "", "http/1.1", "HTTP/1.1 x"]))
        elif mutation == "body":
            body = draw(st.sampled_from([b"", b"{}", b"[", b"\x00\xff" * 8, b"\x1f\x8b\x08"])
                        | st.binary(max_size=300))
        elif mutation == "header":
            headers.append(draw(st.tuples(st.sampled_from(HEADER_NAMES) | TOKEN, st.sampled_from(HEADER_VALUES)
                                          | st.text(st.characters(min_codepoint=32, max_codepoint=126),
                                                    max_size=20))))
        elif mutation == "length":
            length = draw(st.sampled_from(["none", "short", "long", "junk", "twice"]))
        elif mutation == "truncate":
            truncate = True
        elif mutation == "pipeline":            # a second request right behind the first
            body = body + b"GET /v2/health/live HTTP/1.1\r\nHost: fuzz\r\n\r\n"
    lines = [f"{method} {path} {version}".rstrip().encode("latin-1"), b"Host: fuzz"]
    lines += [f"{k}: {v}".encode("latin-1") for k, v in headers]
    if length == "actual":
        lines.append(b"Content-Length: %d" % len(body))
    elif length == "short":
        lines.append(b"Content-Length: %d" % max(0, len(body) - draw(st.integers(1, 50))))
    elif length == "long":
        lines.append(b"Content-Length: %d" % (len(body) + draw(st.integers(1, 2**40))))
    elif length == "junk":
        lines.append(b"Content-Length: " + draw(st.sampled_from([b"-5", b"1e3", b"0x10", b" 12", b"", b"\xff"])))
    elif length == "twice":
        lines += [b"Content-Length: %d" % len(body), b"Content-Length: %d" % (len(body) + 1)]
    # a request the server may wait on for more bytes (truncated, a longer length, chunked, an upgrade) is
    # ended by a half-close; any other gets its answer and the server's close (so a 200 can come back too)
    waits = truncate or length != "actual" or version != "HTTP/1.1" or any(
        k.lower() in ("transfer-encoding", "connection", "upgrade", "expect", "content-length") for k, _ in headers)
    if not waits:
        lines.append(b"Connection: close")
    message = b"\r\n".join(lines) + b"\r\n\r\n" + body
    if truncate:
        message = message[:draw(st.integers(0, len(message)))]
    return message, waits


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def response_statuses(data: bytes) -> list[int]:
    """Final status codes of the (possibly several, pipelined) HTTP responses in ``data``."""
    statuses = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        match = re.match(rb"HTTP/1\.[01] (\d{3}) ", head)
        assert match, f"not an HTTP response: {data[:300]!r}"
        status = int(match.group(1))
        if 100 <= status < 200:                   # an interim answer (100 Continue): the real one follows
            data = rest
            continue
        statuses.append(status)
        length = re.search(rb"(?im)^content-length: *(\d+)", head)
        if not sep or not length:
            break
        data = rest[int(length.group(1)):]
    return statuses


@settings(FUZZ, max_examples=250)
@given(request=raw_requests())
def test_raw_http_bytes_never_5xx(server, request):
    count(server, "http raw bytes")
    message, half_close = request
    with raw_connect(server, timeout=30) as sock:
        sock.sendall(message)
        if half_close:
            sock.shutdown(socket.SHUT_WR)         # EOF: the server answers what it has, then closes
        try:
            data = read_all(sock)
        except ConnectionResetError:
            data = b""
    statuses = response_statuses(data)
    outcome(server, "http raw bytes", statuses[0] if statuses else "closed")
    assert statuses or half_close, f"a whole request was not answered: {message[:300]!r}"
    for status in statuses:
        check_http_status(status, data.decode("latin-1"))
    assert_alive(server)


# -- HTTP: structured infer bodies --------------------------------------------------------------------------
# Each example starts from a valid request (so a good share reaches the model and answers 200) and applies
# zero to three mutations; the deeper checks (shapes against the model, datatypes, data) are reached that way.
MODELS = {"mlp": [("input", "FP32", 64)], "dtypes": [("h", "FP16", 4), ("a", "UINT8", 4), ("k", "INT32", 4),
                                                     ("b", "BOOL", 4)]}
OUTPUTS = {"mlp": ["output"], "dtypes": ["h_out", "k_out", "b_out"]}
JSON_SCALARS = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8)
ANY_JSON = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)
DIMS = st.integers(0, 4) | st.sampled_from([-1, -2**63, 2**31, 2**40, 2**63, 2**70]) | st.just(64)
SHAPES = (st.lists(DIMS, max_size=4) | st.lists(st.integers(0, 2), min_size=60, max_size=70)
          | st.sampled_from([[1, 64], [2, 64], [0, 64], [64], [1, 4], [3, 4], [0, 4], [4]]) | ANY_JSON)
DATATYPE = st.sampled_from(DATATYPES) | st.sampled_from(["FP8", "fp32", "", "BF16"]) | ANY_JSON
PARAM_VALUES = (st.integers(-2**70, 2**70) | st.sampled_from([0, 1, 2, 1000, 10**6, 86_400 * 10**6, 2**31 - 1])
                | ANY_JSON)
PARAMS = st.dictionaries(st.sampled_from(["timeout", "priority", "binary_data_output", "binary_data_size",
                                          "binary_data", "sequence_id"]) | st.text(max_size=6),
                         PARAM_VALUES, max_size=3)
NAMES = st.sampled_from(["input", "h", "a", "k", "b", "x", "", "output"]) | ANY_JSON
ELEMENTS = {"BOOL": st.booleans(), "UINT8": st.integers(0, 255), "INT32": st.integers(-1000, 1000),
            "FP16": st.floats(-100, 100, width=16), "FP32": st.floats(-100, 100, width=32)}


def valid_json_body(draw, model: str) -> dict:
    rows = draw(st.integers(1, 3))
    inputs = [{"name": name, "shape": [rows, cols], "datatype": datatype,
               "data": draw(st.lists(ELEMENTS[datatype], min_size=rows * cols, max_size=rows * cols))}
              for name, datatype, cols in MODELS[model]]
    return {"inputs": inputs}


@st.composite
def infer_bodies(draw, model: str):
    body = valid_json_body(draw, model)
    inputs = body["inputs"]
    for mutation in draw(st.lists(st.sampled_from(
            ["drop_key", "datatype", "shape", "data", "data_len", "name", "params", "tparams", "outputs", "dup",
             "drop_input", "id", "inputs", "whole"]), max_size=3)):
        item = inputs[draw(st.integers(0, len(inputs) - 1))] if inputs else {}
        if mutation == "drop_key" and item:
            item.pop(draw(st.sampled_from(sorted(item))))
        elif mutation == "datatype":
            item["datatype"] = draw(DATATYPE)
        elif mutation == "shape":
            item["shape"] = draw(SHAPES)
        elif mutation == "data":
            item["data"] = draw(ANY_JSON | st.lists(JSON_SCALARS, max_size=70))
        elif mutation == "data_len" and isinstance(item.get("data"), list):
            item["data"] = item["data"][:-1] if draw(st.booleans()) else item["data"] + [0]
        elif mutation == "name":
            item["name"] = draw(NAMES)
        elif mutation == "params":
            body["parameters"] = draw(PARAMS | ANY_JSON)
        elif mutation == "tparams":
            item["parameters"] = draw(PARAMS | ANY_JSON)
        elif mutation == "outputs":
            body["outputs"] = draw(st.lists(st.fixed_dictionaries(
                {"name": st.sampled_from(OUTPUTS[model] + ["zz", ""]) | ANY_JSON},
                optional={"parameters": PARAMS | st.fixed_dictionaries({"binary_data": ANY_JSON})}), max_size=3)
                | ANY_JSON)
        elif mutation == "dup" and inputs:
            inputs.append(dict(item))
        elif mutation == "drop_input" and inputs:
            inputs.remove(item)
        elif mutation == "id":
            body["id"] = draw(ANY_JSON)
        elif mutation == "inputs":
            body["inputs"] = draw(ANY_JSON)
        elif mutation == "whole":
            return draw(ANY_JSON)
    return body


def timed(body) -> bool:
    params = body.get("parameters") if isinstance(body, dict) else None
    return isinstance(params, dict) and "timeout" in params


@settings(FUZZ, max_examples=250)
@given(data=st.data(), model=st.sampled_from(sorted(MODELS)))
def test_structured_infer_json_never_5xx(server, data, model):
    body = data.draw(infer_bodies(model))
    count(server, "http infer JSON")
    r = server.http.post(f"/v2/models/{model}/infer", content=json.dumps(body).encode())
    outcome(server, "http infer JSON", r.status_code)
    check_http_status(r.status_code, r.text, timed(body))
    answer = json_part(r)
    assert "error" in answer if r.status_code != 200 else "outputs" in answer
    assert_alive(server)


def json_part(r) -> dict:
    """The JSON of an answer: all of it, or its header when outputs came back as binary tensors
    (a request may ask for that with ``binary_data_output``)."""
    size = r.headers.get("inference-header-content-length")
    return json.loads(r.content[:int(size)]) if size is not None else r.json()


# -- HTTP: the binary tensor extension --------------------------------------------------------------------
BINARY = {"FP32": np.float32, "FP16": np.float16, "UINT8": np.uint8, "INT32": np.int32, "BOOL": np.bool_}


@st.composite
def binary_requests(draw, model: str):
    rows = draw(st.integers(1, 3))
    inputs, blobs = [], []
    for name, datatype, cols in MODELS[model]:
        blob = np.ones((rows, cols), BINARY[datatype]).tobytes()
        entry = {"name": name, "shape": [rows, cols], "datatype": datatype}
        if draw(st.integers(0, 3)):
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = np.ones((rows, cols), BINARY[datatype]).reshape(-1).tolist()
        inputs.append(entry)
    binary_items = [item for item in inputs if "parameters" in item]
    for mutation in draw(st.lists(st.sampled_from(["size", "blob", "datatype", "shape", "bytes", "both",
                                                    "out"]), max_size=3)):
        i = draw(st.integers(0, len(binary_items) - 1)) if binary_items else None
        item = binary_items[i] if i is not None else inputs[0]
        if mutation == "size" and i is not None:
            item["parameters"]["binary_data_size"] = draw(
                st.sampled_from([len(blobs[i]) + 1, max(len(blobs[i]) - 1, 0), 0]) | PARAM_VALUES)
        elif mutation == "blob" and i is not None:
            blobs[i] = draw(st.binary(max_size=300) | st.just(blobs[i][:-1]) | st.just(blobs[i] + b"\0"))
        elif mutation == "datatype":
            item["datatype"] = draw(st.sampled_from(DATATYPES))
        elif mutation == "shape":
            item["shape"] = draw(SHAPES)
        elif mutation == "bytes" and i is not None:         # BYTES with length prefixes that may lie
            item["datatype"] = "BYTES"
            blobs[i] = b"".join(draw(st.lists(st.tuples(st.integers(0, 2**32 - 1) | st.integers(0, 6),
                                                        st.binary(max_size=6)), max_size=6).map(
                lambda els: [n.to_bytes(4, "little") + b for n, b in els])))
            item["parameters"]["binary_data_size"] = len(blobs[i])
        elif mutation == "both":
            item["data"] = [1]
        elif mutation == "out":
            inputs[0].setdefault("parameters", {})["binary_data_output"] = True
    header = json.dumps({"inputs": inputs, "outputs": [{"name": o, "parameters": {"binary_data": draw(st.booleans())}}
                                                      for o in OUTPUTS[model]]}).encode()
    body = header + b"".join(blobs)
    hcl = draw(st.just(str(len(header))) | st.sampled_from(
        [str(len(header) - 1), str(len(header) + 1), "0", str(len(body)), str(len(body) + 1), "-1", "abc", "",
         "+1", "0x10", "1.0", str(2**64)]) | st.integers(0, 2**40).map(str))
    return body, hcl


@settings(FUZZ, max_examples=200)
@given(data=st.data(), model=st.sampled_from(sorted(MODELS)))
def test_binary_extension_never_5xx(server, data, model):
    body, hcl = data.draw(binary_requests(model))
    count(server, "http binary extension")
    r = server.http.post(f"/v2/models/{model}/infer", content=body,
                         headers={"Inference-Header-Content-Length": hcl,
                                  "Content-Type": "application/octet-stream"})
    outcome(server, "http binary extension", r.status_code)
    check_http_status(r.status_code, r.text)
    assert_alive(server)


# -- gRPC: ModelInfer --------------------------------------------------------------------------------------
CONTENT_FIELDS = ["bool_contents", "int_contents", "int64_contents", "uint_contents", "uint64_contents",
                  "fp32_contents", "fp64_contents", "bytes_contents"]
FIELD_VALUES = {"bool_contents": st.booleans(), "int_contents": st.integers(-2**31, 2**31 - 1),
                "int64_contents": st.integers(-2**63, 2**63 - 1), "uint_contents": st.integers(0, 2**32 - 1),
                "uint64_contents": st.integers(0, 2**64 - 1), "fp32_contents": st.floats(width=32),
                "fp64_contents": st.floats(), "bytes_contents": st.binary(max_size=5)}
TYPED = {"FP32": "fp32_contents", "UINT8": "uint_contents", "INT32": "int_contents", "BOOL": "bool_contents"}
GRPC_DIMS = st.integers(0, 4) | st.just(64) | st.sampled_from([-1, -2**63, 2**31, 2**40, 2**63 - 1])


@st.composite
def grpc_requests(draw, model: str):
    request = service_pb2.ModelInferRequest(model_name=model, id=draw(st.text(max_size=5)))
    raw = draw(st.booleans()) or model == "dtypes"           # FP16 has no typed contents field
    rows = draw(st.integers(1, 3))
    for name, datatype, cols in MODELS[model]:
        tensor = request.inputs.add(name=name, datatype=datatype, shape=[rows, cols])
        if raw:
            request.raw_input_contents.append(np.ones((rows, cols), BINARY[datatype]).tobytes())
        else:
            getattr(tensor.contents, TYPED[datatype]).extend([1] * (rows * cols))
    for mutation in draw(st.lists(st.sampled_from(["model", "version", "datatype", "shape", "raw", "raw_count",
                                                    "contents", "tparams", "params", "outputs", "name", "dup"]),
                                  max_size=3)):
        i = draw(st.integers(0, len(request.inputs) - 1))
        tensor = request.inputs[i]
        if mutation == "model":
            request.model_name = draw(st.sampled_from(["", "nope", "MLP", "mlp/1", "dtypes", "mlp"]))
        elif mutation == "version":
            request.model_version = draw(st.sampled_from(["1", "2", "x", "-1", "0"]))
        elif mutation == "datatype":
            tensor.datatype = draw(st.sampled_from(DATATYPES) | st.sampled_from(["", "FP8", "fp32"]))
        elif mutation == "shape":
            del tensor.shape[:]
            tensor.shape.extend(draw(st.lists(GRPC_DIMS, max_size=4) | st.lists(st.just(1), min_size=65,
                                                                                 max_size=66)))
        elif mutation == "raw" and i < len(request.raw_input_contents):
            request.raw_input_contents[i] = draw(st.binary(max_size=300))
        elif mutation == "raw_count" and request.raw_input_contents:
            if draw(st.booleans()):
                request.raw_input_contents.pop()
            else:
                request.raw_input_contents.append(b"\0" * 4)
        elif mutation == "contents":
            field = draw(st.sampled_from(CONTENT_FIELDS))
            getattr(tensor.contents, field).extend(draw(st.lists(FIELD_VALUES[field], max_size=8)))
        elif mutation == "tparams":
            tensor.parameters[draw(st.sampled_from(["binary_data_size", "x"]))].int64_param = draw(
                st.integers(-5, 5))
        elif mutation == "params":
            key = draw(st.sampled_from(["timeout", "priority", "sequence_id", "x"]))
            kind = draw(st.sampled_from(["int64_param", "uint64_param", "string_param", "bool_param",
                                         "double_param"]))
            value = draw(st.integers(0, 3) | st.integers(-2**63, 2**63 - 1))
            param = request.parameters[key]
            if kind == "int64_param":
                param.int64_param = value
            elif kind == "uint64_param":
                param.uint64_param = abs(value)
            elif kind == "string_param":
                param.string_param = str(value)
            elif kind == "bool_param":
                param.bool_param = bool(value & 1)
            else:
                param.double_param = float(value)
        elif mutation == "outputs":
            request.outputs.add(name=draw(st.sampled_from(OUTPUTS[model] + ["zz", ""])))
        elif mutation == "name":
            tensor.name = draw(st.sampled_from(["input", "h", "a", "k", "b", "", "zz"]))
        elif mutation == "dup":
            request.inputs.add().CopyFrom(tensor)
            if i < len(request.raw_input_contents):
                request.raw_input_contents.append(request.raw_input_contents[i])
    return request


OK_CODES = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.OUT_OF_RANGE}


@settings(FUZZ, max_examples=250)
@given(data=st.data(), model=st.sampled_from(sorted(MODELS)))
def test_grpc_model_infer_never_internal(server, data, model):
    if server.config.http_impl != "uvicorn":
        pytest.skip("gRPC does not go through the HTTP stack: fuzzed once, with the default one")
    message = data.draw(grpc_requests(model))
    count(server, "grpc ModelInfer")
    timed_out_ok = "timeout" in message.parameters
    try:
        server.stub.ModelInfer(message, timeout=30)
        outcome(server, "grpc ModelInfer", "OK")
    except grpc.RpcError as exc:
        outcome(server, "grpc ModelInfer", exc.code().name)
        allowed = OK_CODES | ({grpc.StatusCode.DEADLINE_EXCEEDED} if timed_out_ok else set())
        assert exc.code() in allowed, f"{exc.code()}: {exc.details()}\n{message}"
    assert_alive(server)


# -- the whole run -----------------------------------------------------------------------------------------
def test_zz_cases_per_surface_and_rss_growth(server, capsys):
    """Runs last for each server: prints the cases tried per surface; the server's process grew < 100 MiB."""
    if not CASES:
        pytest.skip("nothing was fuzzed: run this with the fuzz tests above it")
    assert_alive(server)
    grown = psutil.Process().memory_info().rss - server.rss_before
    with capsys.disabled():
        print(f"\nfuzz cases tried per surface: {CASES}; total {sum(CASES.values())}; "
              f"RSS growth {grown / 2**20:.1f} MiB")
        for surface, answers in OUTCOMES.items():
            print(f"  {surface}: {dict(sorted(answers.items()))}")
    assert grown < RSS_GROWTH_LIMIT, f"the server process grew {grown / 2**20:.1f} MiB over the fuzz run"

