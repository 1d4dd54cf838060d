"""BERT-base (zoo ``bert_base``, random N(0, 0.02) weights) on the CPU: TensorForge's tuned engine, FP32 and INT8
within the accuracy guard, against ONNX Runtime (plain and with its transformer optimizer), OpenVINO and torch.

    python benchmarks/bert_vs_peers.py [--batches 1,8] [--seq 128] [--rounds 3] [--round-s 0.5]
        [--tune-budget 0] [--no-torch-compile] [--json FILE]

One run, one JSON document on stdout (progress on stderr). Contenders, each in a process of its own, timed
round-robin with the idle ones SIGSTOPped (``benchmarks/_contenders.py``):

* **tensorforge_fp32**: ``tensorforge.build(bert, path, BuildOptions(max_batch=8))`` — the build's ``auto``
  pipeline (transformer fusions for a transformer) — loaded with ``tensorforge.load``; one build serves both
  batches. ``--tune-budget S`` (> 0) adds ``tune="latency", tune_budget_s=S, tune_cache=False`` (the tuner then
  starts from the portable default pipeline; slow on a loaded 2-core host, hence off by default);
* **tensorforge_int8**: the same with ``precision="int8"``: on a conv-free graph with int64 token inputs the
  ``auto`` INT8 scheme is dynamic (tensorforge/precision/dynamic.py: per-channel weights, per-call activation
  ranges), guarded by ``accuracy_budget="cosine:0.99"`` on 32 held-out seeded token sequences (``eval_data``);
  ``calibration="random"`` only satisfies the build's INT8 precondition — dynamic INT8 reads no ranges;
* **onnxruntime**: a plain default ``InferenceSession`` on the FP32 model (the reference for errors);
* **ort_transformers_fp32**: ``onnxruntime.transformers.optimizer.optimize_model(model, model_type="bert",
  num_heads=12, hidden_size=768)`` (ORT's documented BERT recipe: Attention, SkipLayerNorm, BiasGelu fusions);
* **ort_transformers_int8**: that model through ``quantize_dynamic`` at its defaults (ORT's BERT INT8 recipe);
* **openvino_default**: ``Core().compile_model(model, "CPU")`` with no properties;
* **torch_eager** / **torch_compile**: Hugging Face ``transformers.BertModel`` with the zoo model's exact weights
  (Linear weights transposed from the ONNX MatMul layout), under ``torch.inference_mode()``; the second through
  ``torch.compile`` at its defaults. No INT8 torch peer: ``torch.ao`` dynamic quantization is deprecated.

Per contender: median samples/s over the rounds, their percentiles and noise, call latency, the max normalized
error and the mean cosine of ``last_hidden_state`` against plain ONNX Runtime FP32 on the timed input. Ratios are
paired round by round: tensorforge_fp32 and tensorforge_int8 over each peer; INT8 ÷ FP32 for TensorForge and for
ORT. The CPU model and ISA flags are recorded: without VNNI (AVX2 only) x86 INT8 GEMMs run ``vpmaddubsw`` and
gain little over FP32, so no INT8 speed target is asserted here — the number is measured and stated.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from _contenders import call_in_process, emit, log, paired_ratio, round_robin

OURS = ["tensorforge_fp32", "tensorforge_int8"]
PEERS = ["onnxruntime", "ort_transformers_fp32", "ort_transformers_int8", "openvino_default", "torch_eager",
         "torch_compile"]
COSINE_FLOOR = 0.99


# ---- inside the contender processes ------------------------------------------------------------

def _config(name: str) -> Any:
    from tensorforge.models import bert

    return {"bert_base": bert.BERT_BASE, "bert_tiny": bert.BERT_TINY}[name]


def _hf_bert(model_path: str, name: str) -> Any:
    """transformers.BertModel with the zoo model's weights (same names up to ``attention.self``)."""
    import onnx
    import torch
    from onnx import numpy_helper
    from transformers import BertConfig, BertModel

    C = _config(name)
    cfg = BertConfig(vocab_size=C.vocab, hidden_size=C.hidden, num_hidden_layers=C.layers,
                     num_attention_heads=C.heads, intermediate_size=C.intermediate,
                     max_position_embeddings=C.max_positions, type_vocab_size=C.type_vocab, hidden_act="gelu")
    model = BertModel(cfg).eval()
    onnx_w = {t.name: numpy_helper.to_array(t) for t in onnx.load(model_path).graph.initializer}
    state = {}
    for key, param in model.state_dict().items():
        src = onnx_w.get(key.replace("attention.self.", "attention."))
        if src is None:
            raise KeyError(f"no ONNX initializer for {key}")
        if src.ndim == 2 and "embeddings" not in key:
            src = src.T                   # MatMul [in, out] -> Linear [out, in]
        if tuple(src.shape) != tuple(param.shape):
            raise ValueError(f"{key}: ONNX {src.shape} vs torch {tuple(param.shape)}")
        state[key] = torch.from_numpy(np.ascontiguousarray(src))
    model.load_state_dict(state)
    return model


def _make(kind: str, spec: dict[str, Any]) -> tuple[Callable[[Mapping[str, np.ndarray]], Any], int, dict]:
    if kind in OURS:
        import tensorforge

        engine = tensorforge.Engine.load(spec[kind])
        session = tensorforge.load(spec[kind], warn_host=False)
        backend = engine.manifest.backend
        return session.run, 1, {"precision": engine.manifest.precision, "backend": backend.name,
                                "settings": backend.settings.to_dict()}
    if kind.startswith(("onnxruntime", "ort_")):
        from tensorforge.bench.peers import bare_onnxruntime

        path = spec["model_path"] if kind == "onnxruntime" else spec[kind]
        return bare_onnxruntime(Path(path).read_bytes()), 1, {"model": Path(path).name}
    if kind == "openvino_default":
        import openvino as ov

        core = ov.Core()
        compiled = core.compile_model(core.read_model(spec["model_path"]), "CPU")
        request = compiled.create_infer_request()
        facts = {n: str(compiled.get_property(n)) for n in ("INFERENCE_PRECISION_HINT", "NUM_STREAMS",
                                                             "INFERENCE_NUM_THREADS")}
        return (lambda feeds: list(request.infer(feeds).values())), 1, facts
    if kind.startswith("torch_"):
        import torch

        model = _hf_bert(spec["model_path"], spec["model"])
        fn = torch.compile(model) if kind == "torch_compile" else model
        names = ("input_ids", "attention_mask", "token_type_ids")

        def run(feeds: Mapping[str, np.ndarray]) -> Any:
            with torch.inference_mode():
                out = fn(*[torch.from_numpy(feeds[n]) for n in names])
            return [out.last_hidden_state, out.pooler_output]

        return run, 1, {"module": "transformers.BertModel (zoo weights)", "threads": torch.get_num_threads(),
                        "mode": "torch.compile() defaults" if kind == "torch_compile" else "eager",
                        "attn_implementation": model.config._attn_implementation}
    raise ValueError(f"unknown contender {kind!r}")


# ---- one-shot processes ---------------------------------------------------------------------

def _ort_transformers(model_path: str, out_dir: str, name: str) -> dict[str, Any]:
    import logging

    import onnx
    from onnxruntime.quantization import quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    C = _config(name)
    logging.getLogger().setLevel(logging.ERROR)
    out: dict[str, Any] = {}
    t = time.perf_counter()
    opt = optimize_model(model_path, model_type="bert", num_heads=C.heads, hidden_size=C.hidden)
    fp32 = str(Path(out_dir) / "ort_opt_fp32.onnx")
    opt.save_model_to_file(fp32)
    out["ort_transformers_fp32"] = {"path": fp32, "seconds": round(time.perf_counter() - t, 1),
                                    "fused_ops": opt.get_fused_operator_statistics()}
    t = time.perf_counter()
    int8 = str(Path(out_dir) / "ort_opt_int8.onnx")
    try:        # DefaultTensorType: the optimizer's com.microsoft ops defeat the quantizer's shape inference without it
        quantize_dynamic(fp32, int8, extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        out["ort_transformers_int8"] = {"path": int8, "seconds": round(time.perf_counter() - t, 1),
                                        "quantize_dynamic_args": "defaults (per_channel=False, reduce_range=False, "
                                                                 "weight_type=QInt8) + DefaultTensorType=FLOAT"}
    except Exception as exc:
        out["ort_transformers_int8"] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def _build(model_path: str, path: str, precision: str, eval_npz: str, budget_s: float) -> dict[str, Any]:
    import onnx

    import tensorforge

    kwargs: dict[str, Any] = {"max_batch": 8}
    if budget_s > 0:
        kwargs.update(tune="latency", tune_budget_s=budget_s, tune_cache=False)
    if precision == "int8":
        kwargs.update(precision="int8", calibration="random", eval_data=eval_npz,
                      accuracy_budget=f"cosine:{COSINE_FLOOR}")
    t = time.perf_counter()
    engine, report = tensorforge.build(onnx.load(model_path), path, tensorforge.BuildOptions(**kwargs))
    rep = report.to_dict()
    prec = rep.get("precision_report") or {}
    return {"build_options": kwargs, "build_s": round(time.perf_counter() - t, 1),
            "precision": engine.manifest.precision, "backend": engine.manifest.backend.name,
            "settings": engine.manifest.backend.settings.to_dict(), "warnings": list(report.warnings),
            "int8_scheme": prec.get("calibration"), "accuracy": prec.get("accuracy"),
            "passes": [p.get("name") for p in rep.get("passes", []) if p.get("changed", True)]}


# ---- the parent -----------------------------------------------------------------------------

def _cosines(results: dict[str, dict]) -> None:
    from tensorforge.precision.metrics import fidelity

    ref = results.get("onnxruntime", {}).get("predictions")
    for r in results.values():
        pred = r.pop("predictions", None)
        if ref is not None and pred is not None and pred.shape == ref.shape:
            f = fidelity(pred, ref)
            r["cosine_vs_onnxruntime"] = {"mean": round(f.cosine_mean, 6), "min": round(f.cosine_min, 6)}


def _ratios(results: dict[str, dict]) -> dict[str, Any]:
    timed = {k for k, r in results.items() if r.get("round_rates")}
    out: dict[str, Any] = {}
    for ours in OURS:
        for peer in [p for p in OURS + PEERS if p != ours]:
            if ours in timed and peer in timed:
                out[f"{ours}/{peer}"] = paired_ratio(results[ours]["round_rates"], results[peer]["round_rates"])
    for a, b in (("tensorforge_int8", "tensorforge_fp32"), ("ort_transformers_int8", "ort_transformers_fp32")):
        if a in timed and b in timed:
            out[f"int8_over_fp32:{a.split('_')[0]}"] = paired_ratio(results[a]["round_rates"],
                                                                    results[b]["round_rates"])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="bert_base", choices=("bert_base", "bert_tiny"),
                    help="zoo model (bert_tiny: a seconds-long smoke run of the whole script)")
    ap.add_argument("--batches", default="1,8", help="comma-separated batch sizes (default 1,8)")
    ap.add_argument("--seq", type=int, default=128, help="sequence length of every request (default 128)")
    ap.add_argument("--rounds", type=int, default=3, help="round-robin rounds per point (default 3)")
    ap.add_argument("--round-s", type=float, default=0.5, help="seconds per contender per round (>= 2 calls)")
    ap.add_argument("--tune-budget", type=float, default=0.0,
                    help="seconds of tuning per tensorforge build (default 0: a plain build, no tuning)")
    ap.add_argument("--no-torch-compile", action="store_true", help="skip torch.compile (its compile is slow)")
    ap.add_argument("--json", metavar="FILE", help="also write the JSON document here")
    args = ap.parse_args()

    import onnx

    from tensorforge.core.host import host_fingerprint, library_versions
    from tensorforge.models import zoo
    from tensorforge.models.bert import bert_inputs

    t0 = time.perf_counter()
    doc: dict[str, Any] = {"schema": "tensorforge.bert-vs-peers/1", "host": {**host_fingerprint(),
                                                                           "libraries": library_versions()},
                           "model": f"zoo {args.model} (random N(0,0.02) weights), inputs int64 [N, seq], full mask",
                           "method": {"rounds": args.rounds, "round_s": args.round_s, "seq": args.seq,
                                      "isolation": "one process per contender, round-robin, idle ones SIGSTOPped",
                                      "ratios": "paired round by round (median, IQR, rounds won)"},
                           "builds": {}, "points": []}
    with tempfile.TemporaryDirectory(prefix="bert-peers-") as tmp:
        model_path = str(Path(tmp) / f"{args.model}.onnx")
        onnx.save(zoo.build(args.model), model_path)
        vocab = _config(args.model).vocab
        eval_npz = str(Path(tmp) / "eval.npz")
        np.savez(eval_npz, **bert_inputs(32, args.seq, vocab, seed=777))
        log("ORT transformer optimizer + quantize_dynamic ...")
        try:
            ort = call_in_process(_ort_transformers, model_path, tmp, args.model)
        except RuntimeError as exc:
            ort = {k: {"error": str(exc).splitlines()[0]} for k in ("ort_transformers_fp32", "ort_transformers_int8")}
        doc["ort_transformers"] = ort
        spec: dict[str, Any] = {"model_path": model_path, "model": args.model,
                                **{k: v.get("path") for k, v in ort.items()}}
        for ours in OURS:
            path = str(Path(tmp) / f"{ours}.tfe")
            log(f"building {ours} ...")
            try:
                doc["builds"][ours] = call_in_process(_build, model_path, path, ours.split("_")[1], eval_npz,
                                                      args.tune_budget)
                spec[ours] = path
                log(f"  {doc['builds'][ours]['precision']} on {doc['builds'][ours]['backend']} "
                    f"({doc['builds'][ours]['build_s']} s)")
            except RuntimeError as exc:
                doc["builds"][ours] = {"error": str(exc)[-1500:]}
                log(f"  build failed: {str(exc).splitlines()[0]}")
        kinds = [k for k in OURS + PEERS if not (k == "torch_compile" and args.no_torch_compile)]
        specs = {k: spec for k in kinds if (k not in OURS and not k.startswith("ort_")) or spec.get(k)}
        for batch in [int(b) for b in args.batches.split(",")]:
            feeds = bert_inputs(batch, args.seq, vocab, seed=batch)
            log(f"b{batch} s{args.seq}: timing {', '.join(specs)} ({args.rounds} x {args.round_s} s) ...")
            t = time.perf_counter()
            results = round_robin(_make, specs, feeds, batch, args.rounds, args.round_s, predict=[feeds], log=log)
            _cosines(results)
            point = {"batch": batch, "seq": args.seq, "results": results, "ratios": _ratios(results),
                     "timing_s": round(time.perf_counter() - t, 1)}
            point["summary"] = f"b{batch}: " + ", ".join(
                f"{k} {r['samples_per_s']}/s" for k, r in results.items() if "samples_per_s" in r)
            log("  " + point["summary"])
            doc["points"].append(point)
    doc["wall_s"] = round(time.perf_counter() - t0, 1)
    return emit(doc, args.json)


if __name__ == "__main__":
    sys.exit(main())
