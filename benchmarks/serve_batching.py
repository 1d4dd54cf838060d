"""Deadline-aware dynamic batching vs none, on the real server (not a test): highest Poisson rate at p99 ≤ SLO.

    python benchmarks/serve_batching.py [--models mobilenet_v2] [--duration 2] [--steps 5]
           [--slo-ms 50] [--max-batch 8] [--delay-ms 10] [--threads 1] [--json out.json]

For each model (a tensorforge zoo name or ONNX file, built FP32 for ONNX Runtime) it prints
JSON with:

* ``offline``: the engine's own samples/s (``tensorforge.bench``, same threads, no server) at
  batch 1 and at the max batch, and the batch curve gain G = samples/s at max ÷ at batch 1 —
  the most any batcher can add on this machine (on a CPU, G is often near 1);
* ``off`` / ``on``: ``tensorforge serve`` in its own process, once with batching off
  (max_batch_size 1, no delay) and once deadline-aware (``slo_ms`` = the bound, max batch,
  queue-delay window), each searched by the open-loop Poisson client of serve_openloop.py
  (latency from each request's scheduled send time; rate ×1.5 until a probe fails, then
  bisect) for the highest rate with p99 ≤ the bound and no failed request (a shed request,
  503, counts as a failure). ``on`` also reports the server's own counters after the search
  (shed requests, batches dispatched early, the live batch curve), scraped from /metrics;
* ``ratio_on_over_off`` and each setting's ``rate_over_offline`` (max rate ÷ offline
  samples/s at that setting's batch size);
* the host: CPU model, cores, ISA flags, and the 1-minute load average before and after (other
  work on the same cores makes every number here noisy: read them against it).

The client, the server and the model share this machine's cores; the client's own lag is
reported with every probe, so a client-bound result shows as such. Defaults keep a run to a
few minutes per model.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
from _contenders import start_server
from serve_latency import binary_request, log, stop
from serve_openloop import find_max_rate


def start_repository_server(repo: Path, threads: int) -> tuple[subprocess.Popen[str], dict[str, int]]:
    """``tensorforge serve --repository repo`` on free ports; returns the process and its ports."""
    cmd = [sys.executable, "-m", "tensorforge", "serve", "--repository", str(repo), "--http-port", "0",
           "--grpc-port", "off", "--metrics-port", "0", "--max-queue-size", "4096",
           "--threads-per-instance", str(threads)]
    return start_server(cmd)


def scrape(port: int, model: str) -> dict[str, Any]:
    """The deadline counters and the live batch curve of ``model`` from the server's Prometheus text."""
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out: dict[str, Any] = {"batch_curve_ms": {}, "outcomes": {}}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.labels.get("model") != model:
                continue
            if s.name == "tensorforge_requests_total":
                out["outcomes"][s.labels["outcome"]] = int(s.value)
            elif s.name == "tensorforge_batches_dispatched_early_total":
                out["dispatched_early"] = int(s.value)
            elif s.name == "tensorforge_batch_compute_estimate_seconds":
                out["batch_curve_ms"][int(s.labels["rows"])] = round(s.value * 1000.0, 3)
    out["batch_curve_ms"] = dict(sorted(out["batch_curve_ms"].items()))
    out["shed"] = out["outcomes"].get("shed", 0)
    return out


def offline(engine: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The engine's own samples/s at batch 1 and at the max batch (tensorforge.bench, alternating rounds)."""
    from tensorforge.bench.runner import BenchOptions, bench

    result = bench(engine, BenchOptions(batches=(1, args.max_batch), threads=args.threads,
                                        duration_s=args.bench_seconds, rounds=args.bench_rounds))
    sps = {f"batch_{row.batch}": round(float(row.engine.throughput_sps), 1) for row in result.rows}
    gain = sps[f"batch_{args.max_batch}"] / sps["batch_1"] if sps["batch_1"] else None
    log(f"  offline samples/s {sps}, G = {gain}")
    return {"samples_per_s": sps, "threads": args.threads, "batch_curve_gain_G": round(gain, 3) if gain else None,
            "noise": {f"batch_{row.batch}": row.engine.noise for row in result.rows}}


def serve_and_search(engine: Path, name: str, config: dict[str, Any], start_rps: float,
                     args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    import tensorforge
    from tensorforge.core.specs import random_inputs

    repo = tmp / f"repo_{len(list(tmp.iterdir()))}"
    (repo / name / "1").mkdir(parents=True)
    shutil.copy(engine, repo / name / "1" / "model.tfe")
    (repo / name / "config.json").write_text(json.dumps(config))
    session = tensorforge.load(engine, threads=1, check_finite=False, warn_host=False)
    spec = session.inputs[0]
    body, headers = binary_request(spec.name, random_inputs(session.inputs, 1, seed=0)[spec.name])
    del session
    proc, ports = start_repository_server(repo, args.threads)
    try:
        url = f"http://127.0.0.1:{ports['http']}/v2/models/{name}/infer"
        search = find_max_rate(url, body, headers, start_rps=start_rps, bound_ms=args.slo_ms,
                               duration_s=args.duration, steps=args.steps, log=log)
        server = scrape(ports["metrics"], name) if "metrics" in ports else {}
    finally:
        stop(proc)
    return {"config": config, **search.to_dict(), "server": server}


def run_model(model: str, args: argparse.Namespace) -> dict[str, Any]:
    from tensorforge.engine.build import build

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        name = Path(model).stem
        engine = tmp / f"{name}.tfe"
        log(f"building {model} (fp32, onnxruntime)")
        build(model, engine)
        out: dict[str, Any] = {"offline": offline(engine, args)}
        sps = out["offline"]["samples_per_s"]
        start = max(5.0, 0.5 * sps["batch_1"])
        settings = {"off": {"max_batch_size": 1, "max_queue_delay_ms": 0},
                    "on": {"max_batch_size": args.max_batch, "max_queue_delay_ms": args.delay_ms,
                           "slo_ms": args.slo_ms}}
        for label in ("off", "on"):
            log(f"  batching {label}: {settings[label]}")
            out[label] = serve_and_search(engine, name, settings[label], start, args, tmp)
        on, off = out["on"]["max_rate_rps"], out["off"]["max_rate_rps"]
        out["ratio_on_over_off"] = round(on / off, 3) if off else None
        out["off"]["rate_over_offline"] = round(off / sps["batch_1"], 3) if sps["batch_1"] else None
        best = sps[f"batch_{args.max_batch}"]
        out["on"]["rate_over_offline"] = round(on / best, 3) if best else None
        if sps["batch_1"]:
            ideal = md1_max_rate(1.0 / sps["batch_1"], args.slo_ms / 1000.0)
            out["queueing_bound"] = {
                "what": "the highest Poisson rate an ideal one-at-a-time server (no overhead, service time = the "
                        "offline batch-1 time, M/D/1) keeps within the p99 bound: a batching gain G near 1 leaves "
                        "batching little to add, so this bounds every server on these cores",
                "max_rate_rps": round(ideal, 2), "over_offline": round(ideal * (1.0 / sps["batch_1"]), 3)}
        return out


def md1_max_rate(service_s: float, bound_s: float, n: int = 120_000, seed: int = 0) -> float:
    """Highest arrival rate at which a FIFO single server with fixed service time ``service_s`` keeps the
    99th percentile of time in system within ``bound_s`` (Lindley's recursion over seeded Poisson arrivals)."""
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1.0, n)

    def p99(rate: float) -> float:
        arrivals = np.cumsum(gaps / rate)
        done, sojourn = 0.0, np.empty(n)
        for i, t in enumerate(arrivals):
            done = max(t, done) + service_s
            sojourn[i] = done - t
        return float(np.percentile(sojourn[n // 100:], 99))

    if service_s > bound_s:
        return 0.0
    lo, hi = 0.0, 1.0 / service_s
    for _ in range(14):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if p99(mid) <= bound_s else (lo, mid)
    return lo


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="mobilenet_v2",
                    help="comma-separated zoo names or ONNX files (default mobilenet_v2)")
    ap.add_argument("--duration", type=float, default=2.0, help="measured seconds per rate probe (default 2)")
    ap.add_argument("--steps", type=int, default=5, help="probes per rate search (default 5)")
    ap.add_argument("--slo-ms", type=float, default=50.0,
                    help="latency objective: the server's slo_ms with batching on, and the p99 bound of the "
                         "search for both settings (default 50)")
    ap.add_argument("--max-batch", type=int, default=8, help="max batch size with batching on (default 8)")
    ap.add_argument("--delay-ms", type=float, default=10.0,
                    help="queue-delay window with batching on; the deadlines may send a batch sooner (default 10)")
    ap.add_argument("--threads", type=int, default=1,
                    help="ONNX Runtime threads, in the server's instance and offline (default 1)")
    ap.add_argument("--bench-seconds", type=float, default=1.0, help="offline bench: seconds per round (default 1)")
    ap.add_argument("--bench-rounds", type=int, default=3, help="offline bench: rounds (default 3)")
    ap.add_argument("--json", help="also write the JSON here, e.g. benchmarks/results/serve_batching.json")
    args = ap.parse_args()

    from tensorforge.core.host import host_fingerprint

    result: dict[str, Any] = {"slo_ms": args.slo_ms, "max_batch": args.max_batch, "delay_ms": args.delay_ms,
                              "threads": args.threads, "probe_seconds": args.duration,
                              "load_avg_1m_before": round(os.getloadavg()[0], 2), "models": {}}
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        result["models"][model] = run_model(model, args)
    result["load_avg_1m_after"] = round(os.getloadavg()[0], 2)   # other work on the cores: read noise from it
    try:
        host = host_fingerprint()
        result["host"] = {k: host.get(k) for k in ("cpu_model", "logical_cores", "isa_flags")}
    except Exception:  # the fingerprint is context, never a reason to lose the numbers
        pass
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
