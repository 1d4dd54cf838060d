"""Drive `tensorforge serve` with the official KServe Python SDK (InferenceRESTClient, InferenceGRPCClient).

The SDK (PyPI ``kserve``) pulls kubernetes, fastapi, grpcio-tools and its own pandas pin, so it
is not part of the test extra: run this script from a separate environment that has it, and
point ``--server-python`` at the environment that has TensorForge (it builds a small engine
and starts the server there, on loopback, with free ports)::

    python -m venv /tmp/kserve-venv && /tmp/kserve-venv/bin/pip install "kserve==0.21.*"
    /tmp/kserve-venv/bin/python scripts/kserve_conformance.py --server-python .venv/bin/python

Each check prints PASS or FAIL and what it saw; the exit status is 1 if any failed. Covered,
over both HTTP stacks (``--http-impl uvicorn`` and ``wire``) and gRPC:
live, ready, model ready (a served and an unknown model), server and model metadata, infer
with JSON tensors and with binary tensors (REST: the binary tensor extension; gRPC: raw
contents), and an error. The SDK has no metadata call, so metadata is fetched with the SDK's
own means — over REST its httpx client, parsed by KServe's pydantic response models
(``kserve.protocol.rest.v2_datamodels``); over gRPC its generated ``GRPCInferenceServiceStub``.
Every REST body of the calls above is parsed by those KServe models as well.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

RESULTS: list[tuple[bool, str, str]] = []


def record(ok: bool, name: str, detail: Any) -> None:
    RESULTS.append((ok, name, str(detail)))
    print(f"{'PASS' if ok else 'FAIL'}  {name:58s} {str(detail)[:110]}", flush=True)


async def attempt(name: str, coro: Any, expect: Any = True) -> Any:
    """Await ``coro``; PASS when it returns ``expect`` (or, with expect=None, anything without raising)."""
    try:
        value = await coro
    except Exception as exc:  # a failed check is reported, not raised
        record(False, name, f"{type(exc).__name__}: {exc}")
        return None
    record(expect is None or value == expect, name, value if expect is not None else "ok")
    return value


def start_server(python: str, engine: Path, impl: str) -> tuple[subprocess.Popen[str], int, int]:
    proc = subprocess.Popen([python, "-m", "tensorforge", "serve", str(engine), "--http-port", "0", "--grpc-port", "0",
                             "--metrics-port", "off", "--http-impl", impl],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    text = ""
    for line in proc.stdout:
        text += line
        if line.startswith("press Ctrl-C"):
            break
    ports = dict(re.findall(r"^\s+(http|grpc)\s+\S*?:(\d+)", text, re.M))
    if set(ports) != {"http", "grpc"}:
        proc.kill()
        sys.exit(f"the server did not start:\n{text}")
    return proc, int(ports["http"]), int(ports["grpc"])


async def rest_checks(base: str, model: str, x: np.ndarray) -> dict[str, np.ndarray]:
    import httpx
    from kserve import InferenceRESTClient, InferInput, InferRequest
    from kserve.inference_client import RESTConfig
    from kserve.protocol.infer_type import RequestedOutput
    from kserve.protocol.rest import v2_datamodels as dm

    outs: dict[str, np.ndarray] = {}
    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
    await attempt("REST is_server_live", client.is_server_live(base))
    await attempt("REST is_server_ready", client.is_server_ready(base))
    await attempt(f"REST is_model_ready({model!r})", client.is_model_ready(base, model))
    await attempt("REST is_model_ready('nope') is False", client.is_model_ready(base, "nope"), False)
    for binary in (False, True):
        inp = InferInput("input", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=binary)
        request = InferRequest(model, [inp], request_id="conf-1",
                               request_outputs=[RequestedOutput("logits", {"binary_data": binary})])
        kind = "binary" if binary else "JSON"
        response = await attempt(f"REST infer, {kind} tensors", client.infer(base, request, model_name=model), None)
        if response is not None:
            out = response.outputs[0].as_numpy()
            outs[f"rest-{kind}"] = out
            record(out.shape == (x.shape[0], 10) and response.id == "conf-1",
                   f"REST infer, {kind}: output shape and id", f"{out.shape}, id={response.id!r}")
    bad = InferInput("input", [1, 3], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 3), np.float32), binary_data=False)
    try:
        await client.infer(base, InferRequest(model, [bad]), model_name=model)
        record(False, "REST infer, wrong shape raises with the server's message", "no error")
    except httpx.HTTPStatusError as exc:
        record(exc.response.status_code == 400 and "expects" in str(exc),
               "REST infer, wrong shape raises with the server's message", str(exc).split(", '")[0])
    await client.close()
    # metadata and every body above, parsed by KServe's own response models
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        for path, model_cls in (("/v2/health/live", dm.ServerLiveResponse),
                                ("/v2/health/ready", dm.ServerReadyResponse),
                                (f"/v2/models/{model}/ready", dm.ModelReadyResponse),
                                ("/v2", dm.ServerMetadataResponse), (f"/v2/models/{model}", dm.ModelMetadataResponse)):
            try:
                r = await http.get(path)
                parsed = model_cls.model_validate_json(r.content)
                record(r.status_code == 200, f"REST GET {path} -> {model_cls.__name__}",
                       json.dumps(parsed.model_dump(exclude_none=True), separators=(",", ":")))
            except Exception as exc:
                record(False, f"REST GET {path} -> {model_cls.__name__}", f"{type(exc).__name__}: {exc}")
        body = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
        r = await http.post(f"/v2/models/{model}/infer", json=body)
        try:
            dm.InferenceResponse.model_validate_json(r.content)
            record(r.status_code == 200, "REST POST infer -> InferenceResponse", "parsed")
        except Exception as exc:
            record(False, "REST POST infer -> InferenceResponse", f"{type(exc).__name__}: {exc}")
        r = await http.get("/v2/models/nope/ready")
        record(r.status_code == 404 and "error" in r.json(), "REST GET /v2/models/nope/ready -> error object",
               f"{r.status_code} {r.text}")
    return outs


async def grpc_checks(target: str, model: str, x: np.ndarray) -> dict[str, np.ndarray]:
    import grpc
    from google.protobuf import json_format
    from kserve import InferenceGRPCClient, InferInput, InferRequest
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

    outs: dict[str, np.ndarray] = {}
    client = InferenceGRPCClient(target, timeout=30)
    await attempt("gRPC is_server_live", client.is_server_live())
    await attempt("gRPC is_server_ready", client.is_server_ready())
    await attempt(f"gRPC is_model_ready({model!r})", client.is_model_ready(model))
    await attempt("gRPC is_model_ready('nope') is False", client.is_model_ready("nope"), False)
    for binary in (False, True):
        inp = InferInput("input", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=binary)
        kind = "raw contents" if binary else "typed contents"
        request = InferRequest(model, [inp], request_id="g-1")
        response = await attempt(f"gRPC infer, {kind}", client.infer(request), None)
        if response is not None:
            out = response.outputs[0].as_numpy()
            outs[f"grpc-{kind}"] = out
            record(out.shape == (x.shape[0], 10), f"gRPC infer, {kind}: output shape", out.shape)
    bad = InferInput("input", [1, 3], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 3), np.float32), binary_data=False)
    try:
        await client.infer(InferRequest(model, [bad]))
        record(False, "gRPC infer, wrong shape raises INVALID_ARGUMENT", "no error")
    except grpc.aio.AioRpcError as exc:
        record(exc.code() == grpc.StatusCode.INVALID_ARGUMENT, "gRPC infer, wrong shape raises INVALID_ARGUMENT",
               f"{exc.code().name}: {exc.details()}")
    await client.close()
    async with grpc.aio.insecure_channel(target) as channel:     # the SDK's own generated stub
        stub = GRPCInferenceServiceStub(channel)
        for name, call in (("ServerMetadata", stub.ServerMetadata(pb.ServerMetadataRequest())),
                           ("ModelMetadata", stub.ModelMetadata(pb.ModelMetadataRequest(name=model)))):
            reply = await attempt(f"gRPC {name} (SDK stub)", call, None)
            if reply is not None:
                print(f"      {json.dumps(json_format.MessageToDict(reply), separators=(',', ':'))[:150]}")
    return outs


async def run(http_port: int, grpc_port: int, model: str) -> None:
    x = np.linspace(-1, 1, 3 * 64, dtype=np.float32).reshape(3, 64)
    outs = await rest_checks(f"http://127.0.0.1:{http_port}", model, x)
    outs |= await grpc_checks(f"127.0.0.1:{grpc_port}", model, x)
    first = next(iter(outs.values()), np.empty(0))
    record(len(outs) == 4 and all(np.array_equal(first, o) for o in outs.values()),
           "the same logits over REST JSON/binary and gRPC typed/raw", sorted(outs))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server-python", default=str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "python"),
                    help="a Python with TensorForge installed (default: the checkout's .venv)")
    ap.add_argument("--engine", type=Path, help="engine to serve (default: build the tiny_mlp zoo model)")
    ap.add_argument("--http-impl", choices=("uvicorn", "wire", "both"), default="both")
    args = ap.parse_args()
    import kserve.logging  # fail early if this Python lacks the SDK (the docstring has the install line)

    # the SDK logs every failed RPC with its traceback before raising it; the checks report those themselves
    logging.getLogger(kserve.logging.KSERVE_TRACE_LOGGER_NAME).setLevel(logging.CRITICAL)

    from importlib.metadata import version
    print(f"kserve {version('kserve')}, server python {args.server_python}")
    with tempfile.TemporaryDirectory() as tmp:
        engine = args.engine
        if engine is None:
            engine = Path(tmp) / "mlp.tfe"
            subprocess.run([args.server_python, "-m", "tensorforge", "build", "tiny_mlp", "-o", str(engine)],
                           check=True, stdout=subprocess.DEVNULL)
        for impl in ("uvicorn", "wire") if args.http_impl == "both" else (args.http_impl,):
            proc, http_port, grpc_port = start_server(args.server_python, engine, impl)
            print(f"-- tensorforge serve {engine.name} --http-impl {impl} (http :{http_port}, grpc :{grpc_port})")
            try:
                asyncio.run(run(http_port, grpc_port, engine.stem))
            finally:
                proc.terminate()
                proc.wait(timeout=60)
    failed = [name for ok, name, _ in RESULTS if not ok]
    print(f"{len(RESULTS) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
