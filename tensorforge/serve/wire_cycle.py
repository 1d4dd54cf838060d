"""One HTTP/1.1 request/response cycle of serve/wire.py, seen from the ASGI app: ``receive`` and ``send``.

The connection (wire.py) parses the request and feeds the body in; the cycle hands it to the
app — a chunked body chunk by chunk, a body of known length as one memoryview over the buffer
the kernel read it into — and writes the app's response: head and body in one send, with a
Content-Length (or chunked when the app streams), ``connection: close`` when the connection
ends after it, no body for HEAD, 204 and 304.

Imports run one way: wire.py imports this module, which sees the connection only through the
:class:`Connection` protocol (the few attributes a cycle uses).
"""

from __future__ import annotations

import asyncio
from collections import deque
from http import HTTPStatus
from typing import Any, Protocol

HIGH_WATER = 4 << 20          # unconsumed chunked-body bytes before reading pauses
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
_NO_BODY = frozenset({204, 304})


class Connection(Protocol):
    """What a cycle needs of its connection (wire.py's ``_Connection``)."""

    closed: bool
    shutting_down: bool
    write_paused: bool
    transport: Any
    loop: asyncio.AbstractEventLoop

    def resume_reading(self) -> None: ...

    def response_done(self, request: "Cycle") -> None: ...

    async def drain(self) -> None: ...


class Cycle:
    """One request/response cycle; ``receive`` and ``send`` are its ASGI callables."""

    __slots__ = ("conn", "scope", "chunks", "buffered", "buffer", "body", "filled", "length", "align_at", "complete",
                 "delivered",
                 "waiters", "keep_alive", "head", "expect_continue", "started", "head_sent", "finished", "status",
                 "headers", "chunked")

    def __init__(self, conn: Connection, scope: dict[str, Any], keep_alive: bool, expect_continue: bool) -> None:
        self.conn, self.scope = conn, scope
        self.chunks: deque[bytes] = deque()   # a chunked body, as parsed
        self.buffered = 0
        self.buffer: bytearray | None = None  # a body of known length is read into this …
        self.body: memoryview | None = None   # … at this (aligned) place
        self.filled = 0
        self.length = 0                       # the declared Content-Length; ``body`` grows towards it as bytes arrive
        self.align_at = 0
        self.complete = False                 # the whole body arrived
        self.delivered = False                # the app saw more_body False
        self.waiters: list[asyncio.Future[None]] = []
        self.keep_alive = keep_alive
        self.head = scope["method"] == "HEAD"
        self.expect_continue = expect_continue
        self.started = self.head_sent = self.finished = self.chunked = False
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []

    def wake(self) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.waiters.clear()

    async def receive(self) -> dict[str, Any]:
        conn = self.conn
        if self.expect_continue:
            self.expect_continue = False
            if not conn.closed:
                conn.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        while True:
            if self.chunks:
                chunk = self.chunks.popleft()
                self.buffered -= len(chunk)
                if self.buffered <= HIGH_WATER:
                    conn.resume_reading()
                more = bool(self.chunks) or not self.complete
                self.delivered = not more
                return {"type": "http.request", "body": chunk, "more_body": more}
            if conn.closed or self.finished:
                return {"type": "http.disconnect"}
            if self.complete and not self.delivered:
                self.delivered = True
                return {"type": "http.request", "body": self.body if self.body is not None else b"",
                        "more_body": False}
            waiter = conn.loop.create_future()
            self.waiters.append(waiter)
            await waiter

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        conn = self.conn
        if kind == "http.response.start" and not self.started:
            self.started = True
            self.status = int(message["status"])
            self.headers = list(message.get("headers", []))
            return
        if kind != "http.response.body" or not self.started or self.finished:
            raise RuntimeError(f"unexpected ASGI message {kind!r} (response started: {self.started}, "
                               f"finished: {self.finished})")
        body = bytes(message.get("body", b""))
        more = bool(message.get("more_body", False))
        if conn.closed:                       # the client went away: nothing to write to
            self.finished = not more
            return
        parts: list[bytes] = []
        if not self.head_sent:                # the head goes out with the first body part
            parts.append(self._head(len(body), more))
            self.head_sent = True
        if self.head or self.status in _NO_BODY:
            pass
        elif self.chunked:
            if body:
                parts += [b"%x\r\n" % len(body), body, b"\r\n"]
            if not more:
                parts.append(b"0\r\n\r\n")
        elif body:
            parts.append(body)
        if len(body) < 1 << 16:               # one send for a small response; no copy of a big one
            parts = [b"".join(parts)]
        for part in parts:
            if part:
                conn.transport.write(part)
        if not more:
            self.finished = True
            self.wake()                       # a receive() waiting for a disconnect now returns
            conn.response_done(self)
        if conn.write_paused:
            await conn.drain()

    def _head(self, length: int, more: bool) -> bytes:
        names = {name.lower() for name, _ in self.headers}
        lines = [b"HTTP/1.1 %d %s\r\n" % (self.status, _REASONS.get(self.status, b""))]
        lines += [b"%s: %s\r\n" % (name, value) for name, value in self.headers]
        if b"content-length" not in names and self.status not in _NO_BODY:
            if more:
                self.chunked = True
                lines.append(b"transfer-encoding: chunked\r\n")
            else:
                lines.append(b"content-length: %d\r\n" % length)
        if not self.keep_alive or self.conn.shutting_down:
            self.keep_alive = False
            lines.append(b"connection: close\r\n")
        lines.append(b"\r\n")
        return b"".join(lines)
