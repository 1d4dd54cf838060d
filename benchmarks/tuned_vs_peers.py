"""The tuned TensorForge engine against every peer at its defaults, in one run on this CPU (not a test).

    python benchmarks/tuned_vs_peers.py [--models resnet50,mobilenet_v2,googlenet] [--tune-budget 90]
                                        [--rounds 5] [--round-s 1.0] [--json FILE]

For each model, at batch 1 (the latency point) and at the throughput-best batch (the batch
among --batches at which bare ONNX Runtime moves the most samples/s here, found by a quick
sweep first):

* **tuned**: ``tensorforge build MODEL --tune latency`` (batch 1) or ``--tune throughput
  --tune-batch B``, no timing cache, then the engine as a user runs it — ``Engine.session()``
  with the recorded backend and settings, input validation included; a winner with N
  streams runs N concurrent requests on its one session (``StreamPool``);
* **onnxruntime**: a plain ``InferenceSession`` on the zoo's original ONNX, default options;
* **openvino**: ``ov.Core().compile_model(model, "CPU")`` with no configuration (its default
  hint), called through a plain ``InferRequest``;
* **torch_eager** and **torch_compile**: the same network as a ``torch.nn.Module`` (our
  ONNX → torch converter; torchvision's own models cannot load beside this CPU torch build),
  ``torch.inference_mode()``, and ``torch.compile(module)`` with its defaults.

All contenders of a point run in the same process, round-robin: every round times each for
``--round-s`` seconds, the order rotating between rounds, so drift hits all alike. Per
contender: median per-round samples/s and p50 latency of a call. ``ratio_vs_best_peer`` is
the tuned engine's samples/s over the best peer's, per round (median, min, max) — the target
is ≥ 1.0 at every point. Prints and writes one JSON document.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from typing import Any, Callable

import numpy as np


def _ov_peer(model_bytes: bytes) -> Callable[[dict], Any]:
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(model_bytes, b""), "CPU")
    request = compiled.create_infer_request()

    def run(feeds: dict) -> Any:
        return request.infer(feeds)

    return run


def _torch_peers(model_bytes: bytes) -> dict[str, Callable[[dict], Any]]:
    import torch

    from tensorforge.backends.torch_convert import convert

    module = convert(model_bytes).eval()
    compiled = torch.compile(module)
    names = list(module.input_names)

    def caller(m: Any) -> Callable[[dict], Any]:
        def run(feeds: dict) -> Any:
            with torch.inference_mode():
                return m(*[torch.from_numpy(feeds[n]) for n in names])
        return run

    return {"torch_eager": caller(module), "torch_compile": caller(compiled)}


def _tuned(model: str, objective: str, batch: int, budget: float) -> tuple[Callable[[dict], Any], int, dict]:
    from tensorforge.engine.build import BuildOptions, build
    from tensorforge.engine.streams import StreamPool

    opts = BuildOptions(max_batch=max(batch, 1), tune=objective, tune_batch=batch, tune_budget_s=budget,
                        tune_cache=False)
    engine, report = build(model, None, opts)
    session = engine.session(warn_host=False)
    streams = int(engine.manifest["backend"]["settings"].get("streams", 1))
    info = {"winner": report.tuning["winner"], "candidates": [
        {k: r[k] for k in ("candidate", "status", "throughput_sps", "ratio", "noise_pct", "reason")}
        for r in report.tuning["candidates"]], "tune_s": report.tuning["elapsed_s"]}
    if streams > 1:
        pool = StreamPool(session.run, streams)
        return pool, streams, info
    return session.run, 1, info


def _round_robin(contenders: dict[str, tuple[Callable, int]], feeds: dict, batch: int, rounds: int,
                 round_s: float) -> dict[str, dict]:
    from tensorforge.bench.timing import Timer

    timers = {name: (Timer(fn), per) for name, (fn, per) in contenders.items()}
    for timer, _ in timers.values():
        timer.warm(feeds, min(round_s, 1.0))
    names = list(timers)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            timers[name][0].run_for(feeds, round_s, min_iterations=2)
    out = {}
    for name, (timer, per) in timers.items():
        rates = [x * per * batch for x in timer.round_rates]
        med = float(np.median(rates))
        out[name] = {"samples_per_s": round(med, 2), "round_rates": [round(x, 2) for x in rates],
                     "p50_ms": round(float(np.median(timer.samples)) / 1e6, 3),
                     "noise_pct": round((max(rates) - min(rates)) / 2 / med * 100, 2)}
    return out


def _best_batch(model_bytes: bytes, inputs: list, batches: list[int]) -> tuple[int, dict[int, float]]:
    from tensorforge.bench.peers import bare_onnxruntime
    from tensorforge.bench.timing import Timer
    from tensorforge.engine.inputs import random_inputs

    run = bare_onnxruntime(model_bytes)
    rates = {}
    for b in batches:
        feeds = random_inputs(inputs, b, seed=b)
        timer = Timer(run)
        timer.warm(feeds, 0.3)
        timer.run_for(feeds, 1.0, min_iterations=2)
        rates[b] = round(timer.round_rates[0] * b, 2)
    return max(rates, key=lambda b: rates[b]), rates


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="resnet50,mobilenet_v2,googlenet")
    ap.add_argument("--batches", default="2,4,8,16,32", help="candidates for the throughput-best batch")
    ap.add_argument("--tune-budget", type=float, default=90.0)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--round-s", type=float, default=1.0)
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()

    import openvino
    import torch

    from tensorforge.bench.peers import bare_onnxruntime, ort_version
    from tensorforge.engine.fingerprint import host_fingerprint
    from tensorforge.engine.inputs import io_specs, random_inputs
    from tensorforge.models import zoo

    doc: dict[str, Any] = {"schema": "tensorforge.tuned-vs-peers/1", "host": host_fingerprint(),
                           "versions": {"onnxruntime": ort_version(), "openvino": openvino.__version__,
                                        "torch": torch.__version__},
                           "method": {"rounds": args.rounds, "round_s": args.round_s,
                                      "tune_budget_s": args.tune_budget}, "points": []}
    t0 = time.perf_counter()
    for model in args.models.split(","):
        proto = zoo.build(model)
        model_bytes = proto.SerializeToString()
        inputs, _ = io_specs(proto)
        best, sweep = _best_batch(model_bytes, inputs, [int(b) for b in args.batches.split(",")])
        for objective, batch in (("latency", 1), ("throughput", best)):
            print(f"{model} {objective} batch {batch}: tuning ...", file=sys.stderr, flush=True)
            tuned, per, info = _tuned(model, objective, batch, args.tune_budget)
            contenders = {"tuned": (tuned, per), "onnxruntime": (bare_onnxruntime(model_bytes), 1),
                          "openvino": (_ov_peer(model_bytes), 1)}
            contenders.update({k: (v, 1) for k, v in _torch_peers(model_bytes).items()})
            feeds = random_inputs(inputs, batch, seed=batch)
            results = _round_robin(contenders, feeds, batch, args.rounds, args.round_s)
            peers = [k for k in results if k != "tuned"]
            per_round_best = np.max([results[p]["round_rates"] for p in peers], axis=0)
            ratios = np.array(results["tuned"]["round_rates"]) / per_round_best
            best_peer = max(peers, key=lambda p: results[p]["samples_per_s"])
            point = {"model": model, "objective": objective, "batch": batch, "results": results,
                     "best_peer": best_peer,
                     "ratio_vs_best_peer": {"median": round(float(np.median(ratios)), 4),
                                            "min": round(float(ratios.min()), 4),
                                            "max": round(float(ratios.max()), 4)},
                     "meets_target": bool(np.median(ratios) >= 1.0), "tuning": info}
            if objective == "throughput":
                point["batch_sweep_onnxruntime_sps"] = sweep
            doc["points"].append(point)
            print(json.dumps({k: point[k] for k in ("model", "objective", "batch", "best_peer",
                                                    "ratio_vs_best_peer")}), file=sys.stderr, flush=True)
            del contenders, tuned
            gc.collect()
    doc["wall_s"] = round(time.perf_counter() - t0, 1)
    doc["summary"] = [{"model": p["model"], "batch": p["batch"], "objective": p["objective"],
                       "tuned_sps": p["results"]["tuned"]["samples_per_s"],
                       "tuned_backend": p["tuning"]["winner"]["label"],
                       **{f"{k}_sps": p["results"][k]["samples_per_s"] for k in p["results"] if k != "tuned"},
                       "ratio_vs_best_peer": p["ratio_vs_best_peer"]["median"]} for p in doc["points"]]
    text = json.dumps(doc, indent=1, default=str)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            fh.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
