"""The KServe v2 gRPC adapter: ``inference.GRPCInferenceService`` on ``grpc.aio``.

Thin on purpose: decode (grpc_codec.py) → submit (core.py) → encode. It runs on the same
asyncio loop as the HTTP server. When a client cancels or its deadline passes, gRPC
cancels the handler; the pending future is cancelled with it, so a request still queued
is dropped before it is computed — the same as a disconnected HTTP client.
Status codes: INVALID_ARGUMENT (bad request), NOT_FOUND (unknown model), UNAVAILABLE
(queue full or stopping), DEADLINE_EXCEEDED (timed out in the queue), UNAUTHENTICATED,
INTERNAL (the model failed on this request's batch).
"""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import Any, Callable

from google.protobuf import json_format

from .core import ServingCore, error_status, error_text
from .grpc_codec import decode_grpc_request, encode_grpc_response, pb

_OPEN = ("ServerLive", "ServerReady")


def make_servicer(core: ServingCore) -> Any:
    """A ``GRPCInferenceServiceServicer`` bound to ``core`` (the base class comes from the official protos)."""
    import grpc
    from tritonclient.grpc import service_pb2_grpc

    service = pb()
    token = f"Bearer {core.config.auth_token}" if core.config.auth_token else None

    async def fail(context: Any, exc: BaseException) -> None:
        _, code = error_status(exc)
        await context.abort(getattr(grpc.StatusCode, code), error_text(exc))

    def guarded(method: Callable[..., Any]) -> Callable[..., Any]:
        name = method.__name__

        async def handler(self: Any, request: Any, context: Any) -> Any:
            if token is not None and name not in _OPEN:
                sent = dict(context.invocation_metadata()).get("authorization", "")
                if not hmac.compare_digest(str(sent), token):
                    await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                                        "missing or wrong bearer token: send metadata 'authorization: Bearer <token>'")
            try:
                return await method(self, request, context)
            except asyncio.CancelledError:
                raise
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await fail(context, exc)

        handler.__name__ = name
        return handler

    class Servicer(service_pb2_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
        @guarded
        async def ServerLive(self, request: Any, context: Any) -> Any:
            return service.ServerLiveResponse(live=True)

        @guarded
        async def ServerReady(self, request: Any, context: Any) -> Any:
            return service.ServerReadyResponse(ready=core.ready())

        @guarded
        async def ModelReady(self, request: Any, context: Any) -> Any:
            return service.ModelReadyResponse(ready=core.model_ready(request.name, request.version))

        @guarded
        async def ServerMetadata(self, request: Any, context: Any) -> Any:
            return service.ServerMetadataResponse(**core.server_metadata())

        @guarded
        async def ModelMetadata(self, request: Any, context: Any) -> Any:
            meta = core.model_metadata(core.model(request.name, request.version))
            return json_format.ParseDict(meta, service.ModelMetadataResponse())

        @guarded
        async def ModelConfig(self, request: Any, context: Any) -> Any:
            config = core.model_config(core.model(request.name, request.version))
            config.pop("tensorforge")
            from tritonclient.grpc import model_config_pb2

            parsed = json_format.ParseDict(config, model_config_pb2.ModelConfig(), ignore_unknown_fields=True)
            return service.ModelConfigResponse(config=parsed)

        @guarded
        async def ModelStatistics(self, request: Any, context: Any) -> Any:
            stats = core.statistics(request.name or None, request.version or None)
            return json_format.ParseDict(stats, service.ModelStatisticsResponse(), ignore_unknown_fields=True)

        @guarded
        async def RepositoryIndex(self, request: Any, context: Any) -> Any:
            index = core.repository.index(request.ready)
            return json_format.ParseDict({"models": index}, service.RepositoryIndexResponse())

        @guarded
        async def RepositoryModelLoad(self, request: Any, context: Any) -> Any:
            config = request.parameters["config"].string_param if "config" in request.parameters else None
            await asyncio.to_thread(core.repository.load, request.model_name, config or None)
            return service.RepositoryModelLoadResponse()

        @guarded
        async def RepositoryModelUnload(self, request: Any, context: Any) -> Any:
            await asyncio.to_thread(core.repository.unload, request.model_name)
            return service.RepositoryModelUnloadResponse()

        @guarded
        async def ModelInfer(self, request: Any, context: Any) -> Any:
            start = time.perf_counter()
            mv = core.model(request.model_name, request.model_version)
            try:
                decoded = decode_grpc_request(request)
            except Exception:
                core.bad_request(mv)
                raise
            future = core.submit(mv, decoded)
            try:
                outputs = await asyncio.wrap_future(future)     # cancelled with the RPC → dropped if queued
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    core.client_gone(mv)
                raise
            response = encode_grpc_response(mv.name, mv.version, decoded, outputs)
            core.succeeded(mv, time.perf_counter() - start)
            return response

    return Servicer()


def grpc_options(max_request_bytes: int) -> list[tuple[str, Any]]:
    return [("grpc.max_receive_message_length", max_request_bytes),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 0)]
