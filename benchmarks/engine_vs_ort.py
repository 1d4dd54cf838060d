"""TensorForge engine vs bare ONNX Runtime, same run, same inputs: the issue-2 acceptance numbers.

For each model, runs ``tensorforge.bench(model, baseline=True)`` (engine and bare ORT
alternate in rounds) and prints one JSON document with both throughputs, the ratio, the
noise of each, and the verdict (faster / same / slower beyond the noise).

    python benchmarks/engine_vs_ort.py [--models resnet50,mobilenet_v2] [--batch 1,8] [--duration 6]
"""

from __future__ import annotations

import argparse
import json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="resnet50,mobilenet_v2")
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--duration", type=float, default=6.0)
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args()

    from tensorforge.bench.runner import BenchOptions, batches_from_text, bench

    report = {"benchmark": "engine_vs_ort", "models": {}}
    for model in args.models.split(","):
        result = bench(model, BenchOptions(batches=batches_from_text(args.batch), duration_s=args.duration,
                                           warmup_s=1.0, rounds=args.rounds, baseline=True))
        report["host"] = result.host
        report["libraries"] = result.libraries
        report["models"][model] = [{
            "batch": r.batch,
            "engine_sps": round(r.engine.throughput_sps, 2),
            "ort_sps": round(r.baseline.throughput_sps, 2) if r.baseline else None,
            "ratio": round(r.speedup_vs_baseline, 4) if r.speedup_vs_baseline else None,
            "engine_p50_ms": round(r.engine.latency["p50_ms"], 3),
            "ort_p50_ms": round(r.baseline.latency["p50_ms"], 3) if r.baseline else None,
            "engine_noise_pct": round(r.engine.noise["spread_pct"], 2),
            "ort_noise_pct": round(r.baseline.noise["spread_pct"], 2) if r.baseline else None,
            "verdict": r.verdict_vs_baseline,
        } for r in result.rows]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
