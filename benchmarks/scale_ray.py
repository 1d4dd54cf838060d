"""Scale-out on Ray, measured: prints one JSON object (not a test).

Online — one closed-loop client (asyncio + aiohttp, ``--concurrency`` requests in flight, one sample
each, KServe v2 binary tensor bodies), the same engine, the same run; the three targets stay up together
and are measured in alternation for ``--seconds`` each, ``--rounds`` times (medians and paired ratios):

* ``tf_server``      TensorForge's own server (``tensorforge serve``, a child process);
* ``ray_tensorforge`` :func:`tensorforge.scale.serve_deployment` (our batcher inside one Ray Serve replica);
* ``ray_serve_batch`` a plain Ray Serve ``@serve.batch`` deployment of the same ONNX bytes on ONNX Runtime
  (same replicas, CPUs, threads, max batch and wait; it decodes/encodes with the same KServe codec so
  only serving and batching differ).

Offline — the same rows through ``Session.run`` in-process (batches of ``--batch``) and through
:func:`tensorforge.scale.offline` (Ray Data ``map_batches`` over an actor pool; its time counts from
building the dataset to the last output row, actor start-up included), outputs compared.

    python benchmarks/scale_ray.py --model mobilenet_v2 --seconds 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from ray import serve

from tensorforge.core.stats import percentile
from tensorforge.serve.protocol import array_to_bytes, decode_http_request, encode_http_response

CPUS = 2            # Ray CPUs, ORT threads per replica / server instance: this machine's cores


def log(msg: str) -> None:
    print(f"[scale_ray] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def infer_body(name: str, x: np.ndarray) -> tuple[bytes, dict[str, str]]:
    blob = array_to_bytes(x)
    header = json.dumps({"inputs": [{"name": name, "shape": list(x.shape), "datatype": "FP32",
                                     "parameters": {"binary_data_size": len(blob)}}],
                         "parameters": {"binary_data_output": True}}).encode()
    return header + blob, {"Inference-Header-Content-Length": str(len(header)),
                           "Content-Type": "application/octet-stream"}


async def _closed_loop(url: str, body: bytes, headers: dict[str, str], concurrency: int, seconds: float,
                       warmup_s: float) -> dict[str, Any]:
    import aiohttp

    lat: list[float] = []
    errors = 0
    start = time.perf_counter()
    t_measure, t_end = start + warmup_s, start + warmup_s + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while True:
            t0 = time.perf_counter()
            if t0 >= t_end:
                return
            async with session.post(url, data=body, headers=headers) as r:
                await r.read()
                ok = r.status == 200
            t1 = time.perf_counter()
            if t0 >= t_measure and t1 <= t_end:
                if ok:
                    lat.append(t1 - t0)
                else:
                    errors += 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    ms = sorted(v * 1000 for v in lat)
    return {"samples_per_s": round(len(lat) / seconds, 2), "ok": len(lat), "errors": errors,
            "p50_ms": round(percentile(ms, 0.50), 2) if ms else None,
            "p99_ms": round(percentile(ms, 0.99), 2) if ms else None}


def measure(addr: str, model: str, body: bytes, headers: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    url = f"http://{addr}/v2/models/{model}/infer"
    return asyncio.run(_closed_loop(url, body, headers, args.concurrency, args.seconds, args.warmup))


def wait_ready(addr: str, model: str, timeout_s: float = 120) -> None:
    import urllib.request

    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://{addr}/v2/models/{model}/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{addr} never became ready")


def server_mean_batch(addr: str, model: str) -> float:
    """Rows per executed batch over the whole run (warm-up included), from the server's statistics."""
    import urllib.request

    with urllib.request.urlopen(f"http://{addr}/v2/models/{model}/stats", timeout=10) as r:
        s = json.loads(r.read())["model_stats"][0]
    return round(s["inference_count"] / max(s["execution_count"], 1), 2)


class PlainServeBatch:
    """The peer: what a Ray Serve user writes by hand — ORT session, ``@serve.batch``, one route."""

    def __init__(self, model_bytes: bytes, model: str, input_name: str, output_name: str, threads: int) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        self.sess = ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
        self.model, self.input, self.output = model, input_name, output_name

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def _run(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        rows = [len(x) for x in xs]
        y = self.sess.run([self.output], {self.input: np.concatenate(xs)})[0]
        return list(np.split(y, np.cumsum(rows)[:-1]))

    async def __call__(self, request: Any) -> Any:
        from starlette.responses import Response

        body = await request.body()
        hl = request.headers.get("inference-header-content-length")
        req = decode_http_request(body, int(hl) if hl else None)
        y = await self._run(req.inputs[self.input])
        payload, hlen = encode_http_response(self.model, "1", req, {self.output: y})
        headers = {"inference-header-content-length": str(hlen)} if hlen is not None else {}
        return Response(payload, headers=headers, media_type="application/octet-stream")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mobilenet_v2", help="zoo name to build (ignored with --engine)")
    ap.add_argument("--engine", help="an engine file to use instead of building --model")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=3, help="online: rounds of the three targets in alternation")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--wait-ms", type=float, default=5.0)
    ap.add_argument("--rows", type=int, default=512, help="offline rows")
    ap.add_argument("--batch", type=int, default=32, help="offline batch size")
    args = ap.parse_args()
    # stdout carries the JSON only: Ray's driver-side log lines (raylet, workers) go to stderr meanwhile
    json_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)

    import ray

    import tensorforge
    from tensorforge.scale import deploy, offline

    work = Path(tempfile.mkdtemp(prefix="scale-bench-"))
    if args.engine:
        engine = Path(args.engine)
    else:
        engine = work / f"{args.model}.tfe"
        t = time.perf_counter()
        tensorforge.build(args.model, engine)
        log(f"built {engine.name} in {time.perf_counter() - t:.1f}s")
    eng = tensorforge.Engine.load(engine)
    name, spec, out_name = engine.stem, eng.inputs[0], eng.outputs[0].name
    shape = [1 if not isinstance(d, int) else d for d in spec.shape]
    x1 = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    body, headers = infer_body(spec.name, x1)
    result: dict[str, Any] = {"model": name, "cpus": CPUS, "host_cpus": os.cpu_count(), "ray": ray.__version__,
                              "client": {"kind": "closed loop, aiohttp", "concurrency": args.concurrency,
                                         "seconds": args.seconds, "rows_per_request": 1, "body": "KServe v2 binary"},
                              "batching": {"max_batch_size": args.max_batch, "wait_ms": args.wait_ms}, "online": {}}

    # All three targets stay up at once and are measured in alternation, round after round, so drift in
    # the machine's load (it is shared) hits each alike: TensorForge's server (a child process), then on
    # one Ray Serve proxy our deployment at "/" and the plain @serve.batch peer at "/plain". Each replica
    # reserves one Ray CPU (so both fit the 2-CPU cluster) and runs ORT with CPUS threads, as the server does.
    port = free_port()
    cmd = [sys.executable, "-m", "tensorforge", "serve", str(engine), "--http-port", str(port), "--grpc-port", "0",
           "--metrics-port", "0", "--max-batch-size", str(args.max_batch), "--max-queue-delay-ms", str(args.wait_ms),
           "--instances", "1", "--threads-per-instance", str(CPUS)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(f"127.0.0.1:{port}", name)
        ray.init(num_cpus=CPUS, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        addr = deploy(engine, http_port=free_port(), num_replicas=1, num_cpus=1, threads_per_instance=CPUS,
                      max_batch_size=args.max_batch, batch_wait_timeout_s=args.wait_ms / 1000)
        peer = serve.deployment(PlainServeBatch).options(
            num_replicas=1, ray_actor_options={"num_cpus": 1}, max_ongoing_requests=max(16, 4 * args.max_batch))
        serve.run(peer.bind(eng.model_bytes, name, spec.name, out_name, CPUS), name="plain", route_prefix="/plain")
        wait_ready(addr, name)
        targets = {"tf_server": f"127.0.0.1:{port}", "ray_tensorforge": addr, "ray_serve_batch": f"{addr}/plain"}
        runs: dict[str, list[dict[str, Any]]] = {k: [] for k in targets}
        for r in range(args.rounds):
            for label, where in targets.items():
                runs[label].append(measure(where, name, body, headers, args))
                log(f"round {r} {label} {runs[label][-1]}")
        online: dict[str, Any] = {}
        for label, rs in runs.items():
            rates = [x["samples_per_s"] for x in rs]
            online[label] = {"samples_per_s_median": float(np.median(rates)), "samples_per_s_rounds": rates,
                             "p50_ms_rounds": [x["p50_ms"] for x in rs], "p99_ms_rounds": [x["p99_ms"] for x in rs],
                             "errors": sum(x["errors"] for x in rs)}
        online["tf_server"]["mean_batch"] = server_mean_batch(targets["tf_server"], name)
        stats = serve.get_app_handle("tensorforge").describe.remote().result(timeout_s=30)["stats"]
        online["ray_tensorforge"]["mean_batch"] = round(stats["rows"] / max(stats["batches"], 1), 2)
        # one client, one request at a time: where batching cannot help, what does each add to a request?
        # (our batcher dispatches a lone request on an idle instance at once; @serve.batch waits out its window)
        single = argparse.Namespace(**{**vars(args), "concurrency": 1})
        for label, where in targets.items():
            one = measure(where, name, body, headers, single)
            online[label]["single_client"] = {k: one[k] for k in ("samples_per_s", "p50_ms", "p99_ms")}
            log(f"single client {label} {one}")

        def paired(a: str, b: str) -> dict[str, Any]:
            ratios = [x["samples_per_s"] / max(y["samples_per_s"], 1e-9) for x, y in zip(runs[a], runs[b])]
            return {"median": round(float(np.median(ratios)), 3), "rounds": [round(v, 3) for v in ratios]}

        online["ratios"] = {"ray_tensorforge_over_tf_server": paired("ray_tensorforge", "tf_server"),
                            "ray_tensorforge_over_ray_serve_batch": paired("ray_tensorforge", "ray_serve_batch")}
        result["online"] = online
        serve.delete("tensorforge")
        serve.delete("plain")
    finally:
        proc.terminate()
        proc.wait(30)

    # 3. offline: in-process Session.run vs Ray Data over an actor pool, same rows, same batch size
    xs = np.random.default_rng(1).standard_normal([args.rows, *shape[1:]]).astype(np.float32)
    session = eng.session(threads=CPUS, warn_host=False)
    session.run(xs[:args.batch])

    def in_process() -> tuple[float, np.ndarray]:
        t = time.perf_counter()
        y = np.concatenate([session.run(xs[i:i + args.batch])[out_name] for i in range(0, args.rows, args.batch)])
        return args.rows / (time.perf_counter() - t), y

    # in-process before and after each Ray Data job: each job is compared with the mean of its neighbours
    rate0, ref = in_process()
    offline_rows: dict[str, Any] = {"rows": args.rows, "batch_size": args.batch, "in_process_samples_per_s": [rate0]}
    for label, conc, cpus in (("ray_data_1x2cpu", 1, CPUS), ("ray_data_2x1cpu", 2, CPUS / 2)):
        r = offline(engine, xs, batch_size=args.batch, concurrency=conc, num_cpus=cpus, threads=int(cpus))
        rate1, _ = in_process()
        offline_rows["in_process_samples_per_s"].append(round(rate1, 2))
        err = float(np.max(np.abs(r.outputs[out_name] - ref)) / max(float(np.max(np.abs(ref))), 1e-12))
        offline_rows[label] = {**{k: v for k, v in r.summary().items() if k != "outputs"},
                               "over_in_process": round(r.samples_per_s / ((rate0 + rate1) / 2), 3),
                               "max_normalized_error": err}
        log(f"{label} {offline_rows[label]}")
        rate0 = rate1
    offline_rows["in_process_samples_per_s"][0] = round(offline_rows["in_process_samples_per_s"][0], 2)
    result["offline"] = offline_rows
    serve.shutdown()
    ray.shutdown()
    print(json.dumps(result, indent=2), file=json_out, flush=True)


if __name__ == "__main__":
    main()
