"""HTTP/1.1 on the wire for the ASGI app, hand-written on httptools (llhttp): ``http_impl="wire"``.

The default server is uvicorn (uvicorn_http.py); this protocol is kept behind the flag because it
adds less latency per request with binary tensor bodies: a body of known length is read by the
kernel straight into one buffer (``asyncio.BufferedProtocol``; it grows ×4 as bytes arrive, so a
head that only claims a large body pins little memory), placed so that the byte at
``Inference-Header-Content-Length`` — where the binary tensors of the KServe binary extension
start — is 64-byte aligned, so the tensors decode in place; a response is written with one send.
uvicorn instead pauses reading at 64 kB of unconsumed body, grows the body by ``bytes +=`` and
the app copies it once more to align the tensors. The buffer is reused by a later request once
nothing refers to it any more.

What it implements of HTTP/1.1, no more: keep-alive (idle connections close after
``keepalive_s``; a request head or body slower than its timeout gets 408 and a close), pipelining
(in order, one request at a time), chunked request bodies (the parser decodes them; they reach the
app chunk by chunk), ``Expect: 100-continue``,
``Connection: close`` and HTTP/1.0, HEAD, a 400 for malformed requests, ASGI
``http.disconnect`` when the client goes away, and a graceful shutdown: stop accepting, let
in-flight requests finish, close idle connections. Upgrades (WebSocket, h2c) are not offered;
such requests are served as plain HTTP/1.1. A body of known length reaches the app as one
``http.request`` message whose ``body`` is a memoryview (bytes-like), not ``bytes``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import urllib.parse
from collections import deque
from typing import Any, Awaitable, Callable

import httptools
import numpy as np

from .http import MAX_HEAD_BYTES, malformed_request_response, request_timeout_response, too_many_connections_response
from .wire_cycle import HIGH_WATER, Cycle

App = Callable[[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]],
                Callable[[dict[str, Any]], Awaitable[None]]], Awaitable[None]]
_SCRATCH = 64 << 10           # read size for heads (and chunked bodies)
_POOL = 8                     # body buffers kept for reuse, server-wide
_FIRST_BODY = 1 << 20         # a body buffer starts this big and grows ×4 as bytes arrive, up to Content-Length


class WireServer:
    """Serve one ASGI app on a listening socket: ``await start(sock)`` … ``await shutdown(timeout_s)``.

    ``max_body_bytes``: a body declared longer than this is not buffered in one piece (the app
    answers 413 on seeing its Content-Length); it streams through the parser and is dropped. A body
    buffer grows as its bytes arrive, so a head that only *claims* a large body pins little memory.
    ``header_timeout_s`` bounds the time from a request's first byte to the end of its head, and
    ``body_timeout_s`` from the end of the head to the last body byte (slow or stalled clients get 408
    and the connection closes); ``keepalive_s`` bounds the wait for the first byte of the next request.
    A connection past ``max_connections`` open ones gets 503 and is closed at once.
    """

    def __init__(self, app: App, *, max_body_bytes: int, keepalive_s: float = 60.0, header_timeout_s: float = 30.0,
                 body_timeout_s: float = 120.0, max_connections: int = 1024) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.keepalive_s = keepalive_s
        self.max_connections = max_connections
        self.header_timeout_s = header_timeout_s
        self.body_timeout_s = body_timeout_s
        self.connections: set[_Connection] = set()
        # One loop thread reads every connection and each read is parsed before the next, so the
        # heads share one scratch buffer; body buffers of finished requests wait in a small pool.
        self.scratch = memoryview(bytearray(_SCRATCH))
        self.pool: list[bytearray] = []
        self._server: asyncio.AbstractServer | None = None

    def take_buffer(self, size: int) -> bytearray:
        """A buffer of at least ``size`` bytes: a pooled one that nothing refers to any more, else a new one."""
        for i, buffer in enumerate(self.pool):
            if len(buffer) >= size:
                try:                          # resizing fails while any view of it (an input tensor) lives
                    buffer.pop()
                    buffer.append(0)
                except BufferError:
                    continue
                return self.pool.pop(i)
        return bytearray(size)

    def give_back(self, buffer: bytearray) -> None:
        if len(self.pool) >= _POOL:
            self.pool.pop(0)                  # the oldest goes (its tensors may still be alive)
        self.pool.append(buffer)

    async def start(self, sock: socket.socket, backlog: int = 2048) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self, loop), sock=sock, backlog=backlog)

    async def shutdown(self, timeout_s: float) -> None:
        """Stop accepting; in-flight requests get ``timeout_s`` to finish, then their connections are cut."""
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.shutdown()
        deadline = time.monotonic() + timeout_s
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for conn in list(self.connections):
            conn.abort()


class _Connection(asyncio.BufferedProtocol):
    """One client connection: parses requests, runs the app on them one at a time, in order."""

    def __init__(self, server: WireServer, loop: asyncio.AbstractEventLoop) -> None:
        self.server, self.loop = server, loop
        self.parser = httptools.HttpRequestParser(self)
        self.transport: Any = None
        self.current: Cycle | None = None            # the request the app serves now
        self.parsing: Cycle | None = None            # the request whose body is arriving
        self.sink: Cycle | None = None               # … straight into its buffer (known length)
        self.pipeline: deque[Cycle] = deque()        # parsed, waiting their turn
        self.task: asyncio.Task[None] | None = None
        self.closed = self.shutting_down = self.reading_paused = self.write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._phase = "idle"                         # what the timer guards: "idle" (keep-alive), "head", "body"
        self._deadline = 0.0                         # loop time the head/body timer fires at
        self._left_s: float | None = None            # … time it had left when reading paused
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0                         # URL and header bytes of the head being parsed
        self._head_read = 0                          # bytes of reads that began and ended inside that head
        self._addr: dict[str, Any] = {}

    # -- transport events -----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.server.connections.add(self)
        if len(self.server.connections) > self.server.max_connections:
            self.transport.write(too_many_connections_response(self.server.max_connections))
            self.transport.close()
            self.closed = True
            return
        peer, local = transport.get_extra_info("peername"), transport.get_extra_info("sockname")
        self._addr = {"client": tuple(peer[:2]) if isinstance(peer, tuple) else None,
                      "server": tuple(local[:2]) if isinstance(local, tuple) else None}
        self._arm_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        self._cancel_timer()
        for request in (self.current, self.parsing, *self.pipeline):
            if request is not None:
                request.wake()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def get_buffer(self, sizehint: int) -> memoryview:
        sink = self.sink
        if sink is not None and sink.body is not None:
            if sink.filled == len(sink.body):
                self._grow(sink, sink.filled + 1)
            return sink.body[sink.filled:]
        return self.server.scratch

    def buffer_updated(self, nbytes: int) -> None:
        head_read = self._phase != "body"                    # this read starts inside a request head
        if self._phase == "idle":                            # the first byte of a request: its head is timed
            self._phase = "head"
            self._arm(self.server.header_timeout_s)
        sink = self.sink
        if sink is not None and sink.body is not None:       # the kernel wrote body bytes in place
            sink.filled += nbytes
            if sink.filled == sink.length:
                # the parser saw only the start of this body: a fresh one reads the next request
                self.parser = httptools.HttpRequestParser(self)
                self.on_message_complete()
            return
        try:
            self.parser.feed_data(self.server.scratch[:nbytes])
        except httptools.HttpParserUpgrade:
            pass                              # no upgrades offered: the request is served as HTTP/1.1
        except (httptools.HttpParserError, UnicodeDecodeError, ValueError) as exc:
            self._reject(str(exc.__context__ or exc))         # a callback's own error says more
            return
        if head_read and self._phase == "head":
            # all of this read is an unfinished head; the parser buffers a header line until it ends, so this
            # count is what bounds a never-ending one
            self._head_read += nbytes
            if self._head_read > MAX_HEAD_BYTES:
                self._reject(f"the request head exceeds {MAX_HEAD_BYTES} bytes")

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    async def drain(self) -> None:
        if self.write_paused and not self.closed:
            self._drain = self.loop.create_future()
            await self._drain

    # -- parser callbacks -----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._head_bytes = self._head_read = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))
        self._count_head(len(name) + len(value))

    def _count_head(self, nbytes: int) -> None:
        self._head_bytes += nbytes
        if self._head_bytes > MAX_HEAD_BYTES:          # the parser turns this into a 400 and a close
            raise ValueError(f"the request head exceeds {MAX_HEAD_BYTES} bytes")

    def on_headers_complete(self) -> None:
        parsed = httptools.parse_url(self._url)
        raw_path = parsed.path
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = urllib.parse.unquote(path)
        version = self.parser.get_http_version()
        scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": version,
                 "method": self.parser.get_method().decode("ascii"), "scheme": "http", "root_path": "",
                 "path": path, "raw_path": raw_path, "query_string": parsed.query or b"",
                 "headers": self._headers, **self._addr}
        length, align_at, expect, chunked = 0, 0, False, False
        for key, value in self._headers:
            if key == b"content-length" and value.isdigit():
                length = int(value)
            elif key == b"inference-header-content-length" and value.isdigit():
                align_at = int(value)
            elif key == b"expect":
                expect = value.lower() == b"100-continue"
            elif key == b"transfer-encoding":
                chunked = True
        request = Cycle(self, scope, self.parser.should_keep_alive(), expect and version == "1.1")
        self._phase = "body"
        self._arm(self.server.body_timeout_s)
        if 0 < length <= self.server.max_body_bytes and not chunked:
            request.length, request.align_at = length, align_at if align_at <= length else 0
            self._give_buffer(request, min(length, _FIRST_BODY), request.align_at)
            self.sink = request
        self.parsing = request
        if self.current is None:
            self._start(request)
        else:                                 # pipelined: its turn comes when the current one is done
            self.pipeline.append(request)
            self.pause_reading()

    def on_body(self, body: bytes) -> None:
        request = self.parsing
        if request is None or request.finished:
            return                            # answered already (e.g. 413): the rest of its body is dropped
        if request.body is not None:          # the start of a known-length body, read with the head
            if request.filled + len(body) > len(request.body):
                self._grow(request, request.filled + len(body))
            request.body[request.filled:request.filled + len(body)] = body
            request.filled += len(body)
            return
        request.chunks.append(body)
        request.buffered += len(body)
        request.wake()
        if request.buffered > HIGH_WATER:
            self.pause_reading()

    def on_message_complete(self) -> None:
        request = self.parsing
        self.sink = None
        self._phase = "idle"
        self._cancel_timer()
        if request is None:
            return
        request.complete = True
        request.wake()
        if request.finished and request is self.current:
            self._next()

    def _give_buffer(self, request: Cycle, length: int, align_at: int) -> None:
        """A body buffer (from the server's pool) where offset ``align_at`` is 64-byte aligned."""
        buffer = self.server.take_buffer(length + 64)
        view = memoryview(buffer)
        pad = -(np.frombuffer(view, np.uint8, count=1).ctypes.data + align_at) % 64
        request.buffer, request.body = buffer, view[pad:pad + length]

    def _grow(self, request: Cycle, need: int) -> None:
        """Move the body read so far into a buffer of at least ``need`` bytes (×4, at most Content-Length):
        copies add up to less than half the body, and memory follows the bytes that really arrived."""
        assert request.body is not None and need <= request.length
        old, filled = request.body, request.filled
        self._give_buffer(request, min(request.length, max(need, 4 * len(old))), request.align_at)
        assert request.body is not None
        request.body[:filled] = old[:filled]

    # -- request lifecycle ------------------------------------------------------------------------
    def _start(self, request: Cycle) -> None:
        self.current = request
        self.task = self.loop.create_task(self._run(request))

    async def _run(self, request: Cycle) -> None:
        try:
            await self.server.app(request.scope, request.receive, request.send)
        except Exception:
            logging.getLogger(__name__).exception("the HTTP application failed on %s %s", request.scope["method"],
                                                  request.scope["path"])
        if request.finished or self.closed:
            return
        if request.started:                   # half a response went out: the connection cannot be reused
            self.abort()
            return
        request.keep_alive = False
        await request.send({"type": "http.response.start", "status": 500,
                            "headers": [(b"content-type", b"application/json")]})
        await request.send({"type": "http.response.body", "body": b'{"error":"internal server error"}'})

    def response_done(self, request: Cycle) -> None:
        if not request.keep_alive:
            self.transport.close()
        elif request.complete:
            self._next()
        else:                                 # answered before its body arrived (401, 413): read the rest through
            if self.sink is request:          # the parser and drop it (no buffer); on_message_complete moves on
                self.sink = None
                request.buffer = request.body = None
            request.chunks.clear()
            request.buffered = 0
            self.resume_reading()

    def _next(self) -> None:
        done, self.current = self.current, None
        if done is not None and done.buffer is not None:
            self.server.give_back(done.buffer)     # reusable once the app's views of it are gone
            done.buffer = done.body = None
        if self.closed:
            return
        if self.shutting_down:
            self.transport.close()
            return
        if self.pipeline:
            self._start(self.pipeline.popleft())
            if not self.pipeline:
                self.resume_reading()
        else:
            self.resume_reading()
            if self._phase == "idle":         # not while the next request's head is arriving (its own timer)
                self._arm_timer()

    def _reject(self, message: str) -> None:
        if not self.closed:
            self.transport.write(malformed_request_response(message))    # the protocol's error object, even here
            self.transport.close()
        self.closed = True

    # -- flow control, timers, shutdown ---------------------------------------------------------------
    def pause_reading(self) -> None:
        if not self.reading_paused and not self.closed:
            self.reading_paused = True
            self.transport.pause_reading()
            if self._phase != "idle" and self._timer is not None:   # the server, not the client, holds it up
                self._left_s = self._deadline - self.loop.time()
                self._cancel_timer()

    def resume_reading(self) -> None:
        if self.reading_paused and not self.closed and not self.pipeline:
            self.reading_paused = False
            self.transport.resume_reading()
            if self._phase != "idle" and self._left_s is not None:
                self._arm(self._left_s)
            self._left_s = None

    def _arm_timer(self) -> None:
        self._cancel_timer()
        self._timer = self.loop.call_later(self.server.keepalive_s, self._idle_timeout)

    def _arm(self, seconds: float) -> None:
        """Time the head or body now arriving: from its first byte to its last, however it trickles in."""
        self._cancel_timer()
        self._deadline = self.loop.time() + seconds
        self._timer = self.loop.call_at(self._deadline, self._read_timeout)

    def _read_timeout(self) -> None:
        self._timer = None
        if self.closed:
            return
        what = "head" if self._phase == "head" else "body"
        limit = self.server.header_timeout_s if what == "head" else self.server.body_timeout_s
        current = self.current            # 408 only where no other response is (or will be) on the wire
        if current is None or (current is self.parsing and what == "body" and not current.started):
            self.transport.write(request_timeout_response(f"the request {what} did not arrive within {limit:g} s"))
        self.transport.close()
        self.closed = True                    # the app sees a disconnect; nothing more is written

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _idle_timeout(self) -> None:
        if self.current is None and not self.closed:
            self.transport.close()

    def shutdown(self) -> None:
        """Close now if idle; otherwise after the response in flight (no keep-alive past it)."""
        self.shutting_down = True
        if self.current is None and not self.closed:
            self.transport.close()

    def abort(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if not self.closed:
            self.transport.abort()
