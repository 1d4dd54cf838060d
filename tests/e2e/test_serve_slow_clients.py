"""Clients that claim big bodies, send slowly or open too many connections (issue #13), on both HTTP stacks
(uvicorn, the default, and our own protocol, wire.py): memory follows the bytes that arrived, auth is answered
before the body, a head or body that stalls or trickles is cut off by its timeout (408, close), a head past
its size limit is 400, an idle connection closes, and connections past the cap get 503."""

from __future__ import annotations

import json
import time

import pytest
from serve_testkit import build_engine, raw_connect, wait_for

from tensorforge.serve import InferenceServer, ServerConfig
from tensorforge.serve.http import MAX_HEAD_BYTES

psutil = pytest.importorskip("psutil")

CLAIMED = 64 << 20          # what the head claims; one byte follows
IMPLS = ["uvicorn", "wire"]


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    return build_engine("tiny_mlp", tmp_path_factory.mktemp("slow") / "mlp.tfe")


@pytest.fixture(scope="module", params=IMPLS)
def server(engine, request):
    # short timeouts so a stalled client is cut off quickly; the tests wait for the close, not for time
    config = ServerConfig(http_port=0, grpc_port=None, metrics_port=None, max_request_bytes=CLAIMED,
                          http_impl=request.param, header_timeout_s=0.3, body_timeout_s=0.3, keepalive_s=0.3)
    with InferenceServer([engine], config=config) as srv:
        yield srv


@pytest.fixture(scope="module", params=IMPLS)
def capped_server(engine, request):
    config = ServerConfig(http_port=0, grpc_port=None, metrics_port=None, http_impl=request.param, max_connections=4)
    with InferenceServer([engine], config=config) as srv:
        yield srv


@pytest.fixture(scope="module", params=IMPLS)
def auth_server(engine, request):
    # default (long) timeouts: these tests look at connections that must still be open
    config = ServerConfig(http_port=0, grpc_port=None, metrics_port=None, max_request_bytes=CLAIMED,
                          http_impl=request.param, auth_token="s3cret")
    with InferenceServer([engine], config=config) as srv:
        yield srv


def connect(server):
    return raw_connect(server, timeout=20)


def read_until_closed(sock):
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


TOKEN = b"Authorization: Bearer s3cret\r\n"


def claiming_head(path=b"/v2/models/mlp/infer", extra=b""):
    return b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n%s\r\n" % (path, CLAIMED, extra)


def connections(server):
    """The server's open HTTP connections (its protocol objects; read from this thread, for polling only)."""
    if server.wire is not None:
        return list(server.wire.connections)
    return list(server.uvicorn.server_state.connections)


def reading_a_body(server):
    """How many connections are between the end of a request head and the end of its body."""
    if server.wire is not None:
        return sum(c.parsing is not None and not c.parsing.complete for c in connections(server))
    return sum(c._reading == "body" for c in connections(server))


def held_bytes(server):
    """Bytes of body buffer each open connection of our own protocol holds for the request it is reading."""
    return [len(c.parsing.buffer) for c in list(server.wire.connections)
            if c.parsing is not None and c.parsing.buffer is not None]


def rss():
    return psutil.Process().memory_info().rss


def test_claimed_huge_bodies_pin_little_memory(auth_server):
    before = rss()
    socks = [connect(auth_server) for _ in range(8)]
    try:
        for sock in socks:
            sock.sendall(claiming_head(extra=TOKEN) + b"{")
        wait_for(lambda: reading_a_body(auth_server) >= 8, what="eight bodies being read")
        grown = rss() - before                                  # 8 x 64 MiB claimed
        assert grown < 64 << 20, f"the server grew {grown / 2**20:.0f} MiB for bodies of 1 byte each"
        if auth_server.wire is not None:                        # 1 MiB to start with, not the claimed 64 MiB
            assert max(held_bytes(auth_server)) <= (1 << 20) + 64
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
        deadline = time.monotonic() + 20                       # generous: the head timer is 0.3 s
        line = 0
        try:
            while time.monotonic() < deadline:                 # a short header line every 10 ms
                sock.sendall(b"X-Pad-%d: y\r\n" % line)
                line += 1
                time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError):
            return                                             # cut off by the head timeout
    raise AssertionError(f"the server never cut off a head that trickled in ({line} lines)")


@pytest.mark.parametrize("end", [b"\r\n\r\n", b""], ids=["complete", "never-ending-line"])
def test_a_head_past_its_size_limit_is_400_and_closed(server, end):
    # just past the limit, so the server has read all of it when it closes (unread bytes would make it a reset)
    head = b"GET /v2/health/live HTTP/1.1\r\nX-Big: " + b"y" * (MAX_HEAD_BYTES + (8 << 10)) + end
    with connect(server) as sock:
        sock.sendall(head)
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 400")
    assert "malformed HTTP request" in json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]


def test_a_connection_that_sends_nothing_is_closed(server):
    with connect(server) as sock:
        assert read_until_closed(sock) == b""                  # closed after keepalive_s, without an answer


def test_connections_past_the_cap_get_503(capped_server):
    held = [connect(capped_server) for _ in range(4)]          # the cap is 4
    try:
        wait_for(lambda: len(connections(capped_server)) >= 4, what="four connections accepted")
        with connect(capped_server) as extra:
            answer = read_until_closed(extra)
        assert answer.startswith(b"HTTP/1.1 503")
        assert "open connections" in json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]
    finally:
        for sock in held:
            sock.close()


def test_auth_is_answered_before_the_body_and_the_claimed_body_is_not_buffered(auth_server):
    with connect(auth_server) as sock, sock.makefile("rb") as f:
        sock.sendall(claiming_head() + b"{")
        assert f.readline().split()[1] == b"401"               # with 1 of 64 MiB sent
        if auth_server.wire is not None:
            # no buffer waits for the rest (closed sockets of other tests may take a moment to leave the
            # server's list, hence the wait)
            wait_for(lambda: held_bytes(auth_server) == [], what="no body buffer held after the 401")


@pytest.mark.parametrize("impl", IMPLS)
def test_stop_with_a_stalled_client_drains_within_the_grace_period(engine, impl):
    config = ServerConfig(http_port=0, grpc_port=None, metrics_port=None, http_impl=impl, drain_timeout_s=0.5)
    server = InferenceServer([engine], config=config).start()
    with connect(server) as sock:
        sock.sendall(b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{")
        wait_for(lambda: reading_a_body(server) == 1, what="the stalled body being read")
        server.stop(drain=True)
        # stop() gives up waiting after the grace period + 10 s; the loop itself must have finished
        assert server.wait(0), "the server's loop was still running after stop()"


def test_request_bodies_held_at_once_are_bounded_server_wide(engine):
    # uvicorn hands the app each body chunk as it arrives, so the budget counts bytes while they arrive; wire.py
    # hands over a body once complete, so there it bounds the bodies being decoded and run at once
    mib = 1 << 20
    config = ServerConfig(http_port=0, grpc_port=None, metrics_port=None, max_request_bytes=mib,
                          max_inflight_bytes=mib + mib // 2, http_impl="uvicorn")
    good = json.dumps({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.5] * 64}]})
    body = good.encode().ljust(mib)                              # JSON allows trailing spaces
    head = b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % mib
    with InferenceServer([engine], config=config) as server, connect(server) as a, a.makefile("rb") as fa:
        a.sendall(head + body[:-1])                              # all but its last byte: held by the app
        wait_for(lambda: server.http_app.held == mib - 1, what="the first body held")
        with connect(server) as b, b.makefile("rb") as fb:
            b.sendall(head + body)                               # a second 1 MiB would pass the 1.5 MiB budget
            assert fb.readline().split()[1] == b"503"
            headers = {}
            while (line := fb.readline()) != b"\r\n":
                key, value = line.decode().split(":", 1)
                headers[key.strip().lower()] = value.strip()
            assert headers["retry-after"] == "1"
            assert "bytes of request bodies" in json.loads(fb.read(int(headers["content-length"])))["error"]
        a.sendall(body[-1:])
        assert fa.readline().split()[1] == b"200"                # the first request completes as usual
        wait_for(lambda: server.http_app.held == 0, what="the budget given back")
