"""Pruned vs dense engines, same run, interleaved: samples/s of channel pruning and 2:4 / unstructured sparsity.

For each model, one dense engine and one engine per prune spec are built (same batch, default
pipeline); then, on every backend that is available here, each pruned engine is timed against the
dense one with :func:`tensorforge.core.timing.paired_timing` (rounds alternate which runs first, so
machine drift hits both alike). Prints one JSON document: per model, backend and spec, both
throughputs, the median ratio, its noise, the measured and the final verdict, beside the params/MACs the build report
counts. Where a spec gives no gain the row says ``"no gain"`` (sparsity does not change speed on dense
kernels; channel pruning should).

    python benchmarks/prune_speed.py [--models resnet50,mobilenet_v2] [--specs channels:30%,2:4]
                                     [--batch 1] [--rounds 6] [--seconds 1.0]
                                     [--backends onnxruntime,openvino,torch]

Every backend of ``--backends`` that is available here is timed (unavailable ones are listed with
why). OpenVINO's sparse weights decompression is reported from
:func:`tensorforge.prune.openvino_sparse_support` (set only on CPUs with AMX). Accuracy vs ratio,
with and without fine-tuning and beside torch/NNCF, is benchmarks/prune_accuracy.py.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

SPECS = "channels:30%,channels:50%,2:4,unstructured:70%"


def _feeds(engine, batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    feeds = {}
    for spec in engine.inputs:
        shape = [batch if not isinstance(d, int) or i == 0 else d for i, d in enumerate(spec.shape)]
        feeds[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
    return feeds


def verdict(spec: str, backend: str, measured: str) -> str:
    """"faster" or "no gain (…)". Sparsity leaves the graph dense: where the backend has no sparse kernel
    (every one here but OpenVINO on AMX) both engines do identical work, so a "faster" measurement is
    noise and the verdict says so beside it."""
    from tensorforge.prune import openvino_sparse_support

    sparse = not spec.startswith("channels")
    if sparse and not (backend == "openvino" and openvino_sparse_support(spec).supported):
        return "no gain (dense kernels: identical work" + (f"; measured {measured} is noise)" if measured == "faster"
                                                            else ")")
    return measured if measured == "faster" else f"no gain ({measured})"


def accuracy_vs_ratio(model_name: str, dataset: str) -> dict:
    """Top-1 of a shipped trained model on its test split vs pruning spec, without fine-tuning (with a
    fine-tune and beside torch / NNCF: benchmarks/prune_accuracy.py)."""
    from tensorforge.engine.source import resolve_source
    from tensorforge.models.accuracy_data import accuracy_data
    from tensorforge.precision.evaluate import run_model, score
    from tensorforge.prune import prune_model

    model = resolve_source(model_name).model
    test = accuracy_data(dataset, model).test
    ref = run_model(model.SerializeToString(), test)
    rows = {"unpruned": round(score(ref, ref, test.labels).top1_pct, 2)}
    for spec in ("channels:10%", "channels:20%", "channels:30%", "channels:50%", "channels:30%:l2",
                 "channels:30%:bn", "2:4", "unstructured:50%", "unstructured:70%", "unstructured:90%"):
        pruned = prune_model(model, spec).model
        rows[spec] = round(score(run_model(pruned.SerializeToString(), test), ref, test.labels).top1_pct, 2)
    return {"model": model_name, "data": f"{dataset} test split ({test.samples} samples)", "finetune": "none",
            "top1_pct": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="resnet50,mobilenet_v2")
    ap.add_argument("--specs", default=SPECS)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=1.0, help="length of each timed round")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--backends", default="onnxruntime,openvino,torch")
    ap.add_argument("--accuracy-model", default="mnist_cnn", help="shipped trained model for top-1 vs spec "
                    "('' to skip)")
    ap.add_argument("--accuracy-data", default="mnist5k")
    args = ap.parse_args()

    from tensorforge.backends.registry import get_backend
    from tensorforge.core.host import host_fingerprint, isa_flags, library_versions
    from tensorforge.core.timing import Timer, paired_timing
    from tensorforge.engine.build import BuildOptions, build
    from tensorforge.prune import openvino_sparse_support

    asked = [b for b in args.backends.split(",") if b]
    unavailable = {b: get_backend(b).availability() for b in asked}
    backends = [b for b in asked if unavailable[b] is None]
    report: dict = {"benchmark": "prune_speed", "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
                    "batch": args.batch, "rounds": args.rounds,
                    "round_s": args.seconds, "host": host_fingerprint(), "libraries": library_versions(),
                    "backends": backends, "models": {},
                    "backends_unavailable": {b: why for b, why in unavailable.items() if why is not None},
                    "isa_flags": isa_flags(),
                    "openvino_sparse_weights": {spec: openvino_sparse_support(spec).to_dict()
                                                for spec in args.specs.split(",") if not spec.startswith("channels")}}
    for model in args.models.split(","):
        dense_engine, dense_report = build(model, options=BuildOptions(batch=args.batch))
        feeds = _feeds(dense_engine, args.batch)
        engines = {}
        rows: dict = {"dense": {"params": dense_report.after.params, "macs": dense_report.after.macs_per_sample}}
        for spec in args.specs.split(","):
            engine, rep = build(model, options=BuildOptions(batch=args.batch, prune=spec))
            engines[spec] = engine
            rows[spec] = {"params": rep.after.params, "macs": rep.after.macs_per_sample,
                          "macs_ratio": round(rep.after.macs_per_sample / dense_report.after.macs_per_sample, 4),
                          "sparsity": rep.pruning.get("sparsity") if rep.pruning else None, "speed": {}}
        for backend in backends:
            dense = dense_engine.session(backend=backend, threads=args.threads, warn_host=False)
            dense_timer = Timer(lambda f, s=dense: s.run(f))
            dense_timer.warm(feeds, 0.5)
            for spec, engine in engines.items():
                session = engine.session(backend=backend, threads=args.threads, warn_host=False)
                timer = Timer(lambda f, s=session: s.run(f))
                timer.warm(feeds, 0.5)
                paired = paired_timing(lambda t=timer: t.run_for(feeds, args.seconds, 2),
                                       lambda: dense_timer.run_for(feeds, args.seconds, 2), args.rounds,
                                       min_gain=0.05)   # "faster" only beyond 5 % and the noise
                ratio = paired.median or 0.0
                rows[spec]["speed"][backend] = {
                    "pruned_sps": round(float(np.median(paired.ours)) * args.batch, 2),
                    "dense_sps": round(float(np.median(paired.peer)) * args.batch, 2),
                    "speedup": round(ratio, 3), "noise_pct": round(paired.noise_pct or 0.0, 2),
                    "measured": paired.verdict, "verdict": verdict(spec, backend, paired.verdict)}
        report["models"][model] = rows
    if args.accuracy_model:
        report["accuracy"] = accuracy_vs_ratio(args.accuracy_model, args.accuracy_data)
    # the machine's load: paired rounds cancel slow drift, not a busy neighbour's bursts (see noise_pct)
    report["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
