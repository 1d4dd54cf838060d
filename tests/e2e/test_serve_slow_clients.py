"""Clients that claim big bodies or send slowly (issue #13): memory follows the bytes that arrived, auth is
answered before the body, and a head or body that stalls or trickles is cut off by its timeout (408, close)."""

from __future__ import annotations

import json

import pytest
from serve_testkit import build_engine, raw_connect, wait_for

from tensorforge.serve import InferenceServer, ServerConfig

CLAIMED = 64 << 20          # what the head claims; one byte follows


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    return build_engine("tiny_mlp", tmp_path_factory.mktemp("slow") / "mlp.tfe")


@pytest.fixture(scope="module")
def server(engine):
    # short read timeouts so a stalled client is cut off quickly; the tests wait for the close, not for time
    config = ServerConfig(http_port=0, grpc_port=None, metrics_port=None, max_request_bytes=CLAIMED,
                          http_parser="httptools", header_timeout_s=0.3, body_timeout_s=0.3)
    with InferenceServer([engine], config=config) as srv:
        yield srv


@pytest.fixture(scope="module")
def auth_server(engine):
    # default (long) timeouts: these tests look at connections that must still be open
    config = ServerConfig(http_port=0, grpc_port=None, metrics_port=None, max_request_bytes=CLAIMED,
                          http_parser="httptools", auth_token="s3cret")
    with InferenceServer([engine], config=config) as srv:
        yield srv


def connect(server):
    return raw_connect(server, timeout=20)


def read_until_closed(sock):
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


TOKEN = b"Authorization: Bearer s3cret\r\n"


def claiming_head(path=b"/v2/models/mlp/infer", extra=b""):
    return b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n%s\r\n" % (path, CLAIMED, extra)


def held_bytes(server):
    """Bytes of body buffer each open connection holds for the request it is reading."""
    return [len(c.parsing.buffer) for c in list(server.wire.connections)
            if c.parsing is not None and c.parsing.buffer is not None]


def test_a_claimed_huge_body_pins_little_memory(auth_server):
    socks = [connect(auth_server) for _ in range(4)]
    try:
        for sock in socks:
            sock.sendall(claiming_head(extra=TOKEN) + b"{")
        wait_for(lambda: len(held_bytes(auth_server)) >= 4, what="four bodies being read")
        assert max(held_bytes(auth_server)) <= (1 << 20) + 64   # 1 MiB to start with, not the claimed 64 MiB
    finally:
        for sock in socks:
            sock.close()


def test_a_body_arriving_in_pieces_grows_its_buffer_and_is_served(auth_server):
    x = [[0.25] * 64]
    body = json.dumps({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": x}]}).encode()
    body = body + b" " * (3 << 20)                               # JSON allows trailing spaces: a 3 MiB body
    head = b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: t\r\n%sContent-Length: %d\r\n\r\n" % (TOKEN, len(body))
    with connect(auth_server) as sock, sock.makefile("rb") as f:
        sock.sendall(head)
        for i in range(0, len(body), 1 << 20):
            sock.sendall(body[i:i + (1 << 20)])
        assert f.readline().split()[1] == b"200"


@pytest.mark.parametrize("request_bytes", [
    b"POST /v2/models/mlp/infer HTTP/1.1\r\nHo",                           # half a head
    b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{\"in",   # a stalled body
], ids=["half-head", "stalled-body"])
def test_a_stalled_request_is_answered_408_and_closed(server, request_bytes):
    with connect(server) as sock:
        sock.sendall(request_bytes)
        answer = read_until_closed(sock)                       # the server closes it: recv returns b""
    assert answer.startswith(b"HTTP/1.1 408")
    assert "did not arrive" in json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]


def test_header_lines_trickling_in_do_not_reset_the_head_timer(server):
    with connect(server) as sock:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\n")
        lines = 0
        try:
            while True:                                        # header lines, as fast as the server reads them
                sock.sendall(b"X-Pad-%d: y\r\n" % lines)
                lines += 1
                if lines > 2_000_000:
                    raise AssertionError("the server never cut off a head that never ends")
        except (BrokenPipeError, ConnectionResetError):
            pass                                               # cut off by the head timeout


def test_auth_is_answered_before_the_body_and_the_claimed_body_is_not_buffered(auth_server):
    with connect(auth_server) as sock, sock.makefile("rb") as f:
        sock.sendall(claiming_head() + b"{")
        assert f.readline().split()[1] == b"401"               # with 1 of 64 MiB sent
        # the 401 went out with 1 byte of 64 MiB sent; no buffer waits for the rest (closed sockets of other
        # tests may take a moment to leave the server's list, hence the wait)
        wait_for(lambda: held_bytes(auth_server) == [], what="no body buffer held after the 401")
