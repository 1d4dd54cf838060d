"""A do-nothing KServe server for the floor of benchmarks/serve_latency.py part (a) (not a test).

    python benchmarks/serve_floor.py HTTP_RESPONSE_FILE GRPC_RESPONSE_FILE HOLD_MS

Prints ``http PORT`` and ``grpc PORT``, then serves on 127.0.0.1 until stdin closes; then
prints ``hold_p50_ms HTTP GRPC``. It reads every request whole and answers with bytes
captured from the real server's answer to the same request (``POST …/infer`` over HTTP/1.1,
``ModelInfer`` over gRPC; any other HTTP request gets an empty 200 at once): no model, no
decoding, no batching. Inference answers are held back ``HOLD_MS`` (a sleeping thread, then
the loop writes), so the client idles as long as it does while a real model computes — on
this VM an idle thread wakes slowly and then runs its code 2–4× slower for a while, which
is part of every real round trip. The hold actually spent (request read → answer written)
is measured here and subtracted by the benchmark: a client's round trip minus the hold is
what moving these bytes costs with that client library, through loopback, to the leanest
asyncio server (the same event loop as ours: uvloop when installed) — the share of the
added latency no server logic can remove.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

import httptools

_EMPTY = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"


class _Canned(asyncio.Protocol):
    def __init__(self, answer: bytes, hold_s: float, holds: list[int]) -> None:
        self.answer, self.hold_s, self.holds = answer, hold_s, holds
        self.parser = httptools.HttpRequestParser(self)
        self.method = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_headers_complete(self) -> None:
        self.method = self.parser.get_method()

    def on_message_complete(self) -> None:
        if self.method != b"POST":
            self.transport.write(_EMPTY)
            return
        start = time.perf_counter_ns()
        held = asyncio.get_running_loop().run_in_executor(None, time.sleep, self.hold_s)

        def answer(_: object) -> None:
            self.holds.append(time.perf_counter_ns() - start)
            self.transport.write(self.answer)

        held.add_done_callback(answer)


async def main(http_answer: bytes, grpc_answer: bytes, hold_s: float) -> None:
    import grpc

    loop = asyncio.get_running_loop()
    http_holds: list[int] = []
    grpc_holds: list[int] = []
    http = await loop.create_server(lambda: _Canned(http_answer, hold_s, http_holds), "127.0.0.1", 0)

    async def model_infer(request: bytes, context: object) -> bytes:
        start = time.perf_counter_ns()
        await loop.run_in_executor(None, time.sleep, hold_s)
        grpc_holds.append(time.perf_counter_ns() - start)
        return grpc_answer

    handler = grpc.method_handlers_generic_handler("inference.GRPCInferenceService", {
        "ModelInfer": grpc.unary_unary_rpc_method_handler(model_infer)})     # raw bytes in and out
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", -1)])
    server.add_generic_rpc_handlers((handler,))
    grpc_port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"http {http.sockets[0].getsockname()[1]}\ngrpc {grpc_port}", flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
    http.close()
    await server.stop(0)
    p50 = [statistics.median(h) / 1e6 if h else 0.0 for h in (http_holds, grpc_holds)]
    print(f"hold_p50_ms {p50[0]:.4f} {p50[1]:.4f}", flush=True)


if __name__ == "__main__":
    args = (Path(sys.argv[1]).read_bytes(), Path(sys.argv[2]).read_bytes(), float(sys.argv[3]) / 1000.0)
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(*args))
    else:
        uvloop.run(main(*args))
