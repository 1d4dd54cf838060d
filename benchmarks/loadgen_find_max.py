"""Server scenario with find-max on a real model: in-process (behind the batcher) vs via our HTTP server.

Both sides use the same engine, the same batcher settings and the same intra-op
threads; the server runs in a child process (``InferenceServer`` on a free loopback
port), so the client's Python and the server's do not share a GIL — but they do share
this machine's cores, which is part of what "via HTTP" costs here. For each side:
the saturation throughput measured up front, the highest VALID offered load (the
chosen percentile within the latency bound, MLPerf early stopping met, no errors) and
every probe. Prints JSON.

    python benchmarks/loadgen_find_max.py                 (mobilenet_v2, p99 ≤ 20 ms, 5 s probes; a few minutes)
    python benchmarks/loadgen_find_max.py --smoke         (p90, 1 s probes, coarse; under a minute)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _say(side: str):  # type: ignore[no-untyped-def]
    """Progress on stderr: each probe takes 5–25 s, a whole run several minutes."""
    t0 = time.perf_counter()
    return lambda message: print(f"[{time.perf_counter() - t0:6.1f} s] {side}: {message}", file=sys.stderr,
                                 flush=True)


_SERVER = """
import sys
from tensorforge.serve import BatcherConfig, InferenceServer, ModelConfig, ServerConfig
mbs, delay = int(sys.argv[2]), float(sys.argv[3])
srv = InferenceServer([sys.argv[1]], config=ServerConfig(http_port=0, grpc_port=None, metrics_port=None),
                      model_config=ModelConfig(batcher=BatcherConfig(max_batch_size=mbs, max_queue_delay_ms=delay)))
srv.start()
print(srv.http_port, flush=True)
sys.stdin.read()
srv.stop(drain=True, timeout_s=10)
"""


def _summary(found, seconds: float) -> dict:  # type: ignore[no-untyped-def, type-arg]
    d = found.to_dict()
    best = d.pop("best")
    d["wall_s"] = seconds
    if best:
        d["best_run"] = {k: best[k] for k in ("throughput_qps", "percentile_latency_ms", "latency", "lateness",
                                                "query_count", "verdict")}
    return d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mobilenet_v2")
    ap.add_argument("--latency-bound", type=float, default=20.0, help="ms (default 20)")
    ap.add_argument("--percentile", type=float, default=99.0, help="%% (default 99)")
    ap.add_argument("--min-duration", type=float, default=5.0, help="seconds per probe (default 5)")
    ap.add_argument("--max-batch-size", type=int, default=8)
    ap.add_argument("--max-queue-delay-ms", type=float, default=2.0)
    ap.add_argument("--tolerance", type=float, default=0.05)
    ap.add_argument("--max-probes", type=int, default=10)
    ap.add_argument("--smoke", action="store_true", help="p90, 1 s probes, 4 probes, 25 %% tolerance")
    args = ap.parse_args()
    if args.smoke:
        args.percentile, args.min_duration, args.max_probes, args.tolerance = 90.0, 1.0, 4, 0.25

    from tensorforge.engine.build import build
    from tensorforge.engine.runtime import Engine
    from tensorforge.loadgen.findmax import find_max_qps
    from tensorforge.loadgen.remote import HttpTarget
    from tensorforge.loadgen.scenarios import ScenarioSettings
    from tensorforge.loadgen.targets import BatcherTarget
    from tensorforge.serve.batching import BatcherConfig

    settings = ScenarioSettings(scenario="server", target_qps=1.0, latency_bound_ms=args.latency_bound,
                                percentile=args.percentile / 100.0, min_duration_s=args.min_duration, warmup_s=0.5)
    config = BatcherConfig(max_batch_size=args.max_batch_size, max_queue_delay_ms=args.max_queue_delay_ms)
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{args.model}.tfe"
        build(args.model, path)

        target = BatcherTarget.from_engine(Engine.load(path), config)
        t0 = time.perf_counter()
        try:
            found = find_max_qps(target, settings, tolerance=args.tolerance, max_probes=args.max_probes,
                                 progress=_say("in-process"))
        finally:
            target.close()
        results["in_process"] = _summary(found, time.perf_counter() - t0)

        env = dict(os.environ, PYTHONUNBUFFERED="1")
        proc = subprocess.Popen([sys.executable, "-c", _SERVER, str(path), str(args.max_batch_size),
                                 str(args.max_queue_delay_ms)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                env=env, text=True)
        try:
            assert proc.stdout is not None and proc.stdin is not None
            port = int(proc.stdout.readline().strip())
            remote = HttpTarget(f"http://127.0.0.1:{port}", path.stem)
            t0 = time.perf_counter()
            try:
                found = find_max_qps(remote, settings, tolerance=args.tolerance, max_probes=args.max_probes,
                                     progress=_say("http"))
            finally:
                remote.close()
            results["http"] = _summary(found, time.perf_counter() - t0)
        finally:
            if proc.stdin:
                proc.stdin.close()
            proc.wait(timeout=60)

    a = results["in_process"]["max_valid_qps"]  # type: ignore[index]
    b = results["http"]["max_valid_qps"]  # type: ignore[index]
    out = {"benchmark": "loadgen_find_max", "model": args.model, "smoke": args.smoke, "cpus": os.cpu_count(),
           "settings": {"latency_bound_ms": args.latency_bound, "percentile": args.percentile,
                        "min_duration_s": args.min_duration, "tolerance": args.tolerance,
                        "max_probes": args.max_probes, "batcher": config.to_dict()},
           "in_process": results["in_process"], "http": results["http"],
           "http_over_in_process": (b / a) if a and b else None}
    print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
