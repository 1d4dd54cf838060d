"""The default HTTP server: uvicorn, serving the ASGI app of http.py, with the limits uvicorn lacks.

uvicorn's httptools protocol (the one uvicorn itself picks when httptools is installed; its h11
protocol, pure Python, measured ~0.4 ms more per request on loopback) times out idle keep-alive
connections and drains on shutdown. What it does not do, :class:`TimedHttpToolsProtocol` adds:

* a **head timer** from a request's first byte to the end of its head, and a **body timer** from the
  end of the head to the last body byte — armed once per phase, never reset by arriving bytes, so a
  client trickling a byte at a time (slowloris) is cut off; it then gets 408 and the connection closes;
* a **head size cap** (``MAX_HEAD_BYTES``; the parser itself buffers a header line without bound);
* the keep-alive timer also on a fresh connection (uvicorn arms it only after a first response);
* a **connection cap** at accept time, answered with the protocol's JSON 503 (uvicorn's own
  ``limit_concurrency`` is checked per request head, after the connection already holds buffers,
  and answers text/plain);
* the protocol's JSON error object for malformed requests (uvicorn sends text/plain).

Body size, the server-wide body budget and auth are the app's (http.py): a Content-Length over the
limit is 413 before any byte is read, auth is checked before the body, and the body is collected
chunk by chunk as uvicorn delivers it (uvicorn pauses reading past 64 KiB unconsumed), up to the limit.
"""

from __future__ import annotations

from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .http import MAX_HEAD_BYTES, malformed_request_response, request_timeout_response, too_many_connections_response

_HEAD_TOO_BIG = f"the request head exceeds {MAX_HEAD_BYTES} bytes"


class TimedHttpToolsProtocol(HttpToolsProtocol):  # type: ignore[misc]
    """uvicorn's httptools protocol with head/body read timers, a head size cap, a connection cap and JSON errors.

    The limits are class attributes; :func:`protocol_class` makes a subclass holding a server's values.
    """

    header_timeout_s = 30.0
    body_timeout_s = 120.0
    max_connections = 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_timer: Any = None
        self._reading: str | None = None          # what the read timer guards: "head", "body" or nothing
        self._head_parsed = 0                     # URL and header bytes the parser handed over for this head
        self._head_read = 0                       # bytes of reads that began and ended inside this head
        self._begun = 0                           # requests begun in the read being parsed

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            transport.write(too_many_connections_response(self.max_connections))
            transport.close()
            return
        # a connection that never sends a byte is closed like an idle keep-alive one
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        before, self._begun = self._reading, 0
        super().data_received(data)
        # all of this read is an unfinished head when it continued one, or when it began one (with the
        # request's first byte: nothing was under way) and that head is still not complete; the parser
        # buffers a header line until it ends, so this count is what bounds a never-ending one
        if self._reading == "head" and (before, self._begun) in (("head", 0), (None, 1)):
            self._head_read += len(data)
            if self._head_read > MAX_HEAD_BYTES and not self.transport.is_closing():
                self.send_400_response(_HEAD_TOO_BIG)

    # parser callbacks (uvicorn's, plus the timers and the head count)
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._begun += 1
        self._head_parsed = self._head_read = 0
        self._start_timer("head", self.header_timeout_s)      # at the request's first byte

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._count_head(len(name) + len(value))

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._start_timer("body", self.body_timeout_s)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._stop_timer()

    def _count_head(self, nbytes: int) -> None:
        self._head_parsed += nbytes
        if self._head_parsed > MAX_HEAD_BYTES:
            raise ValueError(_HEAD_TOO_BIG)       # the parser raises HttpParserCallbackError: uvicorn answers 400

    def send_400_response(self, msg: str) -> None:
        self._stop_timer()
        if self._head_parsed > MAX_HEAD_BYTES or self._head_read > MAX_HEAD_BYTES:
            msg = _HEAD_TOO_BIG
        if not self.transport.is_closing():
            self.transport.write(malformed_request_response(msg))
            self.transport.close()

    # the read timer
    def _start_timer(self, what: str, seconds: float) -> None:
        self._stop_timer()
        self._reading = what
        self._read_timer = self.loop.call_later(seconds, self._read_timed_out)

    def _stop_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None
        self._reading = None

    def _read_timed_out(self) -> None:
        what, self._read_timer = self._reading, None
        if self.transport.is_closing():
            return
        if what == "body" and self.flow.read_paused:
            # the server holds reading up (a pipelined request waits, or the app has not taken the body
            # so far): the client cannot send, so this is not its delay
            self._start_timer("body", self.body_timeout_s)
            return
        self._reading = None
        limit = self.header_timeout_s if what == "head" else self.body_timeout_s
        cycle = self.cycle                        # 408 only where no other response is (or will be) on the wire
        if not self.pipeline and (cycle is None or cycle.response_complete
                                  or (what == "body" and not cycle.response_started)):
            self.transport.write(request_timeout_response(f"the request {what} did not arrive within {limit:g} s"))
        self.transport.close()                    # the app's receive() then answers http.disconnect


def protocol_class(*, header_timeout_s: float, body_timeout_s: float, max_connections: int) -> type:
    """A :class:`TimedHttpToolsProtocol` with these limits, for ``uvicorn.Config(http=...)``."""
    return type("TimedHttpToolsProtocol", (TimedHttpToolsProtocol,), {
        "header_timeout_s": header_timeout_s, "body_timeout_s": body_timeout_s, "max_connections": max_connections})


def make_server(app: Any, *, header_timeout_s: float, body_timeout_s: float,
                keepalive_s: float, max_connections: int, drain_timeout_s: float) -> Any:
    """A ``uvicorn.Server`` for ``app``; serve it with ``await server.serve(sockets=[sock])``.

    No access log and no logging configuration of its own (``log_config=None``: the process's logging is
    the caller's); errors only, so a client sending malformed requests cannot flood the log with uvicorn's
    per-request warnings. No proxy-header middleware (the app does not use the client address; it would
    only add a layer per request). On shutdown in-flight requests get ``drain_timeout_s`` before their
    tasks are cancelled.
    """
    config = uvicorn.Config(
        app, http=protocol_class(header_timeout_s=header_timeout_s, body_timeout_s=body_timeout_s,
                                 max_connections=max_connections),
        ws="none", lifespan="off", log_config=None, log_level="error", access_log=False, proxy_headers=False,
        timeout_keep_alive=keepalive_s,  # type: ignore[arg-type]
        timeout_graceful_shutdown=drain_timeout_s, server_header=False,  # type: ignore[arg-type]
        date_header=False, backlog=2048)
    return uvicorn.Server(config)
