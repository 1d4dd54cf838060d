"""``tensorforge build MODEL -o model.tfe`` — optimize, verify and write an engine."""

from __future__ import annotations

import argparse
import os

from ..core.precisions import BUILD_PRECISIONS
from ._fmt import console, human_bytes, human_count, para, write_json

HELP = "optimize a model, verify it against the original, and write an engine file (.tfe)"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help=HELP, description=para(
        "Build an engine: import the model, run the graph passes (shape inference, constant "
        "folding, BatchNorm folding, no-op and dead-node removal, fusions), check the optimized "
        "graph against the original on random inputs (FP32 tolerance), and only then write "
        "the .tfe file. Prints a before/after report."),
        epilog="examples:\n  tensorforge build resnet50 -o resnet50.tfe\n"
               "  tensorforge build model.onnx --max-batch 64 -o model.tfe\n"
               "  tensorforge build resnet50 --precision fp16 -o resnet50_fp16.tfe\n"
               "  tensorforge build model.onnx --precision int8 --calib images/ --calib-cache model.calib -o m8.tfe\n"
               "  tensorforge build mnist_cnn --precision int8 --calib mnist5k --accuracy-budget 1.0 -o mnist8.tfe\n"
               "  tensorforge build resnet50 --precision int8 --calib random -o r50_int8.tfe   (speed only)\n"
               "  tensorforge build mnist_cnn --optimize latency --eval-data mnist5k --accuracy-budget 1.0 -o m.tfe\n"
               "  tensorforge build resnet50 --optimize throughput --max-batch 8 -o r50.tfe   (speed only)\n"
               "  tensorforge build mnist_cnn --prune channels:50% --finetune-steps 300 -o m_pruned.tfe",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="an ONNX file or a zoo model name (see `tensorforge zoo list`)")
    p.add_argument("-o", "--output", required=True, help="engine file to write, e.g. model.tfe")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--batch", type=int, help="fix the batch dimension to N (rewrites a model exported at batch 1)")
    g.add_argument("--max-batch", type=int, help="make the batch dimension dynamic, up to N")
    p.add_argument("--pipeline", default="auto",
                   help="graph pass pipeline: auto (default: the portable passes, plus transformer fusions when the "
                        "model is a transformer — ONNX Runtime's Attention/SkipLayerNorm/BiasGelu for onnxruntime, "
                        "standard LayerNormalization/Gelu elsewhere), default, transformer-ort, transformer-portable, "
                        "or none")
    p.add_argument("--threads", type=int, help="intra-op threads recorded for the engine (default: backend's)")
    p.add_argument("--backend", help="execution backend (see `tensorforge backends`; default: onnxruntime, or the "
                                      "one that has --device; with --tune: the tuner's pick)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"),
                   help="where the engine runs: cpu, cuda, or auto = cuda when a backend here can use a GPU "
                        "(default: cpu)")
    p.add_argument("--no-verify", action="store_true", help="skip the numerical check (not recommended)")
    p.add_argument("--verify-data", metavar="FILE.npz", help="sample inputs for the numerical check: an .npz with "
                   "one array per model input, named after it (default: test_data_set_0/input_*.pb beside the "
                   "model, else random inputs in the model's shapes)")
    q = p.add_argument_group("reduced precision")
    q.add_argument("--precision", choices=BUILD_PRECISIONS,
                   help="fp32 (default); fp16/bf16 (checked against FP32, ~1e-2); int8 (QDQ, needs --calib); "
                        "best (the fastest precision that stays within --accuracy-budget, never slower than FP32). "
                        "With --optimize: search only this precision")
    q.add_argument("--calib", metavar="DATA",
                   help="INT8 calibration data: a folder of images, a .npy/.npz file, a bundled dataset "
                        "(mnist5k, digits, sentences), or 'random' for a speed-only build")
    q.add_argument("--calib-method", default="percentile",
                   choices=("minmax", "entropy", "percentile", "mse", "dynamic"),
                   help="how activation ranges are chosen (default: percentile 99.99; entropy = TensorRT's KL; "
                        "dynamic = ranges measured per call, no calibration data — the default for BERT-like "
                        "graphs without Conv, whose INT8 build then needs no --calib)")
    q.add_argument("--calib-cache", metavar="FILE", help="calibration cache: reused when it fits this model and "
                   "data, refused for another model, (re)written otherwise")
    q.add_argument("--calib-histograms", metavar="FILE", help="calibration histograms (written by `tensorforge "
                   "calibrate`, or here after the pass when FILE is missing): every --calib-method reuses them without "
                   "running the model again; refused for another model")
    q.add_argument("--calib-samples", type=int, default=512, metavar="N",
                   help="read at most N calibration samples (default: 512)")
    q.add_argument("--calib-resize", metavar="N|HxW", help="images: resize the shorter side to N (or exactly to "
                   "HxW) before --calib-crop; default: straight to the model's input size")
    q.add_argument("--calib-crop", metavar="N|HxW", help="images: center crop after resizing (e.g. 224)")
    q.add_argument("--calib-scale", type=float, metavar="S", help="multiply values by S first (images default "
                   "to 1/255, arrays to 1)")
    q.add_argument("--calib-mean", metavar="M,M,M", help="per-channel mean to subtract, e.g. 0.485,0.456,0.406")
    q.add_argument("--calib-std", metavar="S,S,S", help="per-channel std to divide by, e.g. 0.229,0.224,0.225")
    q.add_argument("--calib-layout", choices=("NCHW", "NHWC"), help="layout of .npy/.npz calibration arrays "
                   "(default: the model's; NHWC arrays are transposed)")
    q.add_argument("--activations", default="uint8", choices=("uint8", "int8"),
                   help="INT8 activations: uint8 (asymmetric, default) or int8 (symmetric)")
    q.add_argument("--keep-first-last", action="store_true", help="keep the first and last layers in FP32")
    q.add_argument("--accuracy-budget", metavar="BUDGET",
                   help="max top-1 drop in points (e.g. 1.0) or a fidelity floor (cosine:0.99); the most "
                        "sensitive layers fall back to FP32 until it holds on held-out data, else FP32 is kept")
    q.add_argument("--eval-data", metavar="DATA", help="held-out data for the budget: a bundled dataset or an .npz "
                   "with arrays named after the inputs and optional 'labels' (default: --calib's validation split "
                   "when --calib is a bundled dataset)")
    t = p.add_argument_group("auto-tuning (which backend and settings run this model fastest here)")
    t.add_argument("--tune", choices=("latency", "throughput"),
                   help="time every candidate — ONNX Runtime at its defaults and with other thread/executor/graph "
                        "settings, OpenVINO's hints and streams, PyTorch eager and torch.compile — on this machine; "
                        "each must match the reference outputs, and one wins only when faster than the current "
                        "best beyond the measured noise. latency: batch 1, one request at a time; throughput: "
                        "samples/s at the tuning batch, streams allowed. A transformer is also timed on each graph "
                        "pipeline its backend can run (default, transformer-ort, transformer-portable), each "
                        "verified against the original. The engine records the winner")
    t.add_argument("--tune-budget", default="120s", metavar="SECONDS",
                   help="time the tuner may spend, e.g. 60 or 90s or 2m (default 120s); candidates that no longer "
                        "fit are skipped and listed")
    t.add_argument("--tune-batch", type=int, metavar="N",
                   help="batch to tune at (default: 1 for latency; --batch, else min(--max-batch, 8) for throughput)")
    t.add_argument("--tune-backends", metavar="A,B",
                   help="only try these backends, e.g. onnxruntime,openvino (default: all installed)")
    t.add_argument("--tune-cache", metavar="DIR", help="timing cache folder (default: $TENSORFORGE_CACHE_DIR/timing "
                                                       "or ~/.cache/tensorforge/timing)")
    t.add_argument("--no-tune-cache", action="store_true", help="neither read nor write the timing cache")
    o = p.add_argument_group("the joint search (precision × backend × settings, under an accuracy budget)")
    o.add_argument("--optimize", choices=("latency", "throughput"),
                   help="search every precision (FP32; BF16/FP16 where a backend computes them natively; INT8 per "
                        "channel and per tensor with each calibration method; mixed, with sensitive layers kept in "
                        "FP32) on every backend that can run it, with each backend's settings; each candidate is "
                        "scored against FP32 on --eval-data and the fastest within --accuracy-budget wins. Without "
                        "--eval-data it optimizes for speed only and marks the engine 'accuracy unknown'. "
                        "--precision and --backend/--tune-backends narrow it; --tune-budget bounds the timing")
    o.add_argument("--pareto-plot", metavar="PNG", help="with --optimize: also draw speed vs accuracy loss of every "
                   "candidate, the Pareto front and the pick, to this PNG file")
    p.add_argument("--prune", metavar="SPEC", help="prune before the graph passes: channels:30%% (remove 30%% of the "
                   "output channels, ranked by filter L1 norm; :l2 or :bn for another criterion), 2:4 (2 of every 4 "
                   "weights zero) or unstructured:70%% — checked against the original with the same weights masked")
    p.add_argument("--finetune-steps", type=int, metavar="N", help="with --prune channels:R on a shipped trained "
                   "model (mnist_cnn): after pruning, train the pruned model N optimizer steps (Adam, batch 64) on "
                   "its shipped training split to win back accuracy, and report test top-1 before/after; needs "
                   "PyTorch (the torch extra). Off by default")
    p.add_argument("--tokenizer", metavar="FILE", help="store this Hugging Face `tokenizers` tokenizer.json in the "
                   "engine ('auto': the shipped MiniLM's), so `tensorforge serve` also takes raw text: clients send "
                   "a BYTES input named 'text' (one string per row) instead of input_ids/attention_mask; texts are "
                   "truncated to the longest sequence of --shapes")
    p.add_argument("--shapes", action="append", metavar="NAME:MIN,OPT,MAX", help="a shape profile (TensorRT's "
                   "min/opt/max) for the dynamic inputs, e.g. input_ids:1x16,8x128,32x512; inputs sharing its axes "
                   "follow it; several inputs of one profile separated by ';'; repeat --shapes for several profiles. "
                   "The build verifies at each min, opt and max, and the engine refuses shapes outside them "
                   "(default: derived from the model and printed)")
    p.add_argument("--report", metavar="JSON", help="also write the build report as JSON")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also print the build log: time per stage, every pass of the pipeline (including those "
                        "that changed nothing), what verification ran on, the backend settings recorded, the build "
                        "host and library versions (trtexec --verbose)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..engine.build import BuildOptions, build
    from ._checks import check_output

    # -o, --report, --pareto-plot and --threads are checked up front by main (cli/_checks.check_args); a
    # calibration cache that does not exist yet is one more file this build will write
    if args.calib_cache and not _exists(args.calib_cache):
        check_output(args.calib_cache, "--calib-cache")
    if args.tokenizer not in (None, "auto") and not os.path.isfile(args.tokenizer):     # before a long build
        from ..errors import InputError

        raise InputError(f"--tokenizer {args.tokenizer}: no such file; give a `tokenizers` tokenizer.json (the "
                         "model's Hugging Face repo has one) or 'auto' for the shipped MiniLM's")
    options = BuildOptions(calibration_preprocess=_preprocess(args), calibration_samples=args.calib_samples,
                           pipeline=args.pipeline, batch=args.batch, max_batch=args.max_batch, backend=args.backend,
                           device=args.device, threads=args.threads, verify=not args.no_verify,
                           verify_data=args.verify_data,
                           precision=args.precision or "fp32", calibration=args.calib,
                           calibration_method=args.calib_method, optimize=args.optimize,
                           precisions=(args.precision,) if args.optimize and args.precision not in (None, "best")
                           else None,
                           calibration_cache=args.calib_cache, calibration_histograms=args.calib_histograms,
                           activations=args.activations,
                           keep_first_last=args.keep_first_last, accuracy_budget=args.accuracy_budget,
                           eval_data=args.eval_data, tune=args.tune, tune_budget_s=_seconds(args.tune_budget),
                           tune_batch=args.tune_batch, tune_cache=False if args.no_tune_cache else args.tune_cache,
                           tune_backends=tuple(b.strip() for b in args.tune_backends.split(",") if b.strip())
                           if args.tune_backends else None, prune=args.prune, shapes=args.shapes,
                           tokenizer=args.tokenizer)
    if args.pareto_plot and not args.optimize:
        from ..errors import InputError

        raise InputError("--pareto-plot draws the --optimize search: add --optimize latency|throughput")
    from ._checks import library_progress

    tuned = _finetuned(args) if args.finetune_steps is not None else None
    with library_progress(f"build {args.model}"):       # stage lines when piped, a bar on a terminal
        if tuned is None:
            engine, report = build(args.model, args.output, options)
        else:                                          # the pruned, fine-tuned graph: built as a model of its own
            from dataclasses import replace

            engine, report = build(tuned[0], args.output, replace(options, prune=None), name=tuned[1])
    print_report(report)
    if args.verbose:
        print_build_log(engine, report)
    if tuned is not None:
        _print_finetune(tuned[2], tuned[3])
    if args.report:
        write_json(args.report, report.to_dict() if tuned is None else
                   dict(report.to_dict(), pruning=tuned[2], finetune=tuned[3]))
    if args.pareto_plot and report.optimization:
        from ..report.pareto import plot_front

        console.print(f"wrote {plot_front(report.optimization.to_dict(), args.pareto_plot, title=report.name)}")
    return 0


def print_build_log(engine, report) -> None:  # type: ignore[no-untyped-def]
    """The --verbose build log (after the summary): stages, passes, verification, settings, host."""
    m = engine.manifest
    console.print("[bold]build log[/bold]")
    console.print("  stages: " + ", ".join(f"{k} {v:.3f} s" for k, v in report.timings_s.items()))
    console.print(f"  pipeline {m.build.pipeline!r}: {len(report.passes)} pass(es)")
    for p in report.passes:
        what = ", ".join(f"{k} {v}" for k, v in p["changes"].items()) or ("changed" if p["modified"] else "no change")
        console.print(f"    {p['name']}: {what}")
    for note in report.notes:
        console.print(f"  note: {note}")
    v = report.verification
    console.print("  verification: " + ("skipped (--no-verify)" if v is None else
                                        f"batch {v.batch} on {v.data}; reference {v.reference}; max normalized "
                                        f"error {v.max_norm_err:.3g} of {v.tolerance:.0e}"))
    settings = m.backend.settings
    console.print(f"  backend {m.backend.name}: device {settings.device}, threads {settings.threads or 'default'}, "
                  f"options {dict(settings.options) or '{}'}" + (f", streams {settings.streams}" if settings.streams
                                                                 else ""))
    host = dict(m.build.host)
    console.print(f"  host: {host.get('cpu_model', '?')}, {host.get('physical_cores', '?')} cores, ISA "
                  f"{' '.join(host.get('isa_flags', [])) or '?'}")
    console.print("  libraries: " + ", ".join(f"{k} {v}" for k, v in sorted(dict(m.build.libraries).items())))
    for w in report.warnings:
        console.print(f"  warning: {w}")


def _finetuned(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """(fine-tuned model, name, pruning summary, fine-tune record) for --prune channels:R --finetune-steps N."""
    import os

    import onnx

    from ..errors import ConfigError
    from ..prune import parse_prune, prune_model
    from ..prune.finetune import finetune, shipped_training_data

    spec = parse_prune(args.prune)
    if spec is None or spec.kind != "channels":
        raise ConfigError("--finetune-steps fine-tunes a channel-pruned model: add --prune channels:30% (2:4 and "
                          "unstructured sparsity would lose their zeros in training)")
    path, dataset = shipped_training_data(args.model, flag="--finetune-steps")
    pruned = prune_model(onnx.load(path), spec)
    console.print(f"fine-tuning the pruned model {args.finetune_steps} steps on {dataset} (train split) …")
    tuned = finetune(pruned.model, dataset, args.finetune_steps, threads=args.threads, flag="--finetune-steps")
    name = os.path.splitext(os.path.basename(path))[0] + f"_pruned_ft{args.finetune_steps}"
    return tuned.model, name, dict(pruned.summary, speed="channel pruning: a smaller dense graph"), tuned.to_dict()


def _print_finetune(pruning, record) -> None:  # type: ignore[no-untyped-def]
    console.print(f"pruned {pruning['spec']}: parameters {human_count(pruning['params_before'])} → "
                  f"{human_count(pruning['params_after'])}, MACs {human_count(pruning['macs_before'])} → "
                  f"{human_count(pruning['macs_after'])}")
    console.print(f"fine-tuned {record['steps']} steps on {record['dataset']} (train split, "
                  f"{record['seconds']:.0f} s): "
                  f"test top-1 {record['before_top1_pct']:.2f}% after pruning → [bold]{record['after_top1_pct']:.2f}%"
                  "[/bold] after fine-tuning")


def _exists(path: str) -> bool:
    import os

    return os.path.exists(path)


def _seconds(text: str) -> float:
    from ..errors import InputError

    raw = text.strip().lower()
    scale = 60.0 if raw.endswith("m") else 1.0
    try:
        value = float(raw.rstrip("ms")) * scale
    except ValueError:
        value = -1.0
    if value <= 0:
        raise InputError(f"--tune-budget takes seconds like 120, 90s or 2m, got {text!r}")
    return value


def _size(text: str | None, flag: str) -> int | tuple[int, int] | None:
    from ..errors import InputError

    if text is None:
        return None
    try:
        parts = [int(x) for x in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1 and parts[0] > 0:
        return parts[0]
    if len(parts) == 2 and min(parts) > 0:
        return (parts[0], parts[1])
    raise InputError(f"{flag} takes N or HxW with positive integers (e.g. 256 or 224x224), got {text!r}")


def _floats(text: str | None, flag: str) -> tuple[float, ...] | None:
    from ..errors import InputError

    if text is None:
        return None
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise InputError(f"{flag} takes comma-separated numbers like 0.485,0.456,0.406, got {text!r}") from exc


def _preprocess(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from ..precision.calibration import Preprocess

    return Preprocess(resize=_size(args.calib_resize, "--calib-resize"),
                      center_crop=_size(args.calib_crop, "--calib-crop"), scale=args.calib_scale,
                      mean=_floats(args.calib_mean, "--calib-mean"), std=_floats(args.calib_std, "--calib-std"),
                      layout=args.calib_layout)


def print_report(report) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    from .main import command_flags, to_flags

    b, a = report.before, report.after
    console.print(f"[bold]{report.name}[/bold] from {report.source}")
    flags = command_flags("build")     # the library's notes name parameters; show the flags
    for note in report.notes:
        console.print(f"  note: {to_flags(note, flags)}")
    table = Table(title="graph before → after")
    table.add_column("")
    table.add_column("before", justify="right")
    table.add_column("after", justify="right")
    table.add_row("nodes", str(b.nodes), str(a.nodes))
    table.add_row("parameters", human_count(b.params), human_count(a.params))
    table.add_row("MACs / sample", human_count(b.macs_per_sample), human_count(a.macs_per_sample))
    for op in sorted(set(b.ops) | set(a.ops), key=lambda o: (-b.ops.get(o, 0), o)):
        if b.ops.get(op, 0) != a.ops.get(op, 0) or op in ("Conv", "Gemm"):
            table.add_row(f"  {op}", str(b.ops.get(op, 0)), str(a.ops.get(op, 0)))
    console.print(table)
    changed = [p for p in report.passes if p["modified"]]
    if changed:
        console.print("passes that changed the graph: " + "; ".join(
            f"{p['name']} ({', '.join(f'{k} {v}' for k, v in p['changes'].items()) or 'changed'})" for p in changed))
    v = report.verification
    if v is not None:
        console.print(f"verified at batch {v.batch} against {v.reference}: max abs error {v.max_abs_err:.2e}, "
                      f"max normalized error {v.max_norm_err:.2e} (tolerance {v.tolerance:.0e}) — "
                      + ("[green]passed[/green]" if v.passed else "[red]FAILED[/red]"))
        for name, what in v.nonfinite.items():
            console.print(f"[yellow]warning:[/yellow] output {name!r}: {what} — check the model and its inputs")
    if report.pruning:
        pr = report.pruning
        console.print(f"pruned {pr['spec']}: parameters {human_count(pr['params_before'])} → "
                      f"{human_count(pr['params_after'])}, MACs {human_count(pr['macs_before'])} → "
                      f"{human_count(pr['macs_after'])}" + (f", {pr['sparsity']:.0%} of {pr['layers']} layers' weights "
                                                           "zero" if "sparsity" in pr else ""))
        if pr.get("guard"):
            console.print(f"  {to_flags(pr['guard']['message'], flags)}")
        console.print(f"  {pr['speed']}")
    _print_precision(report)
    if report.optimization is None:
        _print_tuning(report)
    else:
        from ._optimize_fmt import print_optimization

        print_optimization(report)
    if report.output:
        size = human_bytes(report.engine_bytes)
        console.print(f"wrote {report.output} ({size}) in {report.timings_s['total']:.1f} s")


def _print_precision(report) -> None:  # type: ignore[no-untyped-def]
    rep = report.precision_report
    if rep is None:
        return
    asked = rep["requested"]
    console.print(f"precision: {asked} → [bold]{report.precision}[/bold]"
                  + (f" ({len(rep['kept_fp32_layers'])} layer(s) kept in FP32)" if rep["kept_fp32_layers"] else ""))
    if rep.get("calibration"):
        cal = rep["calibration"]
        if cal.get("scheme") == "dynamic":
            console.print(f"  dynamic INT8: per-channel INT8 weights, activation ranges measured per call, no "
                          f"calibration data ({cal.get('why', '')})")
        else:
            console.print(f"  calibration: {cal.get('method')} on {cal.get('samples')} samples from {cal.get('source')}"
                          + (f", cache {cal['cache']}" if cal.get("cache") else "")
                          + (f", histograms {cal['histograms']} ({cal.get('histograms_path')})"
                             if cal.get("histograms") else ""))
    if rep.get("kept_fp32_ops"):
        kept = rep["kept_fp32_ops"]
        console.print(f"  kept in FP32 for correctness: {len(kept)} node(s) — " + "; ".join(
            f"{n} ({why})" for n, why in list(kept.items())[:5]) + (" …" if len(kept) > 5 else ""))
    acc = rep.get("accuracy")
    if acc:
        console.print(f"  accuracy ({acc.get('data')}): {acc.get('message')}")
    for c in rep.get("candidates", []):
        console.print(f"  candidate {c['precision']}: {c['note']}")
    check = report.precision_check
    if check and "max_norm_err" in check:
        console.print(f"  checked against {check['against']}: max normalized error {check['max_norm_err']:.2e} "
                      f"(tolerance {check['tolerance']:.0e}) — " + ("[green]passed[/green]" if check["passed"]
                                                                     else "[red]FAILED[/red]"))
    for note in rep.get("notes", []):
        if acc and note == acc.get("message"):
            continue
        console.print(f"  note: {note}")
    for w in report.warnings:
        console.print(f"[yellow]warning:[/yellow] {w}")


def _print_tuning(report) -> None:  # type: ignore[no-untyped-def]
    from rich.markup import escape
    from rich.table import Table

    tuning = report.tuning
    if tuning is None:
        return
    for note in tuning.notes:
        console.print(f"  {note}")
    table = Table(title=f"tuning for {tuning.objective} at batch {tuning.batch} on {tuning.device} "
                        f"({tuning.elapsed_s:.0f} s; outputs checked against {tuning.reference}, "
                        f"tolerance {tuning.tolerance:g})")
    for col, justify in (("candidate", "left"), ("samples/s", "right"), ("p50 ms", "right"),
                         ("× incumbent", "right"), ("max err", "right"), ("verdict", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    styles = {"winner": "bold green", "faster": "green", "rejected": "red", "failed": "red", "skipped": "dim"}
    for row in tuning.candidates:
        verdict = row.status if not row.reason or row.status == "baseline" else f"{row.status}: {row.reason}"
        table.add_row(escape(row.label), _num(row.throughput_sps, ".1f"), _num(row.p50_ms, ".2f"),
                      _num(row.ratio, ".3f"), _num(row.max_err, ".1e"), escape(verdict), style=styles.get(row.status))
    console.print(table)
    console.print(f"backend: [bold]{report.backend}[/bold] {escape(str(report.backend_settings.to_dict()))} — "
                  f"×{tuning.speedup_vs_first:.3f} vs {escape(tuning.candidates[0].label)}")


def _num(value, fmt: str) -> str:  # type: ignore[no-untyped-def]
    return "—" if value is None else format(value, fmt)
