"""The read timers, head size cap and connection cap that serve/uvicorn_http.py adds to uvicorn's httptools
protocol, driven byte by byte over a fake transport: which phase the timer guards, that arriving bytes never
reset it, what it answers."""

from __future__ import annotations

import asyncio

import pytest

uvicorn = pytest.importorskip("uvicorn")
from uvicorn.server import ServerState  # noqa: E402

from tensorforge.serve.http import MAX_HEAD_BYTES  # noqa: E402
from tensorforge.serve.uvicorn_http import make_server  # noqa: E402


class FakeTransport:
    def __init__(self) -> None:
        self.written = b""
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


async def echo_app(scope, receive, send) -> None:
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def run(scenario, max_connections: int = 8) -> None:
    """Run ``scenario(connect)`` on a fresh loop; ``connect()`` gives a protocol on a fake transport."""
    async def main() -> None:
        config = make_server(echo_app, header_timeout_s=30, body_timeout_s=60, keepalive_s=5,
                             max_connections=max_connections, drain_timeout_s=1).config
        config.load()
        state = ServerState()

        def connect():
            protocol = config.http_protocol_class(config=config, server_state=state, app_state={})
            transport = FakeTransport()
            protocol.connection_made(transport)
            return protocol, transport

        await scenario(connect)
        for task in list(state.tasks):
            task.cancel()
        await asyncio.sleep(0)

    asyncio.run(main())


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_the_head_timer_starts_at_the_first_byte_and_is_not_reset_by_more():
    async def scenario(connect):
        protocol, transport = connect()
        assert protocol._reading is None and protocol.timeout_keep_alive_task is not None   # idle: keep-alive
        protocol.data_received(b"POST /x HTTP/1.1\r\n")
        first = protocol._read_timer
        assert protocol._reading == "head" and protocol.timeout_keep_alive_task is None
        protocol.data_received(b"Host: t\r\n")
        protocol.data_received(b"X-A: b\r\n")
        assert protocol._read_timer is first                   # the same timer: trickling does not reset it
        protocol._read_timed_out()                             # what the timer does when it fires
        assert transport.written.startswith(b"HTTP/1.1 408") and b"request head did not arrive" in transport.written
        assert transport.closing
    run(scenario)


def test_the_body_timer_runs_from_the_end_of_the_head_to_the_last_body_byte():
    async def scenario(connect):
        protocol, transport = connect()
        protocol.data_received(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n012")
        assert protocol._reading == "body"
        body_timer = protocol._read_timer
        await settle()
        protocol.data_received(b"345")
        assert protocol._read_timer is body_timer
        protocol.data_received(b"6789")
        assert protocol._reading is None and protocol._read_timer is None
        await settle()
        assert transport.written.startswith(b"HTTP/1.1 200")
        protocol.data_received(b"GET /x HTTP/1.1\r\n")         # the next request's head has its own timer
        assert protocol._reading == "head"
    run(scenario)


def test_a_stalled_body_gets_408_unless_a_response_went_out():
    async def scenario(connect):
        protocol, transport = connect()
        protocol.data_received(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n0")
        await settle()
        protocol._read_timed_out()
        assert transport.written.startswith(b"HTTP/1.1 408") and b"request body did not arrive" in transport.written
    run(scenario)


def test_a_whole_request_in_one_read_leaves_no_timer():
    async def scenario(connect):
        protocol, transport = connect()
        protocol.data_received(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
        assert protocol._reading is None and protocol._read_timer is None
        await settle()
        assert transport.written.startswith(b"HTTP/1.1 200")
    run(scenario)


def test_a_malformed_request_gets_the_json_error_object():
    async def scenario(connect):
        protocol, transport = connect()
        protocol.data_received(b"GARBAGE\x00 / HTTP/1.1\r\n\r\n")
        assert transport.written.startswith(b"HTTP/1.1 400") and b'{"error": "malformed HTTP request' in \
            transport.written
        assert transport.closing and protocol._read_timer is None
    run(scenario)


@pytest.mark.parametrize("head", [
    b"GET /x HTTP/1.1\r\nX-Big: " + b"y" * (MAX_HEAD_BYTES + 1) + b"\r\n\r\n",     # whole, in one read
    b"GET /x HTTP/1.1\r\nX-Big: " + b"y" * (MAX_HEAD_BYTES + 1),                   # a header line that never ends
], ids=["complete", "never-ending-line"])
def test_a_head_past_its_size_cap_is_400(head):
    async def scenario(connect):
        protocol, transport = connect()
        for i in range(0, len(head), 4096):                    # as reads of 4 KiB
            if transport.closing:
                break
            protocol.data_received(head[i:i + 4096])
        assert transport.written.startswith(b"HTTP/1.1 400") and b"request head exceeds" in transport.written
        assert transport.closing
    run(scenario)


def test_a_connection_past_the_cap_gets_503():
    async def scenario(connect):
        kept = [connect() for _ in range(2)]
        protocol, transport = connect()
        assert transport.written.startswith(b"HTTP/1.1 503") and transport.closing
        assert not any(t.closing for _, t in kept)
    run(scenario, max_connections=2)
