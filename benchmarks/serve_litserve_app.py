"""The peer for serve_latency.py: the same engine on ONNX Runtime behind LitServe, with LitServe's batching.

    python benchmarks/serve_litserve_app.py ENGINE.tfe PORT [--max-batch-size 8] [--batch-timeout-ms 5]
                                            [--threads 2] [--workers 1]

LitServe parses every request body as JSON, so a tensor travels as base64 of its raw
float32 bytes (its idiomatic route for images) — decoded with one ``b64decode`` and a
``frombuffer``, no per-element JSON. The model runs on the very same ONNX Runtime
session settings as TensorForge's server (same engine, same intra-op threads).
"""

from __future__ import annotations

import argparse
import base64

import numpy as np

try:  # at module level: LitServe pickles the API object into its worker processes (spawn)
    import litserve as ls
except ImportError:  # pragma: no cover - serve_latency.py reports the peer as skipped
    ls = None

_Base = ls.LitAPI if ls is not None else object


class OnnxApi(_Base):  # type: ignore[misc, valid-type]
    def __init__(self, engine: str, threads: int, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.engine_path, self.threads = engine, threads

    def setup(self, device: str) -> None:
        from tensorforge.engine.runtime import Engine

        engine = Engine.load(self.engine_path)
        self.session = engine.session(threads=self.threads, check_finite=False, warn_host=False)
        self.input = engine.inputs[0]
        self.output = engine.outputs[0].name
        self.shape = list(self.input.shape[1:])

    def decode_request(self, request: dict) -> np.ndarray:  # type: ignore[override]
        raw = base64.b64decode(request["input"])
        return np.frombuffer(raw, dtype=np.float32).reshape([-1, *self.shape])

    def batch(self, inputs: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(inputs, axis=0)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.session.run({self.input.name: x})[self.output]

    def unbatch(self, output: np.ndarray) -> list[np.ndarray]:
        return [row[None] for row in output]

    def encode_response(self, output: np.ndarray) -> dict:
        return {"output": base64.b64encode(np.ascontiguousarray(output).tobytes()).decode()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("engine")
    ap.add_argument("port", type=int)
    ap.add_argument("--max-batch-size", type=int, default=8)
    ap.add_argument("--batch-timeout-ms", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1, help="LitServe workers_per_device")
    args = ap.parse_args()
    if ls is None:
        raise SystemExit("litserve is not installed: pip install litserve")
    api = OnnxApi(args.engine, args.threads, max_batch_size=args.max_batch_size,
                  batch_timeout=args.batch_timeout_ms / 1000.0)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=args.workers, timeout=30)
    server.run(host="127.0.0.1", port=args.port, generate_client_file=False, log_level="warning")


if __name__ == "__main__":
    main()
