"""Model instances as threads or as processes: which serves more samples per second here? (not a test)

    python benchmarks/serve_instances.py [--model mobilenet_v2] [--instances 2] [--clients 8] [--seconds 3] [--rounds 2]

Drives the DynamicBatcher directly (no sockets, so only the instance mechanism differs)
with ``--clients`` closed-loop client threads sending batch-1 requests, max_batch_size 1
and no queue delay, for three set-ups on the same engine:

* ``threads``   — N Session instances in this process (ONNX Runtime releases the GIL);
* ``processes`` — N child-process instances, tensors through shared memory (no GIL shared);
* ``processes_pipe`` — the same, tensors written through the control pipe instead;
* ``one_instance`` — a single instance using all cores (the baseline).

Each instance gets cores ÷ N intra-op threads. Set-ups alternate in rounds; prints JSON
with samples/s and latency percentiles per set-up and the threads ÷ processes ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def run(batcher, x: dict, clients: int, seconds: float) -> tuple[float, list[float]]:
    stop = time.perf_counter() + seconds
    latencies: list[list[float]] = [[] for _ in range(clients)]

    def client(i: int) -> None:
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            batcher.submit(x).result()
            latencies[i].append(time.perf_counter() - t0)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [v for lst in latencies for v in lst]
    return len(flat) / (time.perf_counter() - start), flat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mobilenet_v2")
    ap.add_argument("--instances", type=int, default=2)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=3.0, help="seconds per set-up per round (default 3)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1, help="samples per request (default 1)")
    args = ap.parse_args()

    from tensorforge.core.specs import random_inputs
    from tensorforge.core.stats import percentile
    from tensorforge.core.streams import physical_cores, threads_per_worker
    from tensorforge.engine.build import build
    from tensorforge.engine.runtime import Engine
    from tensorforge.serve.batching import BatcherConfig, DynamicBatcher
    from tensorforge.serve.worker import ProcessInstance, ThreadInstance

    cores = physical_cores()
    per = threads_per_worker(args.instances, cores)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tfe"
        print(f"building {args.model}", file=sys.stderr)
        build(args.model, path)
        engine = Engine.load(path)
        x = random_inputs(engine.inputs, args.batch, seed=0)
        setups = {
            "threads": [ThreadInstance(engine, per) for _ in range(args.instances)],
            "processes": [ProcessInstance(path, per, transport="shm") for _ in range(args.instances)],
            "processes_pipe": [ProcessInstance(path, per, transport="pipe") for _ in range(args.instances)],
            "one_instance": [ThreadInstance(engine, cores)],
        }
        batchers = {name: DynamicBatcher([i.run for i in insts], BatcherConfig(
            max_batch_size=args.batch, max_queue_delay_ms=0, instances=len(insts), max_queue_size=4 * args.clients))
            for name, insts in setups.items()}
        results: dict[str, dict[str, list[float]]] = {k: {"sps": [], "lat": []} for k in setups}
        try:
            for name, b in batchers.items():            # warm-up
                run(b, x, args.clients, 0.5)
            for r in range(args.rounds):
                for name, b in batchers.items():
                    rps, lat = run(b, x, args.clients, args.seconds)
                    sps = rps * args.batch
                    results[name]["sps"].append(sps)
                    results[name]["lat"].extend(lat)
                    print(f"round {r + 1}: {name:12s} {sps:8.1f} samples/s", file=sys.stderr)
        finally:
            for name, b in batchers.items():
                b.close()
                for inst in setups[name]:
                    inst.close()
    out: dict[str, object] = {"model": args.model, "instances": args.instances, "threads_per_instance": per,
                              "clients": args.clients, "cores": cores}
    for name, r in results.items():
        lat = np.array(r["lat"]) * 1000
        out[name] = {"samples_per_s": round(float(np.median(r["sps"])), 1),
                     "per_round": [round(v, 1) for v in r["sps"]],
                     "p50_ms": round(float(percentile(lat, 0.50)), 3),
                     "p99_ms": round(float(percentile(lat, 0.99)), 3)}
    t, p = out["threads"]["samples_per_s"], out["processes"]["samples_per_s"]  # type: ignore[index]
    out["threads_over_processes"] = round(t / p, 3) if p else None
    pp = out["processes_pipe"]["samples_per_s"]  # type: ignore[index]
    out["shm_over_pipe"] = round(p / pp, 3) if pp else None
    out["batch"] = args.batch
    from tensorforge.core.host import cpu_model, isa_flags
    out["host"] = {"cpu": cpu_model(), "isa_flags": isa_flags()}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
