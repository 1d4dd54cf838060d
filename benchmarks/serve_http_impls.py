"""The two HTTP servers of ``tensorforge serve`` side by side on loopback (not a test): uvicorn (the default)
and our own protocol (``--http-impl wire``).

    python benchmarks/serve_http_impls.py [--rounds 5] [--seconds 1]

One keep-alive client (http.client), closed loop, contenders alternating in rounds. Two requests: an
empty ``GET /v2/health/live``, and a binary-tensor infer with a 602 KB input (one 224x224x3 FP32 image) to a
model that only averages it, so what is timed is moving and decoding the body, not computing. Prints p10 and
p50 round-trip times per server in ms, and wire's p50 saving over uvicorn.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
from onnx import TensorProto, helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from serve_testkit import build_engine  # noqa: E402

from tensorforge.serve import InferenceServer, ServerConfig  # noqa: E402

WIDTH = 224 * 224 * 3


def averaging_engine(out: Path) -> Path:
    graph = helper.make_graph([helper.make_node("ReduceMean", ["x"], ["y"], axes=[1], keepdims=1)], "average",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", WIDTH])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return build_engine(model, out)


def requests(port: int) -> dict[str, Callable[[], None]]:
    x = np.ones((1, WIDTH), np.float32)
    head = json.dumps({"inputs": [{"name": "x", "shape": [1, WIDTH], "datatype": "FP32",
                                   "parameters": {"binary_data_size": x.nbytes}}]}).encode()
    body, headers = head + x.tobytes(), {"Inference-Header-Content-Length": str(len(head))}
    conn = http.client.HTTPConnection("127.0.0.1", port)

    def call(method: str, path: str, payload: bytes | None = None) -> None:
        conn.request(method, path, body=payload, headers=headers if payload else {})
        response = conn.getresponse()
        response.read()
        assert response.status == 200, response.status

    return {"empty_get": lambda: call("GET", "/v2/health/live"),
            "infer_602kB": lambda: call("POST", "/v2/models/average/infer", body)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.0, help="per contender and request per round")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        engine = averaging_engine(Path(tmp) / "average.tfe")
        servers = {impl: InferenceServer([engine], config=ServerConfig(http_port=0, grpc_port=None, metrics_port=None,
                                                                       http_impl=impl)).start()
                   for impl in ("uvicorn", "wire")}
        try:
            calls = {impl: requests(server.http_port or 0) for impl, server in servers.items()}
            samples: dict[str, dict[str, list[float]]] = {impl: {} for impl in calls}
            for impl, kinds in calls.items():          # warm-up
                for fn in kinds.values():
                    for _ in range(20):
                        fn()
            for _ in range(args.rounds):
                for impl, kinds in calls.items():
                    for kind, fn in kinds.items():
                        out = samples[impl].setdefault(kind, [])
                        end = time.perf_counter() + args.seconds
                        while time.perf_counter() < end:
                            t0 = time.perf_counter()
                            fn()
                            out.append(time.perf_counter() - t0)
        finally:
            for server in servers.values():
                server.stop()
    result = {impl: {kind: {"n": len(v), "p10_ms": round(float(np.percentile(v, 10)) * 1e3, 4),
                            "p50_ms": round(float(np.percentile(v, 50)) * 1e3, 4)} for kind, v in kinds.items()}
              for impl, kinds in samples.items()}
    result["wire_saves_p50_ms"] = {kind: round(result["uvicorn"][kind]["p50_ms"] - result["wire"][kind]["p50_ms"], 4)
                                   for kind in samples["uvicorn"]}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
