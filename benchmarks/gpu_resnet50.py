"""ResNet-50 on a CUDA GPU through TensorForge's PyTorch backend — the whitepaper's V100 table, redone (not a test).

    python benchmarks/gpu_resnet50.py [--out DIR] [--batches 1,2,4,8,16,32,64,128] [--seconds 1.0]
                                      [--modes eager,compile] [--tune-budget 90] [--device cuda]

What runs, all in one process, and is written to ``DIR/gpu_resnet50.json`` after every row
(so a run cut short keeps what it measured):

1. ``tensorforge.build("resnet50")`` (the zoo's ResNet-50, seeded Gaussian weights, FP32
   graph passes and verification on ONNX Runtime CPU);
2. for each mode (``eager``; ``compile`` = ``torch.compile`` with CUDA graphs) the engine's
   session on the torch backend with ``dtype=float16`` (weights and compute in FP16, FP32 in
   and out), checked against the FP32 reference session (ONNX Runtime on the CPU, max normalized
   error ≤ the FP16 tolerance of ``core.tolerances``), then timed per batch: warm-up, 3 rounds of ``--seconds``, median
   samples/s and p50 latency of ``session.run`` — host arrays in, host arrays out, so the
   figure includes the PCIe copies — and, beside it, the same module on inputs already in
   GPU memory (``device_resident``, the way giexec/trtexec time by default);
3. board power over the timed loop from NVML when ``nvidia-ml-py`` is present;
4. the tuner on the GPU: ``build --device cuda --tune throughput`` at batch 32 (which
   backends have CUDA here, which candidates ran, and which won).

The V100 figures of the whitepaper (TensorRT 3, FP16, ResNet-50) are copied into the JSON
for the side-by-side: batch 1: 504 img/s, 2: 797, 4: 1,450, 8: 2,493, 64: 5,572, 128: 6,024.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

WHITEPAPER_V100_FP16 = {1: 504, 2: 797, 4: 1450, 8: 2493, 64: 5572, 128: 6024}


def _timed(fn, feeds, seconds: float, rounds: int = 3) -> dict:
    from tensorforge.core.stats import latency_stats
    from tensorforge.core.timing import Timer

    timer = Timer(fn)
    timer.warm(feeds, min(seconds, 1.0))
    for _ in range(rounds):
        timer.run_for(feeds, seconds, min_iterations=3)
    rates = sorted(timer.round_rates)
    lat = latency_stats(timer.samples)
    return {"calls_per_s": rates[len(rates) // 2], "p50_ms": lat.p50_ms, "p99_ms": lat.p99_ms,
            "round_spread_pct": (rates[-1] - rates[0]) / (2 * rates[len(rates) // 2]) * 100}


def _power_meter(device: str):
    from tensorforge.bench.power import PowerUnavailable, detect_power_meter

    meter = detect_power_meter(device)
    return None if isinstance(meter, PowerUnavailable) else meter


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--batches", default="1,2,4,8,16,32,64,128")
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--modes", default="eager,compile")
    ap.add_argument("--tune-budget", type=float, default=90.0)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--model", default="resnet50")
    args = ap.parse_args()
    import torch

    from tensorforge.backends.reference import reference_session
    from tensorforge.core.reference import compare
    from tensorforge.core.specs import random_inputs
    from tensorforge.core.tolerances import tolerance
    from tensorforge.engine.build import BuildOptions, build

    out_path = Path(args.out) / "gpu_resnet50.json"
    result: dict = {"schema": "tensorforge.gpu-resnet50/1", "model": args.model, "device": args.device,
                    "torch": torch.__version__, "whitepaper_v100_tensorrt3_fp16_img_s": WHITEPAPER_V100_FP16,
                    "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                    "rows": [], "errors": []}

    def save() -> None:
        out_path.write_text(json.dumps(result, indent=1, default=str))

    t0 = time.perf_counter()
    engine, report = build(args.model, None, BuildOptions(max_batch=max(int(b) for b in args.batches.split(","))))
    result["build_s"] = round(time.perf_counter() - t0, 1)
    check_feeds = random_inputs(engine.inputs, 2, seed=1)
    reference = reference_session(engine.model_bytes).run(check_feeds)
    meter = _power_meter(args.device)
    result["power_source"] = meter.name if meter is not None else "unavailable"
    for mode in args.modes.split(","):
        options = {"dtype": "float16"} if args.device == "cuda" else {}
        if mode == "compile":
            options.update({"mode": "compile", "cuda_graphs": True} if args.device == "cuda"
                           else {"mode": "compile", "freezing": True})
        t = time.perf_counter()
        try:
            session = engine.session(backend="torch", device=args.device, options=options, warn_host=False)
            err = compare(list(session.run(check_feeds).values()), reference).max_norm
        except Exception as exc:     # record and go on: one mode failing must not lose the others
            result["errors"].append(f"{mode}: {type(exc).__name__}: {exc}"[:500])
            save()
            continue
        print(f"{mode}: setup {time.perf_counter() - t:.1f} s, max normalized error vs ORT FP32 {err:.2e}",
              flush=True)
        module = session._backend_session._module         # the same prepared module, for device-resident timing
        for b in (int(x) for x in args.batches.split(",")):
            feeds = random_inputs(engine.inputs, b, seed=b)
            row = {"mode": mode, "options": options, "batch": b, "max_norm_err_vs_fp32": err,
                   "passes_fp16_tolerance": bool(err <= tolerance("fp16"))}
            try:
                if meter is not None:
                    meter.start()
                host = _timed(session.run, feeds, args.seconds)
                if meter is not None:
                    reading = meter.stop()
                    row["board_power_w"] = round(reading.avg_power_w, 1)
                row["host_io"] = {"img_s": round(host["calls_per_s"] * b, 1), **host}
                x = torch.from_numpy(next(iter(feeds.values()))).to(args.device)
                if args.device == "cuda":
                    x = x.half()

                def resident(_feeds, x=x, m=module):
                    with torch.inference_mode():
                        y = m(x)
                    if args.device == "cuda":
                        torch.cuda.synchronize()
                    return y

                dev = _timed(resident, feeds, args.seconds)
                row["device_resident"] = {"img_s": round(dev["calls_per_s"] * b, 1), **dev}
                if b in WHITEPAPER_V100_FP16:
                    row["whitepaper_v100_img_s"] = WHITEPAPER_V100_FP16[b]
            except Exception as exc:
                row["error"] = f"{type(exc).__name__}: {exc}"[:500]
            result["rows"].append(row)
            print(json.dumps({k: row.get(k) for k in ("mode", "batch")}),
                  row.get("host_io", {}).get("img_s"), row.get("device_resident", {}).get("img_s"),
                  row.get("board_power_w"), flush=True)
            save()
        del session, module
        if args.device == "cuda":
            torch.cuda.empty_cache()
    if args.tune_budget > 0:
        t = time.perf_counter()
        try:
            _, tuned = build(args.model, None, BuildOptions(max_batch=32, device=args.device, tune="throughput",
                                                            tune_batch=32, tune_budget_s=args.tune_budget,
                                                            tune_cache=False))
            result["tuning"] = tuned.tuning.to_dict() if tuned.tuning else None
        except Exception as exc:
            result["errors"].append(f"tune: {type(exc).__name__}: {exc}"[:500])
        result["tune_wall_s"] = round(time.perf_counter() - t, 1)
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    save()
    print(json.dumps({"rows": len(result["rows"]), "errors": result["errors"], "wall_s": result["wall_s"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
