"""Per-call overhead of tensorforge's Session over a bare ``InferenceSession.run``, same run, same inputs.

Three contenders on one model at one batch size, interleaved in rounds (ABCABC…) so
machine drift hits all alike:
  * ``inner``   — the very InferenceSession our Session wraps, called directly
                  (isolates the wrapper: validation, dict building);
  * ``session`` — ``tensorforge.Session.run`` (what users call);
  * ``bare_ort``— a fresh default InferenceSession on the original, unoptimized model
                  (what users would write without TensorForge).
Prints JSON: per-contender median / p90 latency in µs, and the overhead of ``session``
over ``inner`` in % (the issue's target: ≤ 5 % at batch 1 on mobilenet_v2).

    python benchmarks/session_overhead.py [--model mobilenet_v2] [--batch 1] [--rounds 10] [--seconds 1]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mobilenet_v2")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=1.0, help="seconds per contender per round")
    args = ap.parse_args()

    import onnxruntime as ort

    from tensorforge.core.specs import random_inputs
    from tensorforge.engine.build import build
    from tensorforge.engine.source import resolve_source

    original = resolve_source(args.model).onnx_model()
    engine, _ = build(original)
    session = engine.session(warn_host=False)
    inner_sess = session._backend_session._session          # the wrapped InferenceSession
    out_names = [o.name for o in inner_sess.get_outputs()]
    bare = ort.InferenceSession(original.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = random_inputs(engine.inputs, args.batch, seed=0)
    x = feeds[engine.inputs[0].name] if len(feeds) == 1 else feeds

    contenders = {
        "inner": lambda: inner_sess.run(out_names, feeds),
        "session": lambda: session.run(x),
        "bare_ort": lambda: bare.run(None, feeds),
    }
    samples: dict[str, list[int]] = {k: [] for k in contenders}
    for fn in contenders.values():          # warm-up
        for _ in range(20):
            fn()
    for _ in range(args.rounds):
        for name, fn in contenders.items():
            deadline = time.perf_counter_ns() + int(args.seconds * 1e9)
            s = samples[name]
            while time.perf_counter_ns() < deadline:
                t = time.perf_counter_ns()
                fn()
                s.append(time.perf_counter_ns() - t)

    def summary(ns: list[int]) -> dict[str, float]:
        a = np.asarray(ns) / 1e3
        per_round = np.array_split(a, args.rounds)
        meds = [float(np.median(r)) for r in per_round]
        return {"n": len(a), "median_us": float(np.median(a)), "p90_us": float(np.percentile(a, 90)),
                "round_median_spread_pct": 100 * (max(meds) - min(meds)) / float(np.median(a))}

    res = {k: summary(v) for k, v in samples.items()}
    out = {
        "benchmark": "session_overhead", "model": args.model, "batch": args.batch, "rounds": args.rounds,
        "onnxruntime": ort.__version__, "results": res,
        "session_over_inner_pct": 100 * (res["session"]["median_us"] / res["inner"]["median_us"] - 1),
        "session_over_bare_ort_pct": 100 * (res["session"]["median_us"] / res["bare_ort"]["median_us"] - 1),
        "target_pct": 5.0,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
