"""Serving benchmark on loopback (not a test): added latency, batching on vs off, and a peer framework.

    python benchmarks/serve_latency.py [--model mobilenet_v2] [--parts a,b,c] [--json out.json]
           [--rounds 5 --seconds 1]                      (a) per contender per round
           [--http-impl uvicorn|wire] [--also-http-impl wire|uvicorn]   (a) our HTTP server(s)
           [--probe-seconds 3 --steps 7 --p99-ms 50]    (b), (c) each probe of the rate search

Prints JSON with:

(a) ``added_latency``: batch 1, one client, closed loop. In-process ``Session.run`` vs the
    server (a separate ``tensorforge serve`` process, max_queue_delay 0) through the stock
    tritonclient over HTTP (binary tensors) and gRPC, and through a minimal keep-alive HTTP
    client (isolates the client library's own cost). Contenders alternate in rounds so drift
    hits all alike; added = p50(server path) − p50(in-process). Target ≤ 1 ms.
    ``floor_p50_ms``: the same clients against a do-nothing server (serve_floor.py) that
    answers with the real server's captured response bytes after holding them as long as
    the model computes (the client idles as in the real case), minus that hold — what
    moving these bytes costs with that client over loopback, which no server logic can
    remove; ``added_over_floor_p50_ms`` is the server's own share.
    ``empty_request_rtt_p50_ms``: a bare ``GET /v2/health/live`` round trip (raw client) to
    our server and to the do-nothing one.
(b) ``batching``: open-loop Poisson arrivals (latency from each request's scheduled send
    time), the highest rate whose p99 ≤ 50 ms, with dynamic batching on (max batch 8,
    queue delay 5 ms) and off (max batch 1); ratio on ÷ off (target ≥ 2×). On a CPU a
    batch of 8 costs about 8 batches of 1 (mobilenet_v2: ~285 vs ~300 samples/s on 2
    cores), so batching buys little throughput there and its wait counts against the p99
    bound; try --max-batch 2/4 and --delay-ms to see the trade-off.
(c) ``peer``: the same search against LitServe with its batching (same batch/timeout, the
    same engine on the same ONNX Runtime settings); ratio ours ÷ LitServe (target ≥ 1.3×).

Everything — servers, client, model — shares this machine's cores; the client's own lag is
reported with each probe so a client-bound result shows. Defaults keep a run near a minute.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from _contenders import start_server as launch_server
from serve_openloop import find_max_rate

HERE = Path(__file__).resolve().parent
HTTP_IMPL = "uvicorn"
EVENT_LOOP = "auto"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def start_server(engine: Path, *extra: str, impl: str | None = None) -> tuple[subprocess.Popen[str], dict[str, int]]:
    cmd = [sys.executable, "-m", "tensorforge", "serve", str(engine), "--http-port", "0", "--grpc-port", "0",
           "--metrics-port", "off", "--max-queue-size", "4096", "--http-impl", impl or HTTP_IMPL,
           "--event-loop", EVENT_LOOP, *extra]
    return launch_server(cmd)


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(samples_ns: list[int]) -> dict[str, float]:
    from tensorforge.core.stats import percentile

    a = np.array(samples_ns) / 1e6
    return {"n": int(a.size), "p50_ms": round(float(percentile(a, 0.50)), 4),
            "p90_ms": round(float(percentile(a, 0.90)), 4), "p99_ms": round(float(percentile(a, 0.99)), 4)}


def binary_request(name: str, x: np.ndarray) -> tuple[bytes, dict[str, str]]:
    header = json.dumps({"inputs": [{"name": name, "shape": list(x.shape), "datatype": "FP32",
                                     "parameters": {"binary_data_size": x.nbytes}}],
                         "parameters": {"binary_data_output": True}}).encode()
    return header + x.tobytes(), {"Inference-Header-Content-Length": str(len(header)),
                                  "Content-Type": "application/octet-stream"}


def start_floor(http_answer: bytes, grpc_answer: bytes, hold_ms: float,
                tmp: Path) -> tuple[subprocess.Popen[str], dict[str, int]]:
    (tmp / "http.bin").write_bytes(http_answer)
    (tmp / "grpc.bin").write_bytes(grpc_answer)
    cmd = [sys.executable, str(HERE / "serve_floor.py"), str(tmp / "http.bin"), str(tmp / "grpc.bin"), str(hold_ms)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    ports = {}
    for _ in range(2):
        key, port = proc.stdout.readline().split()
        ports[key] = int(port)
    return proc, ports


def part_a(engine: Path, args: argparse.Namespace) -> dict[str, object]:
    import tritonclient.grpc as tg
    import tritonclient.http as th

    import tensorforge
    from tensorforge.core.reference import compare
    from tensorforge.core.specs import random_inputs
    from tensorforge.core.tolerances import tolerance

    session = tensorforge.load(engine, threads=args.threads, check_finite=False, warn_host=False)
    spec = session.inputs[0]
    x = random_inputs(session.inputs, 1, seed=0)[spec.name]
    model = engine.stem
    proc, ports = start_server(engine, "--max-queue-delay-ms", "0", "--max-batch-size", "8",
                               "--threads-per-instance", str(args.threads))
    floor_proc, holds = None, [0.0, 0.0]
    alt = args.also_http_impl if args.also_http_impl not in (None, args.http_impl) else None
    alt_proc, alt_ports = (start_server(engine, "--max-queue-delay-ms", "0", "--max-batch-size", "8",
                                        "--threads-per-instance", str(args.threads), impl=alt)
                           if alt else (None, {}))
    try:
        hin = th.InferInput(spec.name, list(x.shape), "FP32")
        hin.set_data_from_numpy(x, binary_data=True)
        gin = tg.InferInput(spec.name, list(x.shape), "FP32")
        gin.set_data_from_numpy(x)
        body, headers = binary_request(spec.name, x)
        raw = http.client.HTTPConnection("127.0.0.1", ports["http"])
        raw.request("POST", f"/v2/models/{model}/infer", body=body, headers=headers)
        response = raw.getresponse()
        answer = response.read()
        http_answer = (b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: %d\r\n"
                       b"inference-header-content-length: %s\r\n\r\n"
                       % (len(answer), response.getheader("Inference-Header-Content-Length").encode())) + answer
        gc = tg.InferenceServerClient(f"127.0.0.1:{ports['grpc']}")
        grpc_answer = gc.infer(model, [gin]).get_response().SerializeToString()
        compute = []
        for _ in range(30):
            t0 = time.perf_counter()
            session.run(x)
            compute.append(time.perf_counter() - t0)
        hold_ms = float(np.median(compute)) * 1000.0      # the do-nothing server holds answers this long
        floor_proc, floor_ports = start_floor(http_answer, grpc_answer, hold_ms, Path(tempfile.mkdtemp()))

        def clients(http_port: int, grpc_port: int) -> dict[str, Callable[[], object]]:
            hc = th.InferenceServerClient(f"127.0.0.1:{http_port}")
            gc = tg.InferenceServerClient(f"127.0.0.1:{grpc_port}")
            conn = http.client.HTTPConnection("127.0.0.1", http_port)

            def raw_call(method: str = "POST", path: str = f"/v2/models/{model}/infer") -> None:
                if method == "POST":
                    conn.request(method, path, body=body, headers=headers)
                else:
                    conn.request(method, path)
                response = conn.getresponse()
                response.read()
                assert response.status == 200

            return {"http_tritonclient": lambda: hc.infer(model, [hin]),
                    "grpc_tritonclient": lambda: gc.infer(model, [gin]),
                    "http_raw_keepalive": raw_call,
                    "http_raw_empty": lambda: raw_call("GET", "/v2/health/live")}

        contenders: dict[str, Callable[[], object]] = {"in_process": lambda: session.run(x)}
        contenders.update(clients(ports["http"], ports["grpc"]))
        contenders.update({f"floor_{k}": v for k, v in clients(floor_ports["http"], floor_ports["grpc"]).items()})
        if alt:                                   # the other HTTP server, same rounds: its HTTP paths only
            contenders.update({f"{alt}_{k}": v for k, v in clients(alt_ports["http"], alt_ports["grpc"]).items()
                               if k.startswith("http_")})
        expected = session.run(x)[session.outputs[0].name]
        got = th.InferenceServerClient(f"127.0.0.1:{ports['http']}").infer(model, [hin]).as_numpy(
            session.outputs[0].name)
        check = compare([got], [expected])        # batching changes summation order: the across-kernels bound
        assert check.within(tolerance("fp32", across_kernels=True)), check.describe()
        samples: dict[str, list[int]] = {k: [] for k in contenders}
        for fn in contenders.values():
            for _ in range(20):
                fn()
        for r in range(args.rounds):
            for name, fn in contenders.items():
                end = time.perf_counter_ns() + int(args.seconds * 1e9)
                s = samples[name]
                while time.perf_counter_ns() < end:
                    t0 = time.perf_counter_ns()
                    fn()
                    s.append(time.perf_counter_ns() - t0)
            log(f"  (a) round {r + 1}/{args.rounds}")
    finally:
        stop(proc)
        if alt_proc is not None:
            stop(alt_proc)
        if floor_proc is not None:
            holds = [float(v) for v in floor_proc.communicate(timeout=30)[0].split()[1:3]]
    stats = {k: pct(v) for k, v in samples.items()}
    base = stats["in_process"]["p50_ms"]
    paths = ("http_tritonclient", "grpc_tritonclient", "http_raw_keepalive")
    added = {k: round(stats[k]["p50_ms"] - base, 4) for k in paths}
    hold = {"http_tritonclient": holds[0], "grpc_tritonclient": holds[1], "http_raw_keepalive": holds[0]}
    floor = {k: round(stats[f"floor_{k}"]["p50_ms"] - hold[k], 4) for k in paths}
    if alt:
        added.update({f"{alt}_{k}": round(stats[f"{alt}_{k}"]["p50_ms"] - base, 4)
                      for k in ("http_tritonclient", "http_raw_keepalive")})
    return {"http_impl": args.http_impl, "batch": 1, "clients": 1, "latency": stats, "added_p50_ms": added,
            "target_added_p50_ms": 1.0,
            "meets_target": {k: v <= 1.0 for k, v in added.items()},
            "floor_p50_ms": floor, "added_over_floor_p50_ms": {k: round(added[k] - floor[k], 4) for k in paths},
            "empty_request_rtt_p50_ms": {"tensorforge": stats["http_raw_empty"]["p50_ms"],
                                         "do_nothing_server": stats["floor_http_raw_empty"]["p50_ms"]},
            "floor_hold_p50_ms": {"http": holds[0], "grpc": holds[1]},
            "floor_note": "floor = p50 round trip of the same client and request to a server that answers with "
                          "canned bytes after holding them about as long as the model computes, minus that hold "
                          "(benchmarks/serve_floor.py): client library + loopback + the leanest asyncio server, "
                          "with the client idle meanwhile as in the real case; added − floor is what our server "
                          "itself adds"}


def part_b(engine: Path, args: argparse.Namespace, start_rps: float) -> dict[str, object]:
    import tensorforge
    from tensorforge.core.specs import random_inputs

    session = tensorforge.load(engine, threads=args.load_threads, check_finite=False, warn_host=False)
    spec = session.inputs[0]
    x = random_inputs(session.inputs, 1, seed=0)[spec.name]
    body, headers = binary_request(spec.name, x)
    out: dict[str, object] = {"bound": capacity_bound(session, args)}
    settings = {"on": ["--max-batch-size", str(args.max_batch), "--max-queue-delay-ms", str(args.delay_ms)],
                "off": ["--max-batch-size", "1", "--max-queue-delay-ms", "0"]}
    for label, extra in settings.items():
        log(f"  (b) batching {label}")
        proc, ports = start_server(engine, *extra, "--threads-per-instance", str(args.load_threads),
                                   "--instances", str(args.instances))
        try:
            url = f"http://127.0.0.1:{ports['http']}/v2/models/{engine.stem}/infer"
            search = find_max_rate(url, body, headers, start_rps=start_rps, bound_ms=args.p99_ms,
                                   duration_s=args.probe_seconds, steps=args.steps, log=log)
        finally:
            stop(proc)
        out[label] = {"server_args": extra, **search.to_dict()}
    on, off = out["on"]["max_rate_rps"], out["off"]["max_rate_rps"]  # type: ignore[index]
    out["ratio_on_over_off"] = round(on / off, 3) if off else None
    out["target_ratio"] = 2.0
    return out


def capacity_bound(session: Any, args: argparse.Namespace, rounds: int = 3, seconds: float = 1.0) -> dict[str, object]:
    """In-process samples/s at batch 1 and at the max batch (alternating rounds): what batching can add here."""
    from tensorforge.core.specs import random_inputs

    batches = {1: random_inputs(session.inputs, 1, seed=0), args.max_batch: random_inputs(session.inputs,
                                                                                          args.max_batch, seed=0)}
    done = dict.fromkeys(batches, 0.0)
    spent = dict.fromkeys(batches, 0.0)
    for feeds in batches.values():
        session.run(feeds)
    for _ in range(rounds):
        for n, feeds in batches.items():
            start = time.perf_counter()
            while time.perf_counter() - start < seconds:
                session.run(feeds)
                done[n] += n
            spent[n] += time.perf_counter() - start
    sps = {f"batch_{n}": round(done[n] / spent[n], 1) for n in batches}
    ratio = done[args.max_batch] / spent[args.max_batch] / (done[1] / spent[1])
    log(f"  (b) in-process capacity: {sps}")
    return {"in_process_throughput_sps": sps, "threads": args.load_threads,
            "capacity_ratio_max_batch_over_1": round(ratio, 3),
            "note": "batching on can beat off by about this capacity ratio, and by how much closer to its capacity "
                    "each setting may run within the p99 bound; a ratio_on_over_off far beyond it would mean "
                    "batching off was held back by something else"}


def part_c(engine: Path, args: argparse.Namespace, ours: dict[str, object], start_rps: float) -> dict[str, object]:
    import base64

    import tensorforge
    from tensorforge.core.specs import random_inputs

    try:
        import litserve  # noqa: F401
    except ImportError:
        return {"skipped": "litserve is not installed (pip install litserve)"}
    session = tensorforge.load(engine, threads=1)
    x = random_inputs(session.inputs, 1, seed=0)[session.inputs[0].name]
    body = json.dumps({"input": base64.b64encode(x.tobytes()).decode()}).encode()
    port = free_port()
    cmd = [sys.executable, str(HERE / "serve_litserve_app.py"), str(engine), str(port), "--max-batch-size",
           str(args.max_batch), "--batch-timeout-ms", str(args.delay_ms), "--threads", str(args.load_threads),
           "--workers", str(args.instances)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("LitServe did not start")
            time.sleep(0.5)
        log("  (c) LitServe, batching on")
        search = find_max_rate(f"http://127.0.0.1:{port}/predict", body, {"Content-Type": "application/json"},
                               start_rps=start_rps, bound_ms=args.p99_ms, duration_s=args.probe_seconds,
                               steps=args.steps, log=log)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    theirs = search.to_dict()
    ours_rate = ours["max_rate_rps"]  # type: ignore[index]
    return {"peer": f"litserve {litserve_version()}", "settings": {"max_batch_size": args.max_batch,
            "batch_timeout_ms": args.delay_ms, "workers_per_device": args.instances, "threads": args.load_threads,
            "payload": "JSON with base64 float32 (LitServe parses JSON)"},
            "litserve": theirs, "tensorforge_max_rate_rps": ours_rate,
            "ratio_ours_over_peer": round(ours_rate / theirs["max_rate_rps"], 3) if theirs["max_rate_rps"] else None,
            "target_ratio": 1.3}


def litserve_version() -> str:
    from importlib.metadata import version

    return version("litserve")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mobilenet_v2", help="zoo name or ONNX file (default mobilenet_v2)")
    ap.add_argument("--parts", default="a,b,c", help="which parts to run (default a,b,c)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="(a) ORT intra-op threads, in-process and in the server (default: cores)")
    ap.add_argument("--load-threads", type=int, default=1,
                    help="(b,c) ORT intra-op threads per instance, ours and LitServe's (default 1: under load, "
                         "a multi-threaded ORT pool fights the client and the server's own threads for the cores)")
    ap.add_argument("--rounds", type=int, default=3, help="(a) rounds (default 3)")
    ap.add_argument("--seconds", type=float, default=1.0, help="(a) seconds per contender per round (default 1)")
    ap.add_argument("--probe-seconds", type=float, default=2.0, help="(b,c) measured seconds per probe (default 2)")
    ap.add_argument("--steps", type=int, default=5, help="(b,c) probes per rate search (default 5)")
    ap.add_argument("--p99-ms", type=float, default=50.0, help="(b,c) latency bound at p99 (default 50)")
    ap.add_argument("--instances", type=int, default=1,
                    help="(b,c) model instances (ours) / workers per device (LitServe) (default 1)")
    ap.add_argument("--max-batch", type=int, default=8, help="(b,c) max batch size with batching on (default 8)")
    ap.add_argument("--delay-ms", type=float, default=5.0, help="(b,c) queue delay with batching on (default 5)")
    ap.add_argument("--http-impl", choices=("uvicorn", "wire"), default="uvicorn",
                    help="HTTP server of ours: uvicorn (the default) or wire (its own protocol on httptools)")
    ap.add_argument("--also-http-impl", choices=("uvicorn", "wire"),
                    help="(a) also measure this HTTP server in the same rounds (its HTTP paths, named <impl>_...)")
    ap.add_argument("--event-loop", choices=("auto", "uvloop", "asyncio"), default="auto",
                    help="event loop of our server (default auto: uvloop when installed)")
    ap.add_argument("--json", help="also write the JSON here")
    args = ap.parse_args()
    global HTTP_IMPL, EVENT_LOOP
    HTTP_IMPL, EVENT_LOOP = args.http_impl, args.event_loop
    parts = set(args.parts.split(","))

    from tensorforge.core.host import host_fingerprint
    from tensorforge.engine.build import build

    result: dict[str, object] = {"model": args.model, "threads": args.threads, "load_threads": args.load_threads,
                                 "instances": args.instances,
                                 "http_impl": args.http_impl, "event_loop": args.event_loop}
    with tempfile.TemporaryDirectory() as tmp:
        engine = Path(tmp) / f"{Path(args.model).stem}.tfe"
        log(f"building {args.model}")
        build(args.model, engine)
        start_rps = 100.0
        if "a" in parts:
            result["added_latency"] = part_a(engine, args)
            p50 = result["added_latency"]["latency"]["in_process"]["p50_ms"]  # type: ignore[index]
            start_rps = 0.5 * 1000.0 / p50
        if "b" in parts or "c" in parts:
            result["batching"] = part_b(engine, args, start_rps) if "b" in parts else None
        if "c" in parts:
            ours = result["batching"]["on"] if result.get("batching") else {"max_rate_rps": 0.0}  # type: ignore[index]
            result["peer"] = part_c(engine, args, ours, start_rps)
    try:
        result["host"] = {k: v for k, v in host_fingerprint().items() if k in ("cpu_model", "logical_cores")}
    except Exception:  # the fingerprint is context, never a reason to lose the numbers
        pass
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
