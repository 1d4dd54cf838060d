"""Small real engines for the server tests, built through the normal build pipeline.

* ``spin``: y = 2·x, g = GatherElements(x, idx) — and an ONNX ``Loop`` whose trip count is
  the largest ``spin`` value in the batch, so a client decides how long its batch computes
  (~35 µs per turn on one thread), and an out-of-range ``idx`` makes ONNX Runtime fail the
  batch at run time (a real backend error, not a mock).
* ``dtypes``: FP16, UINT8, INT32 and BOOL inputs and outputs.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper, numpy_helper


def spin_model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array((rng.standard_normal((128, 128)) / 12).astype(np.float32), "W"),
             numpy_helper.from_array(np.full((128, 128), 0.01, np.float32), "d0"),
             numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
             numpy_helper.from_array(np.array(2.0, np.float32), "two")]
    body = helper.make_graph(
        [helper.make_node("MatMul", ["d_in", "W"], ["m"]), helper.make_node("Tanh", ["m"], ["d_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])], "body",
        [helper.make_tensor_value_info("i", T.INT64, []), helper.make_tensor_value_info("cond_in", T.BOOL, []),
         helper.make_tensor_value_info("d_in", T.FLOAT, [128, 128])],
        [helper.make_tensor_value_info("cond_out", T.BOOL, []),
         helper.make_tensor_value_info("d_out", T.FLOAT, [128, 128])])
    nodes = [helper.make_node("ReduceMax", ["spin"], ["spin_max"], keepdims=0),
             helper.make_node("Loop", ["spin_max", "", "d0"], ["d_final"], body=body),
             helper.make_node("ReduceSum", ["d_final"], ["dsum"], keepdims=0),
             helper.make_node("Mul", ["dsum", "zero"], ["dz"]),
             helper.make_node("Mul", ["x", "two"], ["x2"]),
             helper.make_node("Add", ["x2", "dz"], ["y"]),
             helper.make_node("GatherElements", ["x", "idx"], ["g"], axis=1)]
    graph = helper.make_graph(
        nodes, "spin",
        [helper.make_tensor_value_info("x", T.FLOAT, ["N", 8]), helper.make_tensor_value_info("spin", T.INT64, ["N", 1]),
         helper.make_tensor_value_info("idx", T.INT64, ["N", 1])],
        [helper.make_tensor_value_info("y", T.FLOAT, ["N", 8]), helper.make_tensor_value_info("g", T.FLOAT, ["N", 1])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def dtypes_model() -> onnx.ModelProto:
    nodes = [helper.make_node("Cast", ["a"], ["a16"], to=T.FLOAT16), helper.make_node("Add", ["h", "a16"], ["h_out"]),
             helper.make_node("Cast", ["a"], ["a32"], to=T.INT32), helper.make_node("Mul", ["a32", "k"], ["k_out"]),
             helper.make_node("Not", ["b"], ["b_out"])]
    graph = helper.make_graph(
        nodes, "dtypes",
        [helper.make_tensor_value_info("h", T.FLOAT16, ["N", 4]), helper.make_tensor_value_info("a", T.UINT8, ["N", 4]),
         helper.make_tensor_value_info("k", T.INT32, ["N", 4]), helper.make_tensor_value_info("b", T.BOOL, ["N", 4])],
        [helper.make_tensor_value_info("h_out", T.FLOAT16, ["N", 4]),
         helper.make_tensor_value_info("k_out", T.INT32, ["N", 4]),
         helper.make_tensor_value_info("b_out", T.BOOL, ["N", 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def build_engine(model: onnx.ModelProto | str, out: Path) -> Path:
    """Build ``model`` (an ONNX proto or a zoo name) into ``out`` with the real build pipeline."""
    from tensorforge.engine.build import build

    if isinstance(model, onnx.ModelProto):
        src = out.with_suffix(".onnx")
        onnx.save(model, src)
        build(src, out)
    else:
        build(model, out)
    return out


def spin_inputs(x: np.ndarray, spin: int = 0, idx: int = 0) -> dict[str, np.ndarray]:
    rows = x.shape[0]
    return {"x": x.astype(np.float32), "spin": np.full((rows, 1), spin, np.int64),
            "idx": np.full((rows, 1), idx, np.int64)}


def make_repository(root: Path) -> Path:
    """tiny_mlp (batching, 2 instances), spin (1 instance, queue of 2, 2 priority levels) and dtypes."""
    for name, model in (("tiny_mlp", "tiny_mlp"), ("spin", spin_model()), ("dtypes", dtypes_model())):
        (root / name / "1").mkdir(parents=True)
        build_engine(model, root / name / "1" / "model.tfe")
    write_config(root / "tiny_mlp", max_batch_size=16, max_queue_delay_ms=5, instances=2, threads_per_instance=1)
    write_config(root / "spin", max_batch_size=1, max_queue_delay_ms=0, max_queue_size=2, priority_levels=2,
                 threads_per_instance=1)
    return root


def calibrate_spin(engine: Path, seconds: float) -> int:
    """Loop turns that make one spin-model call last at least about ``seconds`` here (one ORT thread)."""
    import tensorforge

    session = tensorforge.load(engine, threads=1)
    x = np.zeros((1, 8), np.float32)
    session.run(spin_inputs(x, 10))
    # the fastest of several timings: a turn never runs faster than that later, so on a machine
    # that is busy now and idle later the call still lasts at least ``seconds``
    times = []
    for _ in range(5):
        start = time.perf_counter()
        session.run(spin_inputs(x, 300))
        times.append(time.perf_counter() - start)
    per_turn = max(min(times) / 300, 1e-6)
    return max(300, int(seconds / per_turn))


def write_config(model_dir: Path, **settings) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "config.json").write_text(json.dumps(settings))


def wait_for(predicate, timeout_s: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate`` until true (used to reach a known server state, never to time anything)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def raw_connect(server, timeout: float = 10.0) -> socket.socket:
    """A plain TCP connection to a running server's HTTP port (for raw-bytes tests)."""
    host, port = server.http_url.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=timeout)
