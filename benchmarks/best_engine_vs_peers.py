"""TensorForge's best engine (the joint precision x backend x settings search) against every peer, one run, one CPU.

    python benchmarks/best_engine_vs_peers.py [--models resnet50,mobilenet_v2] [--batches 1,8]
        [--rounds 15] [--round-s 0.4] [--optimize-budget 60] [--no-speed] [--no-accuracy]
        [--json FILE] [--smoke]

Contenders (each in a process of its own, timed round-robin with the idle ones SIGSTOPped —
the machinery of ``benchmarks/_contenders.py``, shared with ``tuned_vs_peers.py``):

* **tensorforge_best**: ``tensorforge.build(model, path, BuildOptions(optimize="latency"``
  (batch 1) or ``"throughput"`` (batch > 1), ``tune_batch=B, max_batch=max(B, 8),
  tune_budget_s=--optimize-budget, tune_cache=False, ...))``, then the file run as a user runs it:
  ``tensorforge.load(path)`` with the recorded backend and settings (N recorded streams run as
  a ``StreamPool``). The random-weight zoo models are built with ``calibration="random"`` and
  no evaluation data, so the build optimizes for speed only and the engine's accuracy is
  unknown (recorded per point); ``mnist_cnn`` is built with ``calibration="mnist5k",
  eval_data="mnist5k", accuracy_budget="1.0"`` (its guard judges on the validation split).
* peers at their defaults: **onnxruntime** (a plain ``InferenceSession``, FP32, default
  options); **openvino_default** (``Core().compile_model(model, "CPU")`` with no properties —
  on a CPU with AVX-512 BF16 or AMX that computes in BF16; its INFERENCE_PRECISION_HINT and its
  error against FP32 are recorded); **torch** (the same network as an ``nn.Module`` through the
  project's ONNX -> torch converter, eager, under ``torch.inference_mode()``);
* peers' own quantization tooling at its defaults: **ort_quantize_static**
  (``quant_pre_process`` — ``quantize_static`` warns when a model skipped it — then
  ``quantize_static`` with every default, run on a default ``InferenceSession`` — in ONNX Runtime
  1.32 the default activations are QInt8); **ort_quantize_static_u8** (the same with the settings
  ``quantize_static``'s docstring recommends for x86: QUInt8 activations, and ``reduce_range=True``
  on a CPU without VNNI); **nncf_ptq**
  (``nncf.quantize(ov_model, nncf.Dataset(items))`` with every default, then
  ``compile_model(model, "CPU")`` with no properties). All three calibrate on the 64 random N(0,1)
  samples TensorForge's ``calibration="random"`` uses (zoo models) or on the mnist5k
  calibration split (mnist_cnn) — never on the test split.

Speed part: the zoo models (random Gaussian weights) at each batch. Accuracy part: the shipped
trained ``mnist_cnn``, top-1 on the mnist5k test split (1,000 real images) for every
contender, and the same round-robin timing at each batch, so speed and accuracy sit side by
side. Per contender: the median per-round samples/s, the rounds' percentiles and noise (half
the range over the median), call latency percentiles, and the max normalized error of the first
output against ONNX Runtime FP32 on the same input. Ratios are paired round by round:
tensorforge_best over the fastest peer at its defaults (highest median among onnxruntime,
openvino_default, torch; target >= 1.8), and over each quantization peer. The host's
CPU model and ISA flags are in the JSON so figures from different machines are never mixed.
Progress goes to stderr; one JSON document to stdout (and to --json FILE).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from _contenders import call_in_process, emit, log, paired_ratio, round_robin

TARGET = 1.8
DEFAULT_PEERS = ["onnxruntime", "openvino_default", "torch"]
QUANT_PEERS = ["ort_quantize_static", "ort_quantize_static_u8", "nncf_ptq"]
CONTENDERS = ["tensorforge_best"] + DEFAULT_PEERS + QUANT_PEERS
TRAINED = "mnist_cnn"


# ---- inside the contender processes ------------------------------------------------------------

def _make(kind: str, spec: dict[str, Any]) -> tuple[Callable[[dict], Any], int, dict]:
    """(callable, requests per call, facts) for one contender; runs inside its worker process."""
    if kind == "tensorforge_best":
        import tensorforge
        from tensorforge.core.streams import StreamPool

        engine = tensorforge.Engine.load(spec["engine_path"])
        session = tensorforge.load(spec["engine_path"], warn_host=False)
        backend = engine.manifest.backend
        streams = backend.settings.streams or 1
        facts = {"precision": engine.manifest.precision, "backend": backend.name,
                 "settings": backend.settings.to_dict(), "streams": streams}
        if streams > 1:
            return StreamPool(session.run, streams), streams, facts
        return session.run, 1, facts
    if kind.startswith(("onnxruntime", "ort_quantize_static")):
        from tensorforge.bench.peers import bare_onnxruntime

        path = spec["model_path"] if kind == "onnxruntime" else spec[kind]
        return bare_onnxruntime(Path(path).read_bytes()), 1, {"model": Path(path).name}
    if kind in ("openvino_default", "nncf_ptq"):
        import openvino as ov

        core = ov.Core()
        path = spec["model_path"] if kind == "openvino_default" else spec[kind]
        compiled = core.compile_model(core.read_model(path), "CPU")        # no properties: the true default
        request = compiled.create_infer_request()
        facts = {name: _ov_text(compiled.get_property(name)) for name in
                 ("INFERENCE_PRECISION_HINT", "PERFORMANCE_HINT", "NUM_STREAMS", "INFERENCE_NUM_THREADS",
                  "ENABLE_CPU_PINNING")}
        facts["OPTIMIZATION_CAPABILITIES"] = _ov_text(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
        return (lambda feeds: list(request.infer(feeds).values())), 1, facts
    if kind == "torch":
        import torch

        from tensorforge.backends.torch_convert import convert

        module = convert(Path(spec["model_path"]).read_bytes()).eval()
        names = list(module.input_names)

        def run(feeds: dict) -> Any:
            with torch.inference_mode():
                return module(*[torch.from_numpy(feeds[n]) for n in names])

        return run, 1, {"mode": "eager, torch.inference_mode()", "threads": torch.get_num_threads()}
    raise ValueError(f"unknown contender {kind!r}")


def _ov_text(value: Any) -> str:
    """An OpenVINO property as text: element types by their short name ("f32", "bf16")."""
    if isinstance(value, (list, tuple)):
        return ",".join(_ov_text(v) for v in value)
    return str(value.get_type_name()) if hasattr(value, "get_type_name") else str(value)


# ---- one-shot processes: quantize the peers, build tensorforge_best -----------------------------

def _quantize_peers(model_path: str, items: list[dict[str, np.ndarray]], out_dir: str, tag: str,
                    isa_flags: list[str]) -> dict[str, Any]:
    """ONNX Runtime's and NNCF's post-training quantization, each at its defaults, on ``items``
    (one calibration sample per item). Returns {contender: facts with the output path or the error}."""
    import inspect
    import logging
    import platform

    logging.getLogger().setLevel(logging.ERROR)
    out: dict[str, Any] = {}
    t = time.perf_counter()
    try:
        from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self._items = iter(items)

            def get_next(self) -> dict[str, np.ndarray] | None:
                return next(self._items, None)

        pre = str(Path(out_dir) / f"{tag}_ort_pre.onnx")
        quant_pre_process(model_path, pre)
        pre_s = time.perf_counter() - t
        signature = inspect.signature(quantize_static).parameters
        # the defaults, and the variant quantize_static's docstring recommends for an x86 CPU: QUInt8
        # activations, reduce_range only without VNNI (ARM: its defaults are the recommendation)
        x86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")
        vnni = bool({"avx512_vnni", "avx_vnni", "amx_int8"} & set(isa_flags))
        variants = {"ort_quantize_static": {},
                    "ort_quantize_static_u8": {"activation_type": QuantType.QUInt8, "reduce_range": not vnni}
                    if x86 else {}}
        for kind, overrides in variants.items():
            t = time.perf_counter()
            try:
                path = str(Path(out_dir) / f"{tag}_{kind}.onnx")
                quantize_static(pre, path, Reader(), **overrides)
                args = {k: str(getattr(v, "name", v)) for k, v in
                        {**{k: p.default for k, p in signature.items()}, **overrides}.items()
                        if k in ("quant_format", "activation_type", "weight_type", "per_channel", "reduce_range",
                                 "calibrate_method", "op_types_to_quantize", "extra_options")}
                out[kind] = {"path": path, "seconds": round(time.perf_counter() - t + pre_s, 1),
                             "pre_process": "quant_pre_process(model, out) with its defaults: ran (ORT's CPU "
                                            "quantization example, which quantize_static's warning links to, makes "
                                            "it step 1 and 'highly recommended')",
                             "quantize_static_args": args, "changed_from_defaults": sorted(overrides),
                             "calibration_samples": len(items)}
            except Exception as exc:
                out[kind] = {"error": f"{type(exc).__name__}: {exc}"}
    except Exception as exc:
        out["ort_quantize_static"] = out["ort_quantize_static_u8"] = {"error": f"{type(exc).__name__}: {exc}"}
    t = time.perf_counter()
    try:
        import nncf
        import openvino as ov

        quantized = nncf.quantize(ov.Core().read_model(model_path), nncf.Dataset(items))
        path = str(Path(out_dir) / f"{tag}_nncf_ptq.xml")
        ov.save_model(quantized, path, compress_to_fp16=False)      # exactly what nncf returned
        out["nncf_ptq"] = {"path": path, "seconds": round(time.perf_counter() - t, 1),
                           "quantize_args": "all defaults (preset, subset_size=300, fast_bias_correction=True, "
                                            "target_device=ANY)",
                           "calibration_samples_used": min(300, len(items))}
    except Exception as exc:
        out["nncf_ptq"] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def _build_best(source: str, path: str, batch: int, budget_s: float, calibration: str,
                eval_data: str | None, accuracy_budget: str | None) -> dict[str, Any]:
    """Build tensorforge_best as a user would; returns what the report says about the choice."""
    import tensorforge

    kwargs: dict[str, Any] = {"optimize": "latency" if batch == 1 else "throughput", "tune_batch": batch,
                              "max_batch": max(batch, 8), "calibration": calibration, "eval_data": eval_data,
                              "accuracy_budget": accuracy_budget, "tune_budget_s": budget_s, "tune_cache": False}
    t = time.perf_counter()
    engine, report = tensorforge.build(source, path, tensorforge.BuildOptions(**kwargs))
    optimization = dict(report.to_dict()["optimization"] or {})
    known = optimization.get("accuracy_known")
    return {"build_options": kwargs, "build_s": round(time.perf_counter() - t, 1),
            "chosen": optimization.pop("chosen", None), "front": optimization.pop("front", None),
            "accuracy_unknown": (not known) if known is not None else calibration == "random",
            "optimization": optimization, "precision": engine.manifest.precision,
            "backend": engine.manifest.backend.name, "settings": engine.manifest.backend.settings.to_dict(),
            "engine_accuracy_record": engine.manifest.to_dict()["accuracy"], "warnings": list(report.warnings),
            "timings_s": report.timings_s}


# ---- the parent: points, ratios, summary -------------------------------------------------------

def _per_sample(batches: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    return [{k: v[i:i + 1] for k, v in b.items()} for b in batches for i in range(next(iter(b.values())).shape[0])]


def _random_calibration(specs: list) -> list[dict[str, np.ndarray]]:
    """The samples of tensorforge's calibration="random" (engine/precision_step.py: 4 seeded batches
    of 16 N(0,1) inputs), one sample per item."""
    from tensorforge.core.specs import random_inputs

    return _per_sample([random_inputs(specs, 16, seed=100 + i) for i in range(4)])


def _point(model: str, batch: int, specs: dict[str, Any], build: dict[str, Any], feeds: dict[str, np.ndarray],
           args: argparse.Namespace, test: Any = None) -> dict[str, Any]:
    """Time (and, with ``test``, score) every contender whose spec is not an error."""
    kinds = {k: s for k, s in specs.items() if "error" not in s}
    log(f"{model} b{batch}: timing {', '.join(kinds)} ({args.rounds} rounds x {args.round_s} s) ...")
    predict = test.batches if test is not None else None
    t = time.perf_counter()
    results = round_robin(_make, kinds, feeds, batch, args.rounds, args.round_s, predict=predict, log=log)
    timing_s = round(time.perf_counter() - t, 1)
    results.update({k: {"error": s["error"]} for k, s in specs.items() if "error" in s})
    point: dict[str, Any] = {"model": model, "batch": batch, "objective": "latency" if batch == 1 else "throughput",
                             "build": build, "results": results, "timing_s": timing_s}
    timed = {k for k, r in results.items() if "error" not in r and r.get("round_rates")}
    if test is not None:
        ref = results.get("onnxruntime", {}).get("predictions")
        acc = {}
        for kind, r in results.items():
            pred = r.pop("predictions", None)
            if pred is None:
                continue
            top1 = pred.argmax(axis=1)
            acc[kind] = {"top1_pct": round(float((top1 == test.labels).mean() * 100), 2),
                         "agree_with_fp32_pct": None if ref is None
                         else round(float((top1 == ref.argmax(axis=1)).mean() * 100), 2)}
            r["top1_pct"] = acc[kind]["top1_pct"]
        point["accuracy"] = {"split": "test", "samples": int(len(test.labels)), "by_contender": acc}
    peers = [p for p in DEFAULT_PEERS if p in timed]
    if "tensorforge_best" in timed and peers:
        ours = results["tensorforge_best"]["round_rates"]
        fastest = max(peers, key=lambda p: results[p]["samples_per_s"])
        ratio = paired_ratio(ours, results[fastest]["round_rates"])
        strict = np.asarray(ours) / np.max([results[p]["round_rates"] for p in peers], axis=0)
        point.update(fastest_default_peer=fastest, ratio_vs_fastest_default_peer=ratio,
                     ratio_vs_per_round_best_default_peer=round(float(np.median(strict)), 4),
                     target=TARGET, meets_target=bool(ratio["median"] >= TARGET))
        for q in QUANT_PEERS:
            if q in timed:
                point[f"ratio_vs_{q}"] = paired_ratio(ours, results[q]["round_rates"])
        if test is not None:
            acc = point["accuracy"]["by_contender"]
            point["faster_at_equal_or_better_accuracy"] = {
                q: bool(point[f"ratio_vs_{q}"]["median"] > 1.0
                        and acc["tensorforge_best"]["top1_pct"] >= acc[q]["top1_pct"])
                for q in QUANT_PEERS if f"ratio_vs_{q}" in point and q in acc and "tensorforge_best" in acc}
    point["summary"] = _summary_line(point)
    log("  " + point["summary"])
    return point


def _label(build: dict[str, Any]) -> str:
    chosen = build.get("chosen")
    if isinstance(chosen, dict):
        return str(chosen.get("timed_as") or f"{chosen.get('name')} @{chosen.get('backend')}")
    return str(chosen) if chosen is not None else f"{build.get('precision')} {build.get('backend')}"


def _summary_line(p: dict[str, Any]) -> str:
    head = f"{p['model']} b{p['batch']}"
    r, build = p["results"], p["build"]
    if "error" in build:
        return f"{head}: tensorforge_best build failed ({build['error'].splitlines()[0]}); peers timed only"
    if "ratio_vs_fastest_default_peer" not in p:
        err = r.get("tensorforge_best", {}).get("error", "no default peer timed")
        return f"{head}: no ratio ({err})"
    ratio, best = p["ratio_vs_fastest_default_peer"], r["tensorforge_best"]
    acc = p.get("accuracy", {}).get("by_contender", {})

    def top1(kind: str) -> str:
        return f", top-1 {acc[kind]['top1_pct']}%" if kind in acc else ""

    parts = [f"{head}: tensorforge_best [{_label(build)}] {best['samples_per_s']}/s{top1('tensorforge_best')}"
             f" = {ratio['median']}x {p['fastest_default_peer']} (fastest default peer, "
             f"{r[p['fastest_default_peer']]['samples_per_s']}/s; IQR {ratio['iqr'][0]}-{ratio['iqr'][1]}, "
             f"won {ratio['rounds_won']}/{ratio['rounds']}) -> target {TARGET}x "
             f"{'MET' if p['meets_target'] else 'NOT met'}"]
    for q in QUANT_PEERS:
        if f"ratio_vs_{q}" in p:
            qr = p[f"ratio_vs_{q}"]
            text = f"vs {q} {qr['median']}x ({r[q]['samples_per_s']}/s{top1(q)}; won {qr['rounds_won']}/{qr['rounds']})"
            verdict = p.get("faster_at_equal_or_better_accuracy", {}).get(q)
            if verdict is not None:
                text += f" faster at equal or better accuracy: {'yes' if verdict else 'no'}"
            parts.append(text)
        elif q in r:
            parts.append(f"{q}: {r[q].get('error', 'not timed')}")
    if acc:
        parts.append(f"FP32 top-1 {acc.get('onnxruntime', {}).get('top1_pct')}%, openvino_default "
                     f"{acc.get('openvino_default', {}).get('top1_pct')}%")
    elif build.get("accuracy_unknown"):
        parts.append("accuracy unknown (random calibration, no eval data)")
    ov = r.get("openvino_default", {})
    if "facts" in ov and "INFERENCE_PRECISION_HINT" in ov["facts"]:
        parts.append(f"openvino_default computes in {ov['facts']['INFERENCE_PRECISION_HINT']} "
                     f"(max norm err vs FP32 {ov.get('max_norm_err_vs_onnxruntime', float('nan')):.2g})")
    return " | ".join(parts)


def _host() -> dict[str, Any]:
    from importlib import metadata

    from tensorforge.core.host import host_fingerprint, library_versions

    libs = library_versions()
    for dist in ("openvino", "nncf", "torch"):
        try:
            libs[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            libs[dist] = "not installed"
    return {**host_fingerprint(), "libraries": libs}


def _peer_settings() -> dict[str, str]:
    return {
        "onnxruntime": "onnxruntime.InferenceSession(model_bytes, SessionOptions() [log_severity_level=3 only], "
                       "providers=['CPUExecutionProvider']), FP32, the original model",
        "openvino_default": "ov.Core().compile_model(core.read_model(model), 'CPU') with no properties",
        "torch": "tensorforge.backends.torch_convert.convert(model) .eval(), eager, under torch.inference_mode(), "
                 "torch's default thread count",
        "ort_quantize_static": "onnxruntime.quantization.shape_inference.quant_pre_process(model, pre) with its "
                               "defaults, then quantize_static(pre, out, reader) with every default (see "
                               "quantization.<model>.ort_quantize_static.quantize_static_args); run like onnxruntime",
        "ort_quantize_static_u8": "as ort_quantize_static, but with the settings quantize_static's docstring "
                                  "recommends for an x86 CPU: activation_type=QUInt8 (weights QInt8), "
                                  "reduce_range=True only on a CPU without VNNI (see host.isa_flags)",
        "nncf_ptq": "nncf.quantize(ov.Core().read_model(model), nncf.Dataset(items)) with every default; "
                    "ov.save_model(q, xml, compress_to_fp16=False); compile_model(read_model(xml), 'CPU') with no "
                    "properties",
        "calibration": "zoo models: the 64 seeded N(0,1) samples of tensorforge's calibration='random' "
                       "(4 batches of 16, seeds 100-103), one item per sample; mnist_cnn: the mnist5k calibration "
                       "split (500 images), one item per sample",
    }


def _model_points(model: str, onnx_path: str | None, tmp: Path, args: argparse.Namespace,
                  doc: dict[str, Any]) -> None:
    """Quantize the peers once, then for each batch: build tensorforge_best, time (and score) everyone."""
    import onnx

    from tensorforge.core.specs import io_specs, random_inputs
    from tensorforge.models import zoo
    from tensorforge.models.accuracy_data import accuracy_data

    trained = onnx_path is not None
    if onnx_path is None:
        onnx_path = str(tmp / f"{model}.onnx")
        onnx.save(zoo.build(model), onnx_path)
    proto = onnx.load(onnx_path)
    specs_in = io_specs(proto)[0]
    items = _per_sample(accuracy_data("mnist5k", proto).calibration) if trained else _random_calibration(specs_in)
    log(f"{model}: quantizing with onnxruntime.quantization and nncf ({len(items)} calibration samples) ...")
    quant = call_in_process(_quantize_peers, onnx_path, items, str(tmp), model, doc["host"]["isa_flags"])
    doc["quantization"][model] = quant
    for batch in [int(b) for b in args.batches.split(",")]:
        path = str(tmp / f"{model}_b{batch}.tfe")
        log(f"{model} b{batch}: building tensorforge_best (budget {args.optimize_budget:.0f} s) ...")
        try:
            build = call_in_process(_build_best, model, path, batch, args.optimize_budget,
                                    "mnist5k" if trained else "random", "mnist5k" if trained else None,
                                    "1.0" if trained else None)
            log(f"  chosen: {_label(build)} (build {build['build_s']} s; front: {build['front']})")
        except RuntimeError as exc:
            build = {"error": str(exc)}
            log(f"  build failed: {str(exc).splitlines()[0]}")
        spec = {"model_path": onnx_path, "engine_path": path, **{q: quant[q].get("path") for q in QUANT_PEERS}}
        specs = {k: spec for k in CONTENDERS}
        for k, failed in [("tensorforge_best", build)] + [(q, quant[q]) for q in QUANT_PEERS]:
            if "error" in failed:
                specs[k] = {"error": f"{'build' if k == 'tensorforge_best' else 'quantization'} failed: "
                                     + failed["error"].splitlines()[0]}
        if trained:
            test = accuracy_data("mnist5k", proto, batch=batch).test
            feeds = test.batches[0]                   # the first B real test images
        else:
            test, feeds = None, random_inputs(specs_in, batch, seed=batch)
        doc["points"].append(_point(model, batch, specs, build, feeds, args, test))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="resnet50,mobilenet_v2", help="zoo models for the speed part")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--round-s", type=float, default=0.4)
    ap.add_argument("--optimize-budget", type=float, default=60.0, help="tune_budget_s of each tensorforge build")
    ap.add_argument("--no-speed", action="store_true", help="skip the zoo models")
    ap.add_argument("--no-accuracy", action="store_true", help="skip mnist_cnn on real data")
    ap.add_argument("--smoke", action="store_true", help="tiny_cnn, 3 short rounds, small build budget")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    if args.smoke:
        args.models, args.rounds, args.round_s, args.optimize_budget = "tiny_cnn", 3, 0.15, 10.0

    from tensorforge.models import datasets

    t0 = time.perf_counter()
    doc: dict[str, Any] = {
        "schema": "tensorforge.best-engine-vs-peers/1", "host": _host(),
        "method": {"rounds": args.rounds, "round_s": args.round_s, "batches": args.batches,
                   "optimize_budget_s": args.optimize_budget, "smoke": args.smoke,
                   "isolation": "one process per contender, round-robin, idle contenders SIGSTOPped",
                   "ratios": "paired round by round; target: tensorforge_best / fastest default peer >= "
                             f"{TARGET} (median)"},
        "peer_settings": _peer_settings(), "quantization": {}, "points": []}
    jobs = [] if args.no_speed else [(m, None) for m in args.models.split(",")]
    if not args.no_accuracy:
        jobs.append((TRAINED, datasets.trained_model(TRAINED)))
    with tempfile.TemporaryDirectory(prefix="bevp-") as tmp:
        for model, onnx_path in jobs:
            _model_points(model, onnx_path, Path(tmp), args, doc)
    doc["summary"] = [p["summary"] for p in doc["points"]]
    doc["wall_s"] = round(time.perf_counter() - t0, 1)
    return emit(doc, args.json)


if __name__ == "__main__":
    sys.exit(main())
