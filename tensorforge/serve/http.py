"""The KServe v2 HTTP/REST adapter: a plain ASGI application served by uvicorn.

Thin on purpose: decode (protocol.py) → submit (core.py) → encode. It is a bare ASGI
callable rather than a framework app because the hot path is one route and every
microsecond of routing shows up in the added latency; the routes are few and fixed:

  GET  /v2/health/live | /v2/health/ready | /v2
  GET  /v2/models/{name}[/versions/{v}]            metadata
  GET  /v2/models/{name}[/versions/{v}]/ready | /config | /stats;   GET /v2/models/stats
  POST /v2/models/{name}[/versions/{v}]/infer      JSON, or JSON + binary tensors
  POST /v2/repository/index;  POST /v2/repository/models/{name}/load | /unload

Every answer has a JSON body, the one the Open Inference Protocol specifies: ``{"live": true}``,
``{"ready": true}`` (503 ``{"ready": false, "error": …}`` while stopping), ``{"name", "ready":
true}`` for a ready model, ``{"name", "version", "extensions"}``, ``{"name", "versions", "platform",
"inputs", "outputs"}``, the inference response; the extensions answer as Triton does (index list,
statistics), load/unload with ``{"name", "load"|"unload": true}`` as KServe's own server does.
Triton's clients read only the status, KServe's read the body, so both work.

Errors are ``{"error": "..."}`` with 400 (bad request), 401 (auth), 404 (unknown model, version
or route), 405 (wrong method), 413 (body too large), 415 (unknown Content-Encoding), 503 +
Retry-After (queue full, model not loaded, stopping, or the server-wide budget of request body bytes
held at once spent), 504 (timed out in the queue), 500 (the
model failed on this request's batch). A model that is not ready answers its ready route
with 404 (unknown name or version) or 503 (in the repository but not loaded, or stopping).
A client that disconnects while its request is queued has that request dropped before it is computed.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import zlib
from concurrent.futures import Future
from typing import Any, Awaitable, Callable

import numpy as np

from ..errors import InputError
from .core import ServingCore, error_status, error_text
from .limits import check_json_depth, loads_json
from .protocol import decode_http_request, encode_http_response

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
_JSON = b"application/json"
_HELD = "tensorforge.held_bytes"   # scope key: body bytes this request counts against the server-wide budget
MAX_HEAD_BYTES = 64 << 10     # request line and headers, in either HTTP stack; past it: 400 and close


class _HttpError(Exception):
    def __init__(self, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        super().__init__(message)
        self.status, self.headers = status, headers or []


class _ClientGone(Exception):
    pass


class HttpApp:
    """ASGI callable: ``uvicorn.Server(uvicorn.Config(HttpApp(core), ...))``."""

    def __init__(self, core: ServingCore) -> None:
        self.core = core
        self.limit = core.config.max_request_bytes
        self.budget = core.config.inflight_bytes()
        self.held = 0                # request body bytes held now, server-wide (one loop thread: no lock needed)
        token = core.config.auth_token
        self._auth = f"Bearer {token}".encode() if token else None
        self._retry_after = str(core.config.retry_after_s).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            await self._route(scope, receive, send)
        except _ClientGone:
            return
        except _HttpError as exc:
            await _respond(send, exc.status, _error_body(str(exc)), exc.headers)
        except Exception as exc:  # TensorForge errors map to 4xx/503/504; anything else (the model) is a 500
            status, _ = error_status(exc)
            extra = [(b"retry-after", self._retry_after)] if status == 503 else []
            await _respond(send, status, _error_body(error_text(exc)), extra)
        finally:
            self.held -= scope.pop(_HELD, 0)

    def _hold(self, scope: Scope, nbytes: int) -> None:
        """Count ``nbytes`` more of this request's body against the server-wide budget (503 past it)."""
        if self.held + nbytes > self.budget:
            raise _HttpError(503, f"the server holds its limit of {self.budget} bytes of request bodies; retry later",
                             [(b"retry-after", self._retry_after)])
        self.held += nbytes
        scope[_HELD] = scope.get(_HELD, 0) + nbytes

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, parts = scope["method"], scope["path"].rstrip("/").split("/")[1:]
        if not parts or parts[0] != "v2":
            raise _HttpError(404, f"no route {scope['path']}; the API lives under /v2")
        rest = parts[1:]
        if rest[:1] == ["health"] and len(rest) == 2 and method == "GET":
            if rest[1] == "live":
                return await _respond_json(send, {"live": True})
            if rest[1] != "ready":
                raise _HttpError(404, f"no route {scope['path']}; health is /v2/health/live or /v2/health/ready")
            if self.core.ready():
                return await _respond_json(send, {"ready": True})
            # a probe reads the status, a JSON client the body: 503 and both keys of the two schemas
            return await _respond_json(send, {"ready": False, "error": "the server is shutting down"}, 503,
                                       [(b"retry-after", self._retry_after)])
        self._check_auth(scope)
        if not rest and method == "GET":
            return await _respond_json(send, self.core.server_metadata())
        if rest == ["models", "stats"] and method == "GET":
            return await _respond_json(send, self.core.statistics())
        if rest[:1] == ["models"] and len(rest) >= 2:
            return await self._model_route(scope, receive, send, method, rest[1:])
        if rest[:1] == ["repository"]:
            return await self._repository_route(scope, receive, send, method, rest[1:])
        raise _HttpError(404, f"no route {method} {scope['path']}")

    def _check_auth(self, scope: Scope) -> None:
        if self._auth is None:
            return
        for key, value in scope["headers"]:
            if key == b"authorization" and hmac.compare_digest(value, self._auth):
                return
        raise _HttpError(401, "missing or wrong bearer token: send 'Authorization: Bearer <token>'",
                         [(b"www-authenticate", b"Bearer")])

    async def _model_route(self, scope: Scope, receive: Receive, send: Send, method: str, rest: list[str]) -> None:
        name, version, action = rest[0], None, ""
        tail = rest[1:]
        if tail[:1] == ["versions"] and len(tail) >= 2:
            version, tail = tail[1], tail[2:]
        if len(tail) > 1:
            raise _HttpError(404, f"no route {scope['path']}")
        action = tail[0] if tail else ""
        if action == "infer" and method == "POST":
            return await self._infer(scope, receive, send, name, version)
        if method != "GET":
            raise _HttpError(405 if action in ("", "ready", "config", "stats") else 404,
                             f"{method} is not allowed on {scope['path']}")
        if action == "ready":     # not ready: ModelNotFound (404) / ModelUnavailable (503) with {"error": …}
            mv = self.core.check_model_ready(name, version)
            return await _respond_json(send, {"name": mv.name, "ready": True})
        if action == "stats":
            return await _respond_json(send, self.core.statistics(name, version))
        mv = self.core.model(name, version)
        if action == "":
            return await _respond_json(send, self.core.model_metadata(mv))
        if action == "config":
            return await _respond_json(send, self.core.model_config(mv))
        raise _HttpError(404, f"no route {scope['path']}")

    async def _repository_route(self, scope: Scope, receive: Receive, send: Send, method: str,
                                rest: list[str]) -> None:
        if method != "POST":
            raise _HttpError(405, f"{method} is not allowed on {scope['path']}; use POST")
        body = await self._read_body(scope, receive)
        params = _json_object(body).get("parameters") or {}
        if rest == ["index"]:
            ready_only = bool(_json_object(body).get("ready", False))
            return await _respond_json(send, self.core.repository.index(ready_only))
        if len(rest) == 3 and rest[0] == "models" and rest[2] in ("load", "unload"):
            name = rest[1]
            if rest[2] == "load":
                config = params.get("config") if isinstance(params, dict) else None
                if config is not None and not isinstance(config, str):
                    config = json.dumps(config)
                await asyncio.to_thread(self.core.repository.load, name, config)
            else:
                await asyncio.to_thread(self.core.repository.unload, name)
            return await _respond_json(send, {"name": name, rest[2]: True})   # KServe's body; Triton's is empty
        raise _HttpError(404, f"no route {scope['path']}")

    async def _read_body(self, scope: Scope, receive: Receive, align_at: int = 0) -> bytes | memoryview:
        """The whole body (413 past the limit). With ``align_at``, the chunks are joined into a buffer
        where that offset is 64-byte aligned — the join copies anyway, and binary tensors that start
        there (after the JSON header) then decode without another copy."""
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            raise _HttpError(413, f"request body of {int(length)} bytes exceeds the server's limit of "
                                  f"{self.limit} bytes")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                raise _HttpError(413, f"request body exceeds the server's limit of {self.limit} bytes")
            self._hold(scope, len(chunk))
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        encoding = headers.get(b"content-encoding", b"identity").lower()
        if encoding in (b"gzip", b"deflate"):
            out = self._inflate(b"".join(chunks), encoding)
            self._hold(scope, len(out))
            return out
        if encoding != b"identity":
            raise _HttpError(415, f"unsupported Content-Encoding {encoding.decode(errors='replace')!r}; use gzip, "
                                  "deflate or none")
        if len(chunks) == 1 and (not align_at or _aligned(chunks[0], align_at)):
            return chunks[0]          # our HTTP protocol (wire.py) reads a body in place, already aligned
        buffer = memoryview(bytearray(size + 64))
        pad = -(_address(buffer) + align_at) % 64
        pos = pad
        for chunk in chunks:
            buffer[pos:pos + len(chunk)] = chunk
            pos += len(chunk)
        return buffer[pad:pad + size]

    def _inflate(self, body: bytes, encoding: bytes) -> bytes:
        inflater = zlib.decompressobj(wbits=31 if encoding == b"gzip" else 15)
        try:
            out = inflater.decompress(body, self.limit + 1)
        except zlib.error as exc:
            raise _HttpError(400, f"body is not valid {encoding.decode()} data ({exc})") from None
        if len(out) > self.limit or inflater.unconsumed_tail:
            raise _HttpError(413, f"decompressed request body exceeds the server's limit of {self.limit} bytes")
        return out

    async def _infer(self, scope: Scope, receive: Receive, send: Send, name: str, version: str | None) -> None:
        start = time.perf_counter()
        mv = self.core.model(name, version)
        header_length = None
        for key, value in scope["headers"]:
            if key == b"inference-header-content-length":
                if not value.isdigit():
                    raise InputError(f"Inference-Header-Content-Length must be an integer, got {value!r}")
                header_length = int(value)
        body = await self._read_body(scope, receive, align_at=header_length or 0)
        try:
            request = decode_http_request(body, header_length)
        except InputError:
            self.core.bad_request(mv)
            raise
        future = self.core.submit(mv, request)
        outputs = await _await_unless_gone(future, receive)
        if outputs is None:                       # the client went away: nothing to send
            if future.cancelled():
                return
            self.core.client_gone(mv)
            return
        try:
            payload, header_len = encode_http_response(mv.name, mv.version, request, outputs)
        except InputError as exc:
            raise _HttpError(400, str(exc)) from None
        extra = [(b"inference-header-content-length", str(header_len).encode())] if header_len is not None else []
        self.core.succeeded(mv, time.perf_counter() - start)      # counted before the client can see it
        await _respond(send, 200, payload, extra, b"application/octet-stream" if header_len is not None else _JSON)


async def _await_unless_gone(future: "Future[Any]", receive: Receive) -> Any:
    """The future's result, or None if the client disconnects first (then the queued request is cancelled)."""
    watcher = asyncio.ensure_future(receive())
    gone = False

    def on_message(task: "asyncio.Future[dict[str, Any]]") -> None:
        nonlocal gone
        if not task.cancelled() and task.exception() is None and task.result().get("type") == "http.disconnect":
            gone = True
            future.cancel()               # dropped before compute if still queued

    watcher.add_done_callback(on_message)
    try:
        result = await asyncio.wrap_future(future)
    except asyncio.CancelledError:
        if gone:
            return None
        raise
    finally:
        watcher.remove_done_callback(on_message)
        watcher.cancel()
    return None if gone else result          # computed, but nobody may be left to receive it


def _aligned(chunk: bytes | memoryview, offset: int) -> bool:
    """Whether byte ``offset`` of ``chunk`` sits on a 64-byte boundary (where binary tensors start)."""
    return offset >= len(chunk) or (_address(chunk) + offset) % 64 == 0


def _address(buffer: bytes | memoryview) -> int:
    return int(np.frombuffer(buffer, np.uint8, count=1).ctypes.data) if len(buffer) else 0


def _json_object(body: bytes | memoryview) -> dict[str, Any]:
    body = bytes(body)
    if not body.strip():
        return {}
    try:
        data = loads_json(body)
        check_json_depth(data, "the request body", skip="")
    except InputError as exc:
        raise _HttpError(400, str(exc)) from None
    if not isinstance(data, dict):
        raise _HttpError(400, "request body must be a JSON object")
    return data


def _error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


def _error_response(status: bytes, message: str) -> bytes:
    body = _error_body(message)
    return (b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s"
            % (status, len(body), body))


def malformed_request_response(detail: str) -> bytes:
    """The whole 400 answer to bytes that are not HTTP (then the connection closes): the protocol's error
    object, the same from both HTTP stacks (uvicorn_http.py and wire.py)."""
    return _error_response(b"400 Bad Request", f"malformed HTTP request ({detail})")


def request_timeout_response(detail: str) -> bytes:
    """The whole 408 answer to a client too slow to send its request (then the connection closes)."""
    return _error_response(b"408 Request Timeout",
                           f"{detail}; send the whole request at once, or raise the server's timeout")


def too_many_connections_response(limit: int) -> bytes:
    """The whole 503 answer to a connection over the server's cap (then it closes)."""
    return _error_response(b"503 Service Unavailable",
                           f"the server holds its limit of {limit} open connections; retry later")


async def _respond_json(send: Send, data: Any, status: int = 200,
                        headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await _respond(send, status, json.dumps(data, separators=(",", ":")).encode(), headers)


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None,
                   content_type: bytes = _JSON) -> None:
    head = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if headers:
        head.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})
