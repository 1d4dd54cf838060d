"""Both HTTP stacks on raw sockets — uvicorn (the default) and our own protocol (serve/wire.py): keep-alive,
pipelining, chunked bodies, 100-continue, HTTP/1.0, malformed requests, early 413 answers, slow senders."""

from __future__ import annotations

import json
import socket
import time

import numpy as np
import pytest
from serve_testkit import build_engine, raw_connect

import tensorforge
from tensorforge.serve import InferenceServer, ServerConfig

LIMIT = 64 << 10


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    return build_engine("tiny_mlp", tmp_path_factory.mktemp("wire") / "mlp.tfe")


@pytest.fixture(scope="module")
def mlp(engine):
    return tensorforge.load(engine, threads=1)


@pytest.fixture(scope="module", params=["uvicorn", "wire"])
def server(engine, request):
    config = ServerConfig(http_port=0, grpc_port=None, metrics_port=None, max_request_bytes=LIMIT,
                          http_impl=request.param)
    with InferenceServer([engine], config=config) as srv:
        yield srv


def connect(server):
    return raw_connect(server, timeout=10)


def read_response(f):
    """(status, headers, body) of one response from a socket file (Content-Length bodies only)."""
    status = int(f.readline().split()[1])
    headers = {}
    while (line := f.readline()) not in (b"\r\n", b""):
        key, value = line.decode().split(":", 1)
        headers[key.strip().lower()] = value.strip()
    body = f.read(int(headers.get("content-length", 0)))
    return status, headers, body


def binary_request(x, path="/v2/models/mlp/infer", extra=b""):
    head = json.dumps({"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                                   "parameters": {"binary_data_size": x.nbytes}}]}).encode()
    body = head + x.tobytes()
    return (b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\nInference-Header-Content-Length: %d\r\n%s\r\n"
            % (path.encode(), len(body), len(head), extra)) + body


def logits(body):
    return np.array(json.loads(body)["outputs"][0]["data"], np.float32)


def test_keep_alive_serves_many_requests_on_one_connection(server, mlp):
    rng = np.random.default_rng(0)
    with connect(server) as sock, sock.makefile("rb") as f:
        for i in range(20):                       # each body is read in place, reusing the connection's buffer
            x = rng.standard_normal((1 + i % 3, 64)).astype(np.float32)
            sock.sendall(binary_request(x))
            status, _, body = read_response(f)
            assert status == 200
            np.testing.assert_allclose(logits(body).reshape(-1, 10), mlp.run(x)["logits"], rtol=1e-5, atol=1e-6)


def test_pipelined_requests_are_answered_in_order(server, mlp):
    xs = [np.full((1, 64), v, np.float32) for v in (0.5, -1.0, 2.0)]
    with connect(server) as sock, sock.makefile("rb") as f:
        sock.sendall(b"".join(binary_request(x) for x in xs) + b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n")
        for x in xs:
            status, _, body = read_response(f)
            assert status == 200
            np.testing.assert_allclose(logits(body), mlp.run(x)["logits"][0], rtol=1e-5, atol=1e-6)
        assert read_response(f)[0] == 200


def test_slow_sender_in_small_pieces(server, mlp):
    x = np.linspace(-1, 1, 2 * 64, dtype=np.float32).reshape(2, 64)
    data = binary_request(x)
    with connect(server) as sock, sock.makefile("rb") as f:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(0, len(data), 97):         # head and body split at odd places
            sock.sendall(data[i:i + 97])
            time.sleep(0.001)
        status, _, body = read_response(f)
    assert status == 200
    np.testing.assert_allclose(logits(body).reshape(2, 10), mlp.run(x)["logits"], rtol=1e-5, atol=1e-6)


def test_chunked_request_body(server, mlp):
    x = np.ones((1, 64), np.float32)
    body = json.dumps({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32",
                                   "data": x.ravel().tolist()}]}).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 100]), body[i:i + 100]) for i in range(0, len(body), 100))
    with connect(server) as sock, sock.makefile("rb") as f:
        sock.sendall(b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + chunks + b"0\r\n\r\n")
        status, _, out = read_response(f)
    assert status == 200
    np.testing.assert_allclose(logits(out), mlp.run(x)["logits"][0], rtol=1e-5, atol=1e-6)


def test_expect_100_continue(server):
    x = np.zeros((1, 64), np.float32)
    request = binary_request(x, extra=b"Expect: 100-continue\r\n")
    head, body = request.split(b"\r\n\r\n", 1)
    with connect(server) as sock, sock.makefile("rb") as f:
        sock.sendall(head + b"\r\n\r\n")
        assert read_response(f)[0] == 100            # the interim answer, before any body byte was sent
        sock.sendall(body)
        assert read_response(f)[0] == 200


def test_http_1_0_closes_after_the_response(server):
    with connect(server) as sock, sock.makefile("rb") as f:
        sock.sendall(b"GET /v2/health/live HTTP/1.0\r\n\r\n")
        status, headers, _ = read_response(f)
        assert status == 200
        assert f.read() == b""                        # the server closed the connection


def test_malformed_request_is_400_and_closed(server):
    with connect(server) as sock, sock.makefile("rb") as f:
        sock.sendall(b"GARBAGE\x00\x01 / HTTP/1.1\r\n\r\n")
        status, headers, body = read_response(f)
        assert status == 400 and headers["content-type"] == "application/json"
        assert "malformed HTTP request" in json.loads(body)["error"]      # the protocol's error object
        assert f.read() == b""                            # the server closed the connection


def test_body_over_the_limit_is_413_and_the_connection_stays_usable(server, mlp):
    big = b"{" + b" " * (2 * LIMIT) + b"}"
    with connect(server) as sock, sock.makefile("rb") as f:
        sock.sendall(b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(big) + big)
        status, _, body = read_response(f)
        assert status == 413 and "limit" in json.loads(body)["error"]
        x = np.ones((1, 64), np.float32)                  # the rest of that body was read and dropped
        sock.sendall(binary_request(x))
        status, _, body = read_response(f)
        assert status == 200
        np.testing.assert_allclose(logits(body), mlp.run(x)["logits"][0], rtol=1e-5, atol=1e-6)


def test_head_gets_no_body(server):
    with connect(server) as sock, sock.makefile("rb") as f:
        sock.sendall(b"HEAD /v2 HTTP/1.1\r\nHost: t\r\n\r\nGET /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n")
        status, headers, _ = read_response_no_body(f)
        assert status in (404, 405, 200) and int(headers["content-length"]) > 0
        assert read_response(f)[0] == 200                 # the next response starts right after the head


def read_response_no_body(f):
    status = int(f.readline().split()[1])
    headers = {}
    while (line := f.readline()) not in (b"\r\n", b""):
        key, value = line.decode().split(":", 1)
        headers[key.strip().lower()] = value.strip()
    return status, headers, b""
