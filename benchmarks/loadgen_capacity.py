"""The load generator's own limits: how many queries/s it issues and times, and how punctual its sends are.

Against the no-op target (each request completes inside ``issue``), so only the
generator is measured:

* ``closed_loop`` — single-stream queries/s (issue, wait for the completion, repeat);
* ``open_loop`` — the Server scenario at rising offered loads (Poisson): achieved
  queries/s and how late sends left (p50/p99/max µs, share later than 500 µs); the
  self-capacity is the highest offer still served at ≥ 95 % with p99 lateness ≤ 1 ms
  (the issue's target: ≥ 20,000 queries/s on 2 cores);
* ``timestamp_accuracy`` — send lateness at moderate rates, our sleep-then-spin
  :class:`Pacer` against the peer a naive generator would use, a plain ``time.sleep``
  until the due time, in the same run (interleaved);
* ``batcher_noop`` — the in-process path's ceiling: the same open loop through the
  server's ``DynamicBatcher`` in front of an executor that returns at once.

Prints JSON. ``--smoke`` keeps it under ~20 s; the default run takes about a minute.

    python benchmarks/loadgen_capacity.py [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np


def _lateness(sched: np.ndarray, sent: np.ndarray) -> dict[str, float]:
    from tensorforge.core.stats import percentile

    late = np.maximum(sent - sched, 0) / 1e3
    return {"p50_us": float(percentile(late, 0.50)), "p99_us": float(percentile(late, 0.99)),
            "p999_us": float(percentile(late, 0.999)), "max_us": float(late.max()),
            "late_over_500us_pct": float(np.mean(late > 500) * 100)}


def closed_loop(seconds: float) -> dict[str, float]:
    from tensorforge.loadgen.scenarios import ScenarioSettings, run_scenario
    from tensorforge.loadgen.targets import NoopTarget

    rec = run_scenario(NoopTarget(), ScenarioSettings(scenario="single-stream", min_duration_s=seconds,
                                                      min_query_count=1, warmup_s=0))
    span = (rec.done_ns[-1] - rec.start_ns) / 1e9
    return {"queries": int(rec.done_ns.size), "queries_per_s": rec.done_ns.size / span}


def open_loop(target, qps: float, seconds: float) -> dict[str, float]:  # type: ignore[no-untyped-def]
    from tensorforge.loadgen.scenarios import ScenarioSettings, run_scenario

    rec = run_scenario(target, ScenarioSettings(scenario="server", target_qps=qps, latency_bound_ms=1000.0,
                                                percentile=0.9, min_duration_s=seconds, min_query_count=1,
                                                warmup_s=0))
    n = rec.done_ns.size
    span = (max(int(rec.done_ns.max()), int(rec.sent_ns[-1])) - rec.start_ns) / 1e9
    return {"offered_qps": qps, "queries": int(n), "achieved_qps": n / span, "errors": len(rec.errors),
            "served_fraction": (n / span) / qps, **_lateness(rec.scheduled_ns, rec.sent_ns)}


def self_capacity(target, loads: list[float], seconds: float) -> tuple[list[dict[str, float]], float | None]:  # type: ignore[no-untyped-def]
    rows, best = [], None
    for q in loads:
        row = open_loop(target, q, seconds)
        rows.append(row)
        if row["served_fraction"] >= 0.95 and row["p99_us"] <= 1000 and row["errors"] == 0:
            best = q
    return rows, best


def timestamp_accuracy(rates: list[float], seconds: float, rounds: int) -> dict[str, dict[str, dict[str, float]]]:
    """Pacer vs plain time.sleep on identical Poisson schedules, alternating per round."""
    from tensorforge.loadgen.arrivals import arrival_schedule
    from tensorforge.loadgen.pacing import Pacer

    def plain_wait(due: int) -> int:
        delay = due - time.perf_counter_ns()
        if delay > 0:
            time.sleep(delay / 1e9)
        return time.perf_counter_ns()

    out: dict[str, dict[str, dict[str, float]]] = {}
    for rate in rates:
        offsets = arrival_schedule("poisson", rate, min_count=1, min_duration_s=seconds / rounds, seed=5).offsets_ns
        lat: dict[str, list[np.ndarray]] = {"pacer": [], "plain_sleep": []}
        for _ in range(rounds):
            for name in lat:
                start = time.perf_counter_ns() + 2_000_000
                sched = offsets + start
                sent = np.empty_like(sched)
                if name == "pacer":
                    with Pacer() as pacer:
                        for i, due in enumerate(sched.tolist()):
                            sent[i] = pacer.wait_until(due)
                else:
                    for i, due in enumerate(sched.tolist()):
                        sent[i] = plain_wait(due)
                lat[name].append(sent - sched)
        out[f"{rate:g}_qps"] = {name: _lateness(np.zeros(1, np.int64), np.concatenate(v))
                                for name, v in lat.items()}
    return out


def clock_cost(n: int = 200_000) -> float:
    t0 = time.perf_counter_ns()
    for _ in range(n):
        time.perf_counter_ns()
    return (time.perf_counter_ns() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="short run (~20 s) to check the script works")
    args = ap.parse_args()
    secs = 0.5 if args.smoke else 2.0
    loads = [5_000, 20_000, 50_000] if args.smoke else [5_000, 10_000, 20_000, 30_000, 50_000, 80_000, 120_000]

    from tensorforge.core.specs import TensorSpec
    from tensorforge.loadgen.targets import BatcherTarget, NoopTarget
    from tensorforge.serve.batching import BatcherConfig

    noop_rows, noop_best = self_capacity(NoopTarget(), loads, secs)
    batcher = BatcherTarget([lambda feeds: {"y": next(iter(feeds.values()))}], [TensorSpec("x", "float32", ("N", 1))],
                            BatcherConfig(max_batch_size=64, max_queue_delay_ms=0, max_queue_size=100_000))
    try:
        b_loads = [2_000, 5_000, 10_000] if args.smoke else [2_000, 5_000, 10_000, 15_000, 20_000, 30_000]
        batch_rows, batch_best = self_capacity(batcher, b_loads, secs)
    finally:
        batcher.close()
    result = {
        "benchmark": "loadgen_capacity", "smoke": args.smoke, "cpus": os.cpu_count(),
        "python": platform.python_version(), "clock": "time.perf_counter_ns (CLOCK_MONOTONIC)",
        "clock_read_ns": clock_cost(),
        "closed_loop": closed_loop(secs),
        "open_loop": {"rows": noop_rows, "self_capacity_qps": noop_best, "target_qps": 20_000,
                      "meets_target": bool(noop_best is not None and noop_best >= 20_000)},
        "timestamp_accuracy": timestamp_accuracy([1_000, 5_000] if args.smoke else [200, 1_000, 5_000],
                                                 secs, 2 if args.smoke else 4),
        "batcher_noop": {"rows": batch_rows, "capacity_qps": batch_best},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
