"""Remote targets: any KServe v2 / Open Inference Protocol server (ours, Triton, …) over HTTP or gRPC.

Both clients run on one asyncio event loop in a background thread; ``issue`` hands a
request to it with ``call_soon_threadsafe`` and returns at once, and the response
callback runs on that loop. Request bodies are encoded once per batch size, before the
run, so the per-request client cost is only the send and the receive:

* HTTP: ``aiohttp`` (keep-alive connection pool of ``concurrency`` connections) posting
  the binary tensor extension — a JSON header plus raw little-endian tensor bytes, with
  outputs requested in binary too, so neither side spends time on JSON number text.
  aiohttp rather than ``tritonclient.http``: the latter re-encodes every request and
  runs on gevent or wraps aiohttp itself; rather than httpx: aiohttp's per-request
  overhead is about half of httpx's under many concurrent requests.
* gRPC: ``grpc.aio`` calling ``inference.GRPCInferenceService/ModelInfer`` with the
  pre-serialized ``ModelInferRequest`` bytes (no per-request protobuf work); the
  message classes are the generated Triton protos shipped in ``tritonclient.grpc``, as
  in this project's server (KServe's proto is a wire-compatible subset of Triton's).

The model's inputs come from the server's metadata endpoint; a leading ``-1`` dim is
the batch axis. The largest batch per request comes from Triton's model-config
extension when the server offers it (``max_batch_size``), else from ``max_batch``
(default 1: one sample per request, always safe).
"""

from __future__ import annotations

import abc
import asyncio
import importlib
import json
import threading
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit

import numpy as np

from ..core.specs import TensorSpec, random_inputs
from ..errors import InputError, ServingError
from ..serve.protocol import NUMERIC_DATATYPES, datatype_of, dtype_of
from .targets import DoneFn

__all__ = ["HttpTarget", "GrpcTarget", "open_remote"]

_SETUP_TIMEOUT_S = 30.0


class _LoopThread:
    """An asyncio event loop running in a daemon thread."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name=name)
        self._thread.start()

    def run(self, coro: Any, timeout: float = _SETUP_TIMEOUT_S) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10.0)
        if not self._thread.is_alive():
            self.loop.close()


def _specs_from_metadata(meta: Mapping[str, Any], where: str) -> tuple[list[TensorSpec], bool]:
    """(input specs with "N" for the batch axis, whether axis 0 is a batch axis) from v2 model metadata."""
    specs: list[TensorSpec] = []
    batched = True
    inputs = meta.get("inputs") or []
    if not inputs:
        raise ServingError(f"{where}: the model metadata lists no inputs")
    for item in inputs:
        if item.get("datatype") not in NUMERIC_DATATYPES:
            raise InputError(f"{where}: input {item.get('name')!r} has datatype {item.get('datatype')}; the load "
                             f"generator sends numeric tensors only ({', '.join(NUMERIC_DATATYPES)})")
        dtype = dtype_of(item["datatype"]).name
        shape = [int(d) for d in item.get("shape", [])]
        if not shape or shape[0] != -1:
            batched = False
        dims: list[int | str | None] = ["N" if (i == 0 and d == -1) else (None if d < 0 else d)
                                        for i, d in enumerate(shape)]
        specs.append(TensorSpec(str(item["name"]), dtype, tuple(dims)))
    return specs, batched


def _request_arrays(specs: list[TensorSpec], batch: int, batched: bool, seed: int) -> dict[str, np.ndarray]:
    if not batched:
        if batch != 1:
            raise InputError("this model has no batch axis (its shapes do not start with -1): one sample per request")
        # a fixed-shape model: random_inputs uses batch only for symbolic axis 0, which is absent here
    return random_inputs(specs, batch, seed)


class _RemoteBase(abc.ABC):
    kind = "remote"

    def __init__(self, url: str, model: str, version: str | None, concurrency: int, max_batch: int | None,
                 seed: int, timeout_s: float) -> None:
        if concurrency < 1:
            raise InputError(f"concurrency must be >= 1, got {concurrency}")
        self.url = url.rstrip("/")
        self.model = model
        self.version = version
        self.name = model if not version else f"{model}:{version}"
        self.concurrency = concurrency
        self.max_in_flight = concurrency
        self.timeout_s = timeout_s
        self._seed = seed
        self._user_max_batch = max_batch
        self.max_batch = 1
        self.input_specs: list[TensorSpec] = []
        self.output_names: list[str] = []
        self._batched = False
        self._server_max_batch: int | None = None
        self._bodies: dict[int, Any] = {}
        self._loop = _LoopThread(f"tf-loadgen-{self.kind}")
        self._sem: asyncio.Semaphore | None = None

    def _set_model(self, meta: Mapping[str, Any], server_max_batch: int | None) -> None:
        self.input_specs, self._batched = _specs_from_metadata(meta, f"{self.url} model {self.name!r}")
        self.output_names = [str(o["name"]) for o in meta.get("outputs") or []]
        self._server_max_batch = server_max_batch
        if not self._batched:
            self.max_batch = 1
        elif self._user_max_batch is not None:
            if server_max_batch and self._user_max_batch > server_max_batch:
                raise InputError(f"max_batch={self._user_max_batch} exceeds the server's max_batch_size "
                                 f"{server_max_batch} for model {self.name!r}")
            self.max_batch = self._user_max_batch
        else:
            self.max_batch = server_max_batch or 1

    def saturating_window(self, batch: int) -> int:
        return min(self.concurrency, max(4, 2 * -(-self.max_batch // max(1, batch))))

    def prepare(self, batch_sizes: Iterable[int]) -> None:
        for b in sorted(set(batch_sizes)):
            if b not in self._bodies:
                if b > self.max_batch:
                    raise InputError(f"a request of {b} samples exceeds max batch {self.max_batch} for {self.name!r}")
                self._bodies[b] = self._encode(_request_arrays(self.input_specs, b, self._batched, self._seed + b))

    @abc.abstractmethod
    def _encode(self, arrays: dict[str, np.ndarray]) -> Any:
        """The protocol's request body for these input arrays (HTTP: bytes; gRPC: a ModelInferRequest)."""

    def issue(self, tag: int, batch: int, done: DoneFn, feeds: Mapping[str, np.ndarray] | None = None) -> None:
        body = self._encode(dict(feeds)) if feeds is not None else self._bodies.get(batch)
        if body is None:
            self.prepare([batch])
            body = self._bodies[batch]
        self._loop.loop.call_soon_threadsafe(self._spawn, tag, body, done)

    def _spawn(self, tag: int, body: Any, done: DoneFn) -> None:
        self._loop.loop.create_task(self._send(tag, body, done))

    @abc.abstractmethod
    async def _send(self, tag: int, body: Any, done: DoneFn) -> None:
        """Send one request and call ``done`` with its outcome (on the loop thread)."""

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "url": self.url, "model": self.model, "version": self.version,
                "inputs": [s.to_dict() for s in self.input_specs], "outputs": self.output_names,
                "max_batch": self.max_batch, "server_max_batch_size": self._server_max_batch,
                "concurrency": self.concurrency, "timeout_s": self.timeout_s}


class HttpTarget(_RemoteBase):
    """A KServe v2 model over HTTP/REST (binary tensor extension)."""

    kind = "http"

    def __init__(self, url: str, model: str, *, version: str | None = None, concurrency: int = 64,
                 max_batch: int | None = None, seed: int = 0, timeout_s: float = 60.0) -> None:
        super().__init__(url, model, version, concurrency, max_batch, seed, timeout_s)
        base = f"{self.url}/v2/models/{model}" + (f"/versions/{version}" if version else "")
        self._infer_url = base + "/infer"
        try:
            self._session = self._loop.run(self._open())
            meta, config = self._loop.run(self._setup(base))
        except BaseException:
            self.close()
            raise
        max_b = config.get("max_batch_size") if isinstance(config, dict) else None
        self._set_model(meta, int(max_b) if isinstance(max_b, int) and max_b > 0 else None)

    async def _open(self) -> Any:
        import aiohttp

        self._sem = asyncio.Semaphore(self.concurrency)
        connector = aiohttp.TCPConnector(limit=self.concurrency, force_close=False)
        return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout_s))

    async def _setup(self, base: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
        import aiohttp

        try:
            async with self._session.get(f"{self.url}/v2/health/ready") as r:
                if r.status != 200:
                    raise ServingError(f"{self.url} is not ready (GET /v2/health/ready → {r.status})")
            async with self._session.get(base) as r:
                text = await r.text()
                if r.status != 200:
                    raise ServingError(f"{self.url}: model {self.name!r} metadata → HTTP {r.status}: {text[:300]}")
                meta = json.loads(text)
            config = None
            async with self._session.get(base + "/config") as r:
                if r.status == 200:
                    config = json.loads(await r.text())
        except aiohttp.ClientError as exc:
            raise ServingError(f"cannot reach {self.url}: {exc} — is the server running? "
                               "(start one with `tensorforge serve …`)") from exc
        return meta, config

    def _encode(self, arrays: dict[str, np.ndarray]) -> tuple[bytes, dict[str, str]]:
        inputs, blobs = [], []
        for spec in self.input_specs:
            a = np.ascontiguousarray(arrays[spec.name])
            raw = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
            inputs.append({"name": spec.name, "shape": list(a.shape), "datatype": datatype_of(a.dtype),
                           "parameters": {"binary_data_size": len(raw)}})
            blobs.append(raw)
        header = {"inputs": inputs, "outputs": [{"name": o, "parameters": {"binary_data": True}}
                                                for o in self.output_names]}
        head = json.dumps(header, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(head))}
        return head + b"".join(blobs), headers

    async def _send(self, tag: int, body: Any, done: DoneFn) -> None:
        data, headers = body
        error: BaseException | None = None
        assert self._sem is not None
        try:
            async with self._sem:
                async with self._session.post(self._infer_url, data=data, headers=headers) as r:
                    payload = await r.read()
                    if r.status != 200:
                        error = ServingError(f"HTTP {r.status}: {payload[:200].decode(errors='replace')}")
        except Exception as exc:  # connection reset, timeout: this request failed, the run goes on
            error = exc
        done(tag, error, None)

    def close(self) -> None:
        session = getattr(self, "_session", None)
        if session is not None and self._loop.loop.is_running():
            try:
                self._loop.run(session.close(), timeout=10.0)
            except Exception:
                pass
        self._loop.stop()


def _grpc_protos() -> Any:
    """KServe v2 gRPC message classes: the generated Triton protos inside tritonclient (what our server uses)."""
    try:
        return importlib.import_module("tritonclient.grpc.service_pb2")
    except ImportError as exc:
        raise ServingError("gRPC targets need the KServe v2 protobuf classes that ship in tritonclient: "
                           "pip install 'tritonclient[grpc]'") from exc


class GrpcTarget(_RemoteBase):
    """A KServe v2 model over gRPC (``inference.GRPCInferenceService``)."""

    kind = "grpc"
    _SERVICE = "/inference.GRPCInferenceService/"

    def __init__(self, url: str, model: str, *, version: str | None = None, concurrency: int = 64,
                 max_batch: int | None = None, seed: int = 0, timeout_s: float = 60.0) -> None:
        super().__init__(url, model, version, concurrency, max_batch, seed, timeout_s)
        self._pb = _grpc_protos()
        parts = urlsplit(url)
        if not parts.hostname or not parts.port:
            raise InputError(f"a gRPC target needs host and port, like grpc://127.0.0.1:8001; got {url!r}")
        self._address = f"{parts.hostname}:{parts.port}"
        try:
            self._loop.run(self._open())
            meta, max_b = self._loop.run(self._setup())
        except BaseException:
            self.close()
            raise
        self._set_model(meta, max_b)

    async def _open(self) -> None:
        import grpc

        self._sem = asyncio.Semaphore(self.concurrency)
        self._channel = grpc.aio.insecure_channel(self._address, options=[
            ("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)])
        # raw bytes in and out: requests are serialized once, responses are only checked for errors
        self._infer = self._channel.unary_unary(self._SERVICE + "ModelInfer")

    async def _setup(self) -> tuple[dict[str, Any], int | None]:
        import grpc
        from google.protobuf.json_format import MessageToDict

        pb = self._pb
        kw = {"name": self.model, "version": self.version or ""}
        try:
            metadata = self._channel.unary_unary(self._SERVICE + "ModelMetadata",
                                                 request_serializer=pb.ModelMetadataRequest.SerializeToString,
                                                 response_deserializer=pb.ModelMetadataResponse.FromString)
            meta_pb = await metadata(pb.ModelMetadataRequest(**kw), timeout=_SETUP_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            raise ServingError(f"{self.url}: model {self.name!r} metadata failed: {exc.code().name}: "
                               f"{exc.details()} — is the server running and the model loaded?") from exc
        meta = MessageToDict(meta_pb, preserving_proto_field_name=True)
        max_b: int | None = None
        if hasattr(pb, "ModelConfigRequest"):
            try:
                config = self._channel.unary_unary(self._SERVICE + "ModelConfig",
                                                   request_serializer=pb.ModelConfigRequest.SerializeToString,
                                                   response_deserializer=pb.ModelConfigResponse.FromString)
                reply = await config(pb.ModelConfigRequest(**kw), timeout=_SETUP_TIMEOUT_S)
                max_b = int(reply.config.max_batch_size) or None
            except grpc.aio.AioRpcError:
                max_b = None   # not every KServe server implements Triton's config extension
        return meta, max_b

    def _encode(self, arrays: dict[str, np.ndarray]) -> bytes:
        req = self._pb.ModelInferRequest(model_name=self.model, model_version=self.version or "")
        for spec in self.input_specs:
            a = np.ascontiguousarray(arrays[spec.name])
            t = req.inputs.add()
            t.name = spec.name
            t.datatype = datatype_of(a.dtype)
            t.shape.extend(a.shape)
            req.raw_input_contents.append(a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes())
        for name in self.output_names:
            req.outputs.add().name = name
        return bytes(req.SerializeToString())

    async def _send(self, tag: int, body: Any, done: DoneFn) -> None:
        error: BaseException | None = None
        assert self._sem is not None
        try:
            async with self._sem:
                await self._infer(body, timeout=self.timeout_s)
        except Exception as exc:
            code, details = getattr(exc, "code", None), getattr(exc, "details", None)
            error = ServingError(f"gRPC {code().name}: {details()}") if code and details else exc
        done(tag, error, None)

    def close(self) -> None:
        channel = getattr(self, "_channel", None)
        if channel is not None and self._loop.loop.is_running():
            try:
                self._loop.run(channel.close(), timeout=10.0)
            except Exception:
                pass
        self._loop.stop()


def open_remote(url: str, model: str, *, version: str | None = None, concurrency: int = 64,
                max_batch: int | None = None, seed: int = 0) -> HttpTarget | GrpcTarget:
    """An HTTP or gRPC target by URL scheme."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        return HttpTarget(url, model, version=version, concurrency=concurrency, max_batch=max_batch, seed=seed)
    if scheme == "grpc":
        return GrpcTarget(url, model, version=version, concurrency=concurrency, max_batch=max_batch, seed=seed)
    raise InputError(f"unsupported server URL {url!r}; use http://host:port or grpc://host:port")
