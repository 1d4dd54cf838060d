"""The joint search: precision × backend × settings in one search, under an accuracy budget.

TensorRT picks the fastest kernel whose precision keeps accuracy. Across kernel libraries the
same search runs on whole models, in five steps:

1. **Variants** (payloads): the verified FP32 graph; INT8 QDQ graphs per channel and per
   tensor, one per calibration method (minmax, entropy, percentile, mse), all from one
   calibration pass; FP16/BF16 graphs only where ONNX Runtime has kernels for their compute
   ops (on a CPU it has few, and casts around FP32 kernels only cost time: skipped, with why).
2. **Numerics**: a variant as a backend computes it. ONNX Runtime runs every variant;
   OpenVINO turns Q/DQ pairs into its own INT8 kernels, and computes FP32 graphs (and the
   float parts of INT8 ones) in BF16/FP16 where the CPU does so natively
   (``inference_precision``: OpenVINO's own default there); PyTorch runs FP32.
3. **Accuracy**: every numeric runs the held-out data on its own backend and is scored against
   FP32 ONNX Runtime: the top-1 drop with labels, ``1 − mean cosine`` without. With held-out
   data, all INT8 variants are scored on ONNX Runtime, and the most accurate method per
   granularity on the other backends too. When no INT8 variant meets the budget, the accuracy
   guard (:mod:`tensorforge.precision.guard`) keeps the most sensitive layers in FP32, and that
   mixed variant joins. Without held-out data the search says so: fidelity is scored on random
   inputs only (not task accuracy), one calibration method is used, and the result is marked
   ``accuracy_known=False``.
4. **Speed**: variants with the same graph run at the same speed (a calibration method changes
   only scales), so one per graph and numerics is timed: the most accurate within the budget.
   Timing is the tuner's king of the hill (:mod:`.search`): ONNX Runtime FP32 at its defaults
   is the baseline; each numeric's best bet on its backend duels the incumbent; then the
   winner's other settings (threads, hints, streams) are tried. A numeric outside the budget is
   timed last, for the front only: it can never take the incumbent's place.
5. **The front**: each numeric's speed against the baseline (paired ratios, chained) and its
   accuracy loss; the non-dominated points form the Pareto front; the winner is the fastest
   point within the budget.

Example::

    result = optimize(fp32_model, OptimizeOptions("latency", accuracy_budget=AccuracyBudget(1.0),
                                                  calibration=CalibrationSpec(data=calib)), eval_data=held_out)
    result.chosen, result.front, result.model_bytes
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import onnx

from ..backends.base import SessionConfig
from ..backends.registry import get_backend
from ..engine.inputs import io_specs, random_inputs
from ..errors import BackendUnavailable, BuildError, CalibrationError, InputError
from ..precision.api import CalibrationSpec
from ..precision.calibration import CalibrationData, load_calibration_data
from ..precision.collect import collect_histograms, ranges_from_histograms
from ..precision.evaluate import AccuracyBudget, EvalData, Score, check_disjoint, run_model, score
from ..precision.fp16 import convert_float, ensure_node_names, missing_kernels
from ..precision.guard import run_guard
from ..precision.int8 import Int8Options, compute_layers, layer_groups, quantize_qdq
from ..precision.methods import METHODS
from .search import TOLERANCES, Payloads, TuneOptions, tune
from .space import OBJECTIVES, Candidate, backend_space, unusable

__all__ = ["PRECISIONS", "OptimizeOptions", "OptimizeResult", "Point", "optimize", "pareto_front"]

PRECISIONS = ("fp32", "bf16", "fp16", "int8")
GRANULARITIES = ("per-channel", "per-tensor")
BASELINE = "fp32"
_OV_COMPUTE = {"bf16": "bf16", "fp16": "f16"}


@dataclass(frozen=True)
class OptimizeOptions:
    """What to search and for what. ``precisions``/``backends`` narrow the search (None: all);
    ``budget_s`` is the timing budget; ``accuracy_budget`` needs held-out data to mean anything."""

    objective: str = "latency"
    batch: int | None = None
    budget_s: float = 120.0
    device: str = "cpu"
    precisions: tuple[str, ...] | None = None
    backends: tuple[str, ...] | None = None
    accuracy_budget: AccuracyBudget | None = None
    calibration: CalibrationSpec | None = None
    methods: tuple[str, ...] = METHODS
    granularities: tuple[str, ...] = GRANULARITIES
    activations: str = "uint8"
    mixed: bool = True                   # run the guard when no INT8 variant meets the budget
    threads: int | None = None
    seed: int = 0
    cache: Any = None
    isolate: bool = True
    rounds: int = 5

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise InputError(f"unknown objective {self.objective!r}; use one of {', '.join(OBJECTIVES)}")
        bad = [p for p in self.precisions or () if p not in PRECISIONS]
        if bad:
            raise InputError(f"precisions {bad} are not searchable; use some of {', '.join(PRECISIONS)}")
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise InputError(f"calibration methods {bad or '()'}: use some of {', '.join(METHODS)}")
        bad = [g for g in self.granularities if g not in GRANULARITIES]
        if bad or not self.granularities:
            raise InputError(f"granularities {bad or '()'}: use some of {', '.join(GRANULARITIES)}")


@dataclass(frozen=True)
class _Variant:
    name: str
    precision: str          # fp32 | fp16 | bf16 | int8
    graph: str              # variants with the same graph run at the same speed
    model_bytes: bytes = field(repr=False)
    method: str | None = None
    kept_fp32: tuple[str, ...] = ()


@dataclass
class Point:
    """One numeric of the search: a variant as one backend computes it, its accuracy and speed."""

    name: str               # the variant name used by the tuner's candidates ("int8 per-channel entropy @bf16")
    variant: str
    backend: str
    precision: str          # what the kernels compute in: fp32, bf16, fp16, int8, int8+bf16
    options: dict[str, Any]
    score: dict[str, Any] | None = None
    loss: float | None = None            # top-1 drop in points, or 1 − mean cosine without labels
    within_budget: bool | None = None    # None: accuracy unknown (no held-out data) or not scored
    speedup: float | None = None         # samples/s ÷ the baseline's, paired and chained
    noise_pct: float | None = None       # the noise of the duel that timed it (half the range of its ratios)
    throughput_sps: float | None = None  # in its duel (the machine's speed drifts between duels: compare speedup)
    timed_as: str | None = None          # the tuner row whose timing stands for this point
    status: str = ""                     # chosen | front | dominated | outside budget | not timed | failed
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class OptimizeResult:
    objective: str
    batch: int
    accuracy_known: bool
    accuracy_data: str
    loss_metric: str
    budget: str | None
    chosen: Point
    points: list[Point]
    front: list[str]
    model_bytes: bytes = field(repr=False)
    precision: str = "fp32"
    candidate: Candidate | None = None
    tuning: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] | None = None
    kept_fp32_layers: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"objective": self.objective, "batch": self.batch, "accuracy_known": self.accuracy_known,
                "accuracy_data": self.accuracy_data, "loss_metric": self.loss_metric, "budget": self.budget,
                "precision": self.precision, "chosen": self.chosen.to_dict(),
                "front": list(self.front), "points": [p.to_dict() for p in self.points],
                "kept_fp32_layers": list(self.kept_fp32_layers), "calibration": self.calibration,
                "timed_candidates": self.timing_summary(), "tuning": self.tuning, "notes": list(self.notes),
                "elapsed_s": self.elapsed_s}

    def timing_summary(self) -> str:
        """"N candidates (backend × settings × variant): k timed, … skipped (budget)" from the tuner's rows."""
        rows = self.tuning.get("candidates", [])
        counts: dict[str, int] = {}
        for row in rows:
            key = "timed" if row["status"] in ("winner", "baseline", "faster", "slower", "same", "takes over",
                                               "outside budget") else row["status"]
            counts[key] = counts.get(key, 0) + 1
        parts = ", ".join(f"{n} {k}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]))
        seconds = self.tuning.get("elapsed_s", 0)
        return f"{len(rows)} candidates (variant × backend × settings): {parts}; {seconds:.0f} s"


def _dominates(q: Point, p: Point, min_gain: float) -> bool:
    """q is at least as accurate and at least as fast, and better in one beyond the timing noise."""
    assert q.speedup is not None and p.speedup is not None and q.loss is not None and p.loss is not None
    if q.loss > p.loss or q.speedup < p.speedup:
        return False
    margin = max(min_gain, (q.noise_pct or 0.0) / 100, (p.noise_pct or 0.0) / 100)
    return q.loss < p.loss or q.speedup > p.speedup * (1 + margin)


def pareto_front(points: list[Point], min_gain: float = 0.02) -> list[Point]:
    """The points no other point beats on speed (higher, beyond the noise of their duels and
    ``min_gain``) without losing accuracy, or on accuracy without losing speed; fastest first.
    Speeds within the noise are a tie, so a pick the tuner kept over a faster-by-noise rival
    stays on the front."""
    known = [p for p in points if p.speedup is not None and p.loss is not None]
    front = [p for p in known if not any(_dominates(q, p, min_gain) for q in known if q is not p)]
    return sorted(front, key=lambda p: -(p.speedup or 0.0))


def optimize(model: onnx.ModelProto, options: OptimizeOptions = OptimizeOptions(), *,
             eval_data: EvalData | None = None,
             progress: Callable[[str], None] | None = None) -> OptimizeResult:
    """Search precision × backend × settings for ``model`` (the verified FP32 graph); see the module doc."""
    say = progress or (lambda _msg: None)
    t0 = time.perf_counter()
    fp32 = onnx.ModelProto()
    fp32.CopyFrom(model)
    ensure_node_names(fp32)
    inputs = io_specs(fp32)[0]
    notes: list[str] = []
    budget = options.accuracy_budget
    if eval_data is None:
        notes.append("no held-out evaluation data: the search optimizes for speed only; fidelity to FP32 is "
                     "scored on random inputs, which says nothing of task accuracy — accuracy unknown")
        if budget is not None:
            notes.append(f"the accuracy budget ({budget.describe()}) cannot be checked without held-out data")
        budget = None
    elif budget is None:
        budget = AccuracyBudget.default_for(eval_data)
        notes.append(f"no accuracy budget given: using {budget.describe()}")
    judge = eval_data or EvalData([random_inputs(inputs, 4, seed=options.seed + 1000 + i) for i in range(2)],
                                  None, None, "random inputs (no held-out data)")
    wanted = [p for p in PRECISIONS if options.precisions is None or p in options.precisions]
    backends = _backends(options, notes)
    variants, calibration = _variants(fp32, options, wanted, eval_data, say, notes)
    say(f"{len(variants)} model variant(s): " + ", ".join(v.name for v in variants))

    ref = run_model(variants[0].model_bytes, judge, threads=options.threads)
    ref_score = score(ref, ref, judge.labels)
    points = _numerics(variants, backends, wanted, options.device, notes)
    by_name = {v.name: v for v in variants}

    def evaluate(point: Point) -> None:
        v = by_name[point.variant]
        try:
            out = run_model(v.model_bytes, judge, backend=point.backend,
                            config=SessionConfig(options.device, options.threads, point.options))
        except Exception as exc:      # a library that cannot take a variant rules out that point only
            point.status, point.note = "failed", f"could not run: {_short(exc)}"
            return
        got = score(out, ref, judge.labels)
        point.score = got.to_dict()
        point.loss = _loss(got, ref_score)
        if budget is not None:
            point.within_budget, why = budget.check(got, ref_score)
            if not point.within_budget:
                point.status, point.note = "outside budget", why

    say(f"scoring accuracy on {judge.name}")
    _score_points(points, variants, evaluate, eval_data is not None)
    if (budget is not None and options.mixed and "int8" in wanted and eval_data is not None
            and not any(p.within_budget for p in points if by_name[p.variant].precision == "int8")):
        mixed = _mixed(fp32, variants, points, options, eval_data, budget, say, notes)
        if mixed is not None:
            variants.append(mixed)
            by_name[mixed.name] = mixed
            extra = _numerics([mixed], backends, wanted, options.device, notes)
            for p in extra:
                evaluate(p)
            points += extra

    timed, never = _representatives(points, by_name)
    payloads = Payloads(models={p.name: by_name[p.variant].model_bytes for p in points},
                        tolerances={p.name: _tolerance(p.precision) for p in points},
                        never_win=frozenset(), expand=None)
    space = {(p.name, p.backend): p for p in points}
    batch = options.batch or (1 if options.objective == "latency" else 8)
    tried = [Candidate("onnxruntime", variant=BASELINE)]
    for p in timed + never:
        if p.name == BASELINE and p.backend == "onnxruntime":
            continue
        first = backend_space(p.backend, options.objective, options.device, batch=batch)[0]
        tried.append(first.with_variant(p.name, **p.options))
    barred = {(p.name, p.backend) for p in never}
    if "fp32" not in wanted:      # the baseline is timed for the record; a narrowed search never ships it
        barred.add((BASELINE, "onnxruntime"))
    never_labels = frozenset(c.label for c in tried if (c.variant, c.backend) in barred)

    def expand(incumbent: Candidate) -> list[Candidate]:
        if (incumbent.variant, incumbent.backend) in barred:
            return []
        point = space[(incumbent.variant or BASELINE, incumbent.backend)]
        return [c.with_variant(point.name, **point.options)
                for c in backend_space(incumbent.backend, options.objective, options.device, batch=batch)]

    payloads = Payloads(payloads.models, payloads.tolerances, never_labels, expand)
    say(f"timing {len(tried)} candidate(s) for {options.objective} at batch {batch} "
        f"(budget {options.budget_s:g} s), then the winner's settings")
    tuning = tune(variants[0].model_bytes, inputs,
                  TuneOptions(objective=options.objective, batch=batch, budget_s=options.budget_s,
                              device=options.device, precision="fp32", candidates=tuple(tried),
                              cache=options.cache, rounds=options.rounds, seed=options.seed,
                              isolate=options.isolate),
                  progress=say, payloads=payloads)
    winner = tuning.winner_candidate
    chosen = _place(points, by_name, tuning.to_dict()["candidates"], winner)
    front = pareto_front([p for p in points if p.status not in ("failed",)])
    for p in points:
        if p is chosen:
            p.status = "chosen"
        elif p.status in ("", "timed") and p.speedup is not None:
            p.status = "front" if p in front else "dominated"
    chosen_variant = by_name[chosen.variant]
    return OptimizeResult(
        objective=options.objective, batch=batch, accuracy_known=eval_data is not None, accuracy_data=judge.name,
        loss_metric="top-1 drop (points)" if judge.labels is not None else "1 - mean cosine to FP32",
        budget=budget.describe() if budget is not None else None, chosen=chosen, points=points,
        front=[p.name + " @" + p.backend for p in front], model_bytes=chosen_variant.model_bytes,
        precision=chosen.precision, candidate=winner, tuning=tuning.to_dict(), calibration=calibration,
        kept_fp32_layers=list(chosen_variant.kept_fp32), notes=notes, elapsed_s=round(time.perf_counter() - t0, 2))


# -- the steps -----------------------------------------------------------------------------------

def _backends(options: OptimizeOptions, notes: list[str]) -> list[str]:
    out = []
    for name in options.backends or ("onnxruntime", "openvino", "torch"):
        why = unusable(name, options.device)
        if why:
            notes.append(f"backend {name} skipped: {why}")
        else:
            out.append(name)
    if "onnxruntime" not in out:
        raise BackendUnavailable("the joint search needs onnxruntime on the device as its baseline and reference")
    return out


def _variants(fp32: onnx.ModelProto, options: OptimizeOptions, wanted: list[str], eval_data: EvalData | None,
              say: Callable[[str], None], notes: list[str]) -> tuple[list[_Variant], dict[str, Any] | None]:
    out = [_Variant(BASELINE, "fp32", "fp32", fp32.SerializeToString())]
    for low in ("fp16", "bf16"):
        if low not in wanted:
            continue
        model, _ = convert_float(fp32, low)
        lacking = missing_kernels(model) if options.device == "cpu" else []
        if lacking:
            notes.append(f"{low} graph skipped for onnxruntime: its CPU kernels lack {', '.join(lacking)}, which "
                         f"would compute in FP32 between casts (slower than FP32); OpenVINO computes {low} "
                         "natively where the CPU can")
        else:
            out.append(_Variant(low, low, low, model.SerializeToString()))
    calibration: dict[str, Any] | None = None
    if "int8" in wanted:
        spec = options.calibration
        if spec is None:
            notes.append("int8 skipped: no calibration data (give calibration data, or 'random' for speed only)")
            return out, None
        say("calibrating (one pass over the calibration data)")
        t = time.perf_counter()
        data = spec.data if isinstance(spec.data, CalibrationData) else load_calibration_data(
            spec.data, io_specs(fp32)[0], spec.preprocess, batch_size=spec.batch_size, max_samples=spec.max_samples)
        if eval_data is not None:
            check_disjoint(data.batches, eval_data)
        try:
            hists = collect_histograms(fp32, data.batches, num_bins=spec.num_bins, threads=options.threads)
        except CalibrationError:
            raise
        methods = options.methods if eval_data is not None else (spec.method,)
        if eval_data is None and len(options.methods) > 1:
            notes.append(f"one calibration method ({spec.method}) without held-out data: the others differ only "
                         "in accuracy, which cannot be judged here")
        calibration = {"source": data.source, "samples": data.samples, "methods": list(methods),
                       "seconds": round(time.perf_counter() - t, 3), "tensors": len(hists)}
        for gran in options.granularities:
            for method in methods:
                ranges = ranges_from_histograms(hists, method, percentile=spec.percentile,
                                                unsigned=options.activations == "uint8")
                qdq, _ = quantize_qdq(fp32, ranges, Int8Options(per_channel=gran == "per-channel",
                                                                 activations=options.activations))
                out.append(_Variant(f"int8 {gran} {method}", "int8", f"int8 {gran}", qdq.SerializeToString(),
                                    method=method))
    return out, calibration


def _numerics(variants: list[_Variant], backends: list[str], wanted: list[str], device: str,
              notes: list[str]) -> list[Point]:
    native: list[str] = []
    if "openvino" in backends:
        try:
            native = list(getattr(get_backend("openvino"), "native_precisions")(device))
        except Exception as exc:      # an SDK that cannot say: assume FP32 only
            notes.append(f"openvino's native precisions unknown ({_short(exc)}): FP32 and INT8 only")
    lows = [p for p in ("bf16", "fp16") if p in wanted and _OV_COMPUTE[p] in native]
    if "openvino" in backends and not lows and any(p in wanted for p in ("bf16", "fp16")):
        notes.append("openvino bf16/fp16 skipped: this CPU does not compute them natively (OPTIMIZATION_CAPABILITIES "
                     f"{native or ['FP32', 'INT8']}); emulated they run slower than FP32")
    out: list[Point] = []
    for v in variants:
        for backend in backends:
            if backend == "torch" and v.precision != "fp32":
                continue        # the ONNX → torch converter runs float graphs, not Q/DQ ones
            if v.precision in ("fp16", "bf16") and backend != "onnxruntime":
                continue        # the others compute reduced floats from the FP32 graph themselves
            if v.precision != "fp32" or "fp32" in wanted:
                out.append(Point(v.name, v.name, backend, v.precision, {"inference_precision": "f32"}
                                 if backend == "openvino" else {}))
            if backend == "openvino" and v.precision in ("fp32", "int8"):
                for low in lows:
                    label = low if v.precision == "fp32" else f"int8+{low}"
                    out.append(Point(f"{v.name} @{low}", v.name, backend, label,
                                     {"inference_precision": _OV_COMPUTE[low]}))
    if not any(p.name == BASELINE and p.backend == "onnxruntime" for p in out):
        out.insert(0, Point(BASELINE, BASELINE, "onnxruntime", "fp32", {}, note="baseline only (fp32 not asked)",
                            status="baseline only"))
    return out


def _score_points(points: list[Point], variants: list[_Variant], evaluate: Callable[[Point], None],
                  held_out: bool) -> None:
    """Score every point; with held-out data, the INT8 methods beyond the best per graph only on ONNX Runtime."""
    by_name = {v.name: v for v in variants}
    for p in points:
        if p.backend == "onnxruntime" or by_name[p.variant].method is None:
            evaluate(p)
    if not held_out:
        for p in points:
            if p.score is None and p.status != "failed":
                evaluate(p)
        return
    best: dict[str, str] = {}
    losses: dict[str, float] = {}
    for p in points:
        v = by_name[p.variant]
        if p.backend == "onnxruntime" and v.method is not None and p.loss is not None:
            if v.graph not in best or p.loss < losses[v.graph]:
                best[v.graph], losses[v.graph] = p.variant, p.loss
    for p in points:
        v = by_name[p.variant]
        if p.score is None and p.status != "failed":
            if v.method is None or best.get(v.graph) == p.variant:
                evaluate(p)
            elif v.graph in best:
                p.status, p.note = "not scored", (f"scored on onnxruntime only: {best[v.graph]} is the most "
                                                  "accurate method of this graph there")


def _mixed(fp32: onnx.ModelProto, variants: list[_Variant], points: list[Point], options: OptimizeOptions,
           eval_data: EvalData, budget: AccuracyBudget, say: Callable[[str], None],
           notes: list[str]) -> _Variant | None:
    """The guard's mixed-precision variant of the most accurate INT8 variant (on ONNX Runtime)."""
    spec = options.calibration
    assert spec is not None
    ort = [p for p in points if p.backend == "onnxruntime" and p.loss is not None
           and next(v for v in variants if v.name == p.variant).precision == "int8"]
    if not ort:
        return None
    best = min(ort, key=lambda p: p.loss or 0.0)
    base = next(v for v in variants if v.name == best.variant)
    say(f"no INT8 variant within the budget: the guard keeps sensitive layers of {base.name} in FP32")
    data = spec.data if isinstance(spec.data, CalibrationData) else load_calibration_data(
        spec.data, io_specs(fp32)[0], spec.preprocess, batch_size=spec.batch_size, max_samples=spec.max_samples)
    hists = collect_histograms(fp32, data.batches, num_bins=spec.num_bins, threads=options.threads)
    ranges = ranges_from_histograms(hists, base.method or spec.method, percentile=spec.percentile,
                                    unsigned=options.activations == "uint8")
    groups = layer_groups(fp32)
    per_channel = base.graph.endswith("per-channel")

    def convert(keep: frozenset[str]) -> onnx.ModelProto:
        nodes = {n for layer in keep for n in groups.get(layer, [layer])}
        return quantize_qdq(fp32, ranges, Int8Options(per_channel=per_channel, activations=options.activations,
                                                      keep_nodes=tuple(sorted(nodes))))[0]

    result = run_guard(fp32, convert, compute_layers(fp32), eval_data, budget, threads=options.threads)
    if not result.met or result.model is None:
        notes.append(f"mixed precision: {result.message}")
        return None
    kept = tuple(result.kept_fp32)
    notes.append(f"mixed precision from {base.name}: {result.message}")
    return _Variant(f"{base.name} +{len(kept)} fp32", "int8", f"{base.graph} keep {','.join(sorted(kept))}",
                    result.model.SerializeToString(), method=None, kept_fp32=kept)


def _representatives(points: list[Point], by_name: dict[str, _Variant]) -> tuple[list[Point], list[Point]]:
    """(points to time that may win, points timed for the front only): one per graph × backend × numerics."""
    groups: dict[tuple[str, str, str], list[Point]] = {}
    for p in points:
        if p.status in ("failed", "not scored", "baseline only") and not (p.name == BASELINE):
            continue
        key = (by_name[p.variant].graph, p.backend, repr(sorted(p.options.items())))
        groups.setdefault(key, []).append(p)
    timed: list[Point] = []
    never: list[Point] = []
    for members in groups.values():
        ok = [p for p in members if p.within_budget is not False]
        pool = ok or members
        rep = min(pool, key=lambda p: (p.loss if p.loss is not None else 0.0, pool.index(p)))
        rep.status = rep.status if rep.status == "outside budget" else ""
        (timed if ok else never).append(rep)
        for p in members:
            if p is not rep:
                p.timed_as = rep.name
    # likeliest winners first: INT8, then reduced floats, then FP32 on other backends
    rank = {"int8": 0, "int8+bf16": 0, "int8+fp16": 0, "bf16": 1, "fp16": 1, "fp32": 2}
    timed.sort(key=lambda p: rank.get(p.precision, 3))
    return timed, never


def _place(points: list[Point], by_name: dict[str, _Variant], rows: list[dict[str, Any]],
           winner: Candidate) -> Point:
    """Give every point its speed from the tuner's rows (its own, or its graph twin's); return the winner's."""
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        cfg = row["config"]
        key = (cfg.get("variant") or BASELINE, cfg["backend"])
        if row.get("speedup_vs_baseline") is not None and (
                key not in best or row["speedup_vs_baseline"] > best[key]["speedup_vs_baseline"]):
            best[key] = row
    for p in points:
        source = p.name if p.timed_as is None else p.timed_as
        found = best.get((source, p.backend))
        if found is not None:
            row = found
            p.speedup, p.throughput_sps = row["speedup_vs_baseline"], row["throughput_sps"]
            p.noise_pct = row.get("noise_pct")
            if p.timed_as is None:
                p.timed_as = row["candidate"]
            else:
                p.note = (p.note + "; " if p.note else "") + f"same graph as {p.timed_as}: timed once"
                p.timed_as = row["candidate"]
            if p.status == "":
                p.status = "timed"
        elif p.status == "":
            p.status = "not timed"
            own = [r for r in rows if (r["config"].get("variant") or BASELINE) == source
                   and r["config"]["backend"] == p.backend]
            p.note = own[0]["reason"] if own else "budget or an earlier failure left it untimed"
    # (name, backend) names one point: the reduced-float numerics of a backend carry their own names
    chosen = next(p for p in points if p.name == (winner.variant or BASELINE) and p.backend == winner.backend)
    winner_row = next(r for r in rows if r["status"] == "winner")
    chosen.speedup = winner_row["speedup_vs_baseline"]
    chosen.throughput_sps = winner_row["throughput_sps"]
    chosen.noise_pct = winner_row.get("noise_pct")
    chosen.timed_as = winner_row["candidate"]
    return chosen


def _loss(got: Score, ref: Score) -> float:
    if got.top1_pct is not None and ref.top1_pct is not None:
        return round(ref.top1_pct - got.top1_pct, 4)
    return float(1.0 - got.cosine_mean)


def _tolerance(precision: str) -> float:
    if precision.startswith("int8"):
        return TOLERANCES["int8"]
    return TOLERANCES.get(precision, TOLERANCES["fp32"])


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
    return text[:300]


def check_precisions(precisions: tuple[str, ...] | None) -> None:
    """Raise :class:`BuildError` for a precision the joint search cannot take (``best`` is the search)."""
    if precisions and any(p not in PRECISIONS for p in precisions):
        raise BuildError(f"optimize searches precisions among {', '.join(PRECISIONS)}; got {list(precisions)}")

