"""The inference server: wires the repository, HTTP (uvicorn, or wire.py), gRPC (grpc.aio) and metrics together.

Start and stop it from Python::

    from tensorforge.serve import InferenceServer, ServerConfig
    with InferenceServer(["resnet50.tfe"], config=ServerConfig(http_port=0, grpc_port=0)) as server:
        print(server.http_url, server.grpc_target)     # ports picked by the OS when 0

or from the shell with ``tensorforge serve``. Both listeners run on one asyncio loop in a
background thread; ``start`` returns once they accept connections (bind errors surface
there). ``stop(drain=True)`` — what SIGTERM does in the CLI — marks the server not
ready, stops accepting connections, lets every in-flight request finish (up to
``drain_timeout_s``), then closes the models' batchers.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from typing import Any, Sequence

from ..errors import ConfigError, ServingError
from .config import ModelConfig, ServerConfig
from .core import ServingCore
from .metrics import ServerMetrics
from .repository import ModelRepository


class InferenceServer:
    """KServe v2 over HTTP and gRPC, with Prometheus metrics, for engine files and/or a repository."""

    def __init__(self, engines: Sequence[str | os.PathLike[str]] = (), repository: str | os.PathLike[str] | None = None,
                 *, config: ServerConfig = ServerConfig(), model_config: ModelConfig | None = None) -> None:
        if not engines and repository is None:
            raise ConfigError("nothing to serve: give engine files (.tfe) and/or a `repository` directory")
        self.config = config
        self.metrics = ServerMetrics(lambda: self.repository.loaded())
        self.repository = ModelRepository(engines, repository, base_config=model_config,
                                          observer_factory=self.metrics.observer)
        self.core = ServingCore(self.repository, self.metrics, config)
        self.http_port: int | None = None
        self.grpc_port: int | None = None
        self.metrics_port: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._started = threading.Event()
        self._startup_error: BaseException | None = None
        self._stopped = threading.Event()
        self.wire: Any = None                  # serve/wire.py's WireServer when http_impl is "wire"
        self.uvicorn: Any = None               # the uvicorn.Server otherwise
        self.http_app: Any = None              # the ASGI app (http.py's HttpApp) either serves

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> "InferenceServer":
        """Load every model, open the listeners, return when they accept connections."""
        if self._thread is not None:
            raise ServingError("server already started")
        self.repository.load_all()
        sock = self._bind_http() if self.config.http_port is not None else None
        try:
            if self.config.metrics_port is not None:
                self.metrics_port = self.metrics.serve(self.config.host, self.config.metrics_port)
            self._thread = threading.Thread(target=self._run_loop, args=(sock,), daemon=True, name="tf-serve-loop")
            self._thread.start()
            self._started.wait()
            if self._startup_error is not None:
                raise self._startup_error
        except BaseException:
            self.metrics.stop()
            self.repository.close(drain=False, timeout_s=5)
            if sock is not None:
                sock.close()
            raise
        return self

    def _bind_http(self) -> socket.socket:
        host, port = self.config.host, self.config.http_port
        try:
            family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
            sock = socket.socket(family, kind, proto)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
        except OSError as exc:
            raise ServingError(f"cannot listen for HTTP on {host}:{port} ({exc}); pick another `http_port` "
                               "(0 = any free port)") from exc
        sock.listen(2048)
        self.http_port = int(sock.getsockname()[1])
        return sock

    def _run_loop(self, sock: socket.socket | None) -> None:
        loop = _new_loop(self.config.event_loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._main(sock))
        except BaseException as exc:  # startup failures are re-raised in start()
            self._startup_error = self._startup_error or exc
        finally:
            self._started.set()
            loop.close()
            self._stopped.set()

    async def _main(self, sock: socket.socket | None) -> None:
        self._stop_event = asyncio.Event()
        grpc_server = await self._start_grpc() if self.config.grpc_port is not None else None
        http_server, http_task, wire = None, None, None
        cfg = self.config
        if sock is not None:
            from .http import HttpApp

            self.http_app = HttpApp(self.core)
        if sock is not None and cfg.http_impl == "wire":
            from .wire import WireServer

            wire = WireServer(self.http_app, max_body_bytes=cfg.max_request_bytes, keepalive_s=cfg.keepalive_s,
                              header_timeout_s=cfg.header_timeout_s, body_timeout_s=cfg.body_timeout_s,
                              max_connections=cfg.max_connections)
            self.wire = wire
            await wire.start(sock)
        elif sock is not None:
            from .uvicorn_http import make_server

            http_server = make_server(self.http_app, header_timeout_s=cfg.header_timeout_s,
                                      body_timeout_s=cfg.body_timeout_s, keepalive_s=cfg.keepalive_s,
                                      max_connections=cfg.max_connections, drain_timeout_s=cfg.drain_timeout_s)
            self.uvicorn = http_server
            http_task = asyncio.ensure_future(http_server.serve(sockets=[sock]))
            while not http_server.started:
                if http_task.done():
                    http_task.result()
                    raise ServingError("the HTTP server stopped during startup")
                await asyncio.sleep(0.005)
        self._started.set()
        await self._stop_event.wait()
        # drain: not ready, stop accepting, let in-flight requests complete
        self.core.shutting_down = True
        waits = []
        if wire is not None:
            waits.append(asyncio.ensure_future(wire.shutdown(self.config.drain_timeout_s)))
        if http_server is not None and http_task is not None:
            http_server.should_exit = True
            waits.append(http_task)
        if grpc_server is not None:
            waits.append(asyncio.ensure_future(grpc_server.stop(self.config.drain_timeout_s)))
        if waits:
            await asyncio.gather(*waits, return_exceptions=True)

    async def _start_grpc(self) -> Any:
        import grpc
        from tritonclient.grpc import service_pb2_grpc

        from .grpc import grpc_options, make_servicer

        server = grpc.aio.server(options=grpc_options(self.config.max_request_bytes))
        service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(make_servicer(self.core), server)
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        try:
            port = server.add_insecure_port(f"{host}:{self.config.grpc_port}")
        except RuntimeError as exc:
            raise ServingError(f"cannot listen for gRPC on {host}:{self.config.grpc_port} ({exc}); pick another "
                               "`grpc_port` (0 = any free port)") from exc
        if port == 0:
            raise ServingError(f"cannot listen for gRPC on {host}:{self.config.grpc_port}; pick another `grpc_port`")
        self.grpc_port = port
        await server.start()
        return server

    def stop(self, drain: bool = True, timeout_s: float | None = None) -> None:
        """Stop serving. With ``drain``, in-flight and queued requests complete first."""
        timeout = self.config.drain_timeout_s if timeout_s is None else timeout_s
        loop, event = self._loop, self._stop_event
        if loop is not None and event is not None and not self._stopped.is_set():
            loop.call_soon_threadsafe(event.set)
            self._stopped.wait(timeout + 10)
        self.core.shutting_down = True
        self.repository.close(drain=drain, timeout_s=timeout)
        self.metrics.stop()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the server has stopped (True) or ``timeout_s`` passed (False)."""
        return self._stopped.wait(timeout_s)

    def __enter__(self) -> "InferenceServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------------------------
    @property
    def http_url(self) -> str:
        return f"{_url_host(self.config.host)}:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"{_url_host(self.config.host)}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{_url_host(self.config.host)}:{self.metrics_port}/metrics"

    def describe(self) -> dict[str, Any]:
        return {"http": self.http_url if self.http_port else None,
                "grpc": self.grpc_target if self.grpc_port else None,
                "metrics": self.metrics_url if self.metrics_port else None,
                "models": self.repository.index(), "config": self.config.to_dict()}


def _new_loop(choice: str) -> asyncio.AbstractEventLoop:
    """uvloop when asked for, or for "auto" when installed: its wakeups from the batcher's threads and its
    socket reads cost less per request (figures: benchmarks/serve_latency.py, benchmarks/results/)."""
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise ConfigError("event_loop 'uvloop' needs the uvloop package: pip install uvloop") from None
        else:
            return uvloop.new_event_loop()  # type: ignore[no-any-return]
    return asyncio.new_event_loop()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
