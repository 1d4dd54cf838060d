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

Channel pruning is a dimension of the front too: with held-out data, FP32 graphs with 30 % and
50 % of their channels removed (``prune_ratios``; :mod:`tensorforge.prune`) are scored and timed
beside the precisions, marked ``pruned`` — for the front only: a pruned graph computes another
function, so the search never ships one (``build --prune channels:R`` does, verified).

Example::

    result = optimize(fp32_model, OptimizeOptions("latency", accuracy_budget=AccuracyBudget(1.0),
                                                  calibration=CalibrationSpec(data=calib)), eval_data=held_out)
    result.chosen, result.front, result.model_bytes
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import onnx

from ..backends.base import SessionConfig
from ..core.precisions import PRECISIONS
from ..core.specs import io_specs, random_inputs
from ..core.tolerances import tolerance
from ..errors import BackendUnavailable, InputError
from ..models.accuracy_data import EvalData
from ..precision.api import CalibrationSpec
from ..precision.evaluate import AccuracyBudget, reference_outputs, run_model, score
from ..precision.fp16 import ensure_node_names
from ..precision.methods import METHODS
from ..prune import prune_model
from .front import BASELINE, Point, accuracy_loss, pareto_front, place, representatives
from .search import Payloads, TuneOptions, TuneResult, tune
from .space import OBJECTIVES, Candidate, backend_space, unusable
from .variants import Variant, make_variants, mixed_variant, numerics, short_error

__all__ = ["OptimizeOptions", "OptimizeResult", "Point", "optimize", "pareto_front"]

GRANULARITIES = ("per-channel", "per-tensor")


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
    # channel-pruning ratios searched beside the precisions (FP32 graphs with that share of channels removed):
    # scored on the held-out data and timed for the front only, never shipped (build --prune does that)
    prune_ratios: tuple[float, ...] = (0.3, 0.5)

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
        bad_ratios = [r for r in self.prune_ratios if not 0.0 < r < 1.0]
        if bad_ratios:
            raise InputError(f"prune_ratios {bad_ratios}: each must be in (0, 1), e.g. (0.3, 0.5); () for none")


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
    tuning: TuneResult | None = None
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
                "timed_candidates": self.timing_summary(),
                "tuning": self.tuning.to_dict() if self.tuning is not None else {}, "notes": list(self.notes),
                "elapsed_s": self.elapsed_s}

    def timing_summary(self) -> str:
        """"N candidates (backend × settings × variant): k timed, … skipped (budget)" from the tuner's rows."""
        rows = self.tuning.candidates if self.tuning is not None else ()
        counts: dict[str, int] = {}
        for row in rows:
            key = "timed" if row.status in ("winner", "baseline", "faster", "slower", "same", "takes over",
                                            "outside budget") else row.status
            counts[key] = counts.get(key, 0) + 1
        parts = ", ".join(f"{n} {k}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]))
        seconds = self.tuning.elapsed_s if self.tuning is not None else 0
        return f"{len(rows)} candidates (variant × backend × settings): {parts}; {seconds:.0f} s"


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
    variants, calibration, hists = make_variants(fp32, options, wanted, eval_data, say, notes)
    pruned = pruned_variants(fp32, options.prune_ratios if "fp32" in wanted else (), eval_data is not None, notes)
    variants += pruned
    say(f"{len(variants)} model variant(s): " + ", ".join(v.name for v in variants))

    ref = reference_outputs(variants[0].model_bytes, judge, threads=options.threads)
    ref_score = score(ref, ref, judge.labels)
    points = numerics(variants, backends, wanted, options.device, notes)
    by_name = {v.name: v for v in variants}
    mark_pruned(points, pruned)

    def evaluate(point: Point) -> None:
        v = by_name[point.variant]
        try:
            out = run_model(v.model_bytes, judge, backend=point.backend,
                            config=SessionConfig(options.device, options.threads, point.options))
        except Exception as exc:      # a library that cannot take a variant rules out that point only
            point.status, point.note = "failed", f"could not run: {short_error(exc)}"
            return
        got = score(out, ref, judge.labels)
        point.score = got
        point.loss = accuracy_loss(got, ref_score)
        if budget is not None:
            point.within_budget, why = budget.check(got, ref_score)
            if not point.within_budget:
                point.status, point.note = "outside budget", why

    say(f"scoring accuracy on {judge.name}")
    _score_points(points, variants, evaluate, eval_data is not None)
    if (budget is not None and options.mixed and "int8" in wanted and eval_data is not None
            and not any(p.within_budget for p in points if by_name[p.variant].precision == "int8")):
        mixed = mixed_variant(fp32, variants, points, options, hists, eval_data, budget, say, notes)
        if mixed is not None:
            variants.append(mixed)
            by_name[mixed.name] = mixed
            extra = numerics([mixed], backends, wanted, options.device, notes)
            for p in extra:
                evaluate(p)
            points += extra

    timed, never = representatives(points, {name: v.graph for name, v in by_name.items()})
    space = {(p.name, p.backend): p for p in points}
    batch = options.batch or (1 if options.objective == "latency" else 8)
    tried = [Candidate("onnxruntime", variant=BASELINE)]
    for p in timed + never:
        if p.name == BASELINE and p.backend == "onnxruntime":
            continue
        first = backend_space(p.backend, options.objective, options.device, batch=batch)[0]
        tried.append(first.with_variant(p.name, **p.options))
    barred = {(p.name, p.backend) for p in never} | {(p.name, p.backend) for p in points if p.pruned is not None}
    if "fp32" not in wanted:      # the baseline is timed for the record; a narrowed search never ships it
        barred.add((BASELINE, "onnxruntime"))
    never_labels = frozenset(c.label for c in tried if (c.variant, c.backend) in barred)

    def expand(incumbent: Candidate) -> list[Candidate]:
        if (incumbent.variant, incumbent.backend) in barred:
            return []
        point = space[(incumbent.variant or BASELINE, incumbent.backend)]
        return [c.with_variant(point.name, **point.options)
                for c in backend_space(incumbent.backend, options.objective, options.device, batch=batch)]

    payloads = Payloads(models={p.name: by_name[p.variant].model_bytes for p in points},
                        tolerances={p.name: tolerance(p.precision, across_kernels=True) for p in points},
                        never_win=never_labels, expand=expand)
    say(f"timing {len(tried)} candidate(s) for {options.objective} at batch {batch} "
        f"(budget {options.budget_s:g} s), then the winner's settings")
    tuning = tune(variants[0].model_bytes, inputs,
                  TuneOptions(objective=options.objective, batch=batch, budget_s=options.budget_s,
                              device=options.device, precision="fp32", candidates=tuple(tried),
                              cache=options.cache, rounds=options.rounds, seed=options.seed,
                              isolate=options.isolate),
                  progress=say, payloads=payloads)
    winner = tuning.winner
    chosen = place(points, tuning.candidates, winner)
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
        precision=chosen.precision, candidate=winner, tuning=tuning, calibration=calibration,
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


def _score_points(points: list[Point], variants: list[Variant], evaluate: Callable[[Point], None],
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


def pruned_variants(fp32: onnx.ModelProto, ratios: Sequence[float], held_out: bool, notes: list[str]) -> list[Variant]:
    """FP32 variants of ``fp32`` with ``ratios`` of its channels removed (l1), for the
    front. Needs held-out data: without it a pruned graph's accuracy cost cannot be judged (skipped, said so)."""
    if not ratios:
        return []
    if not held_out:
        notes.append("pruned candidates skipped: their accuracy cost needs held-out data (give eval data)")
        return []
    out = []
    for ratio in ratios:
        result = prune_model(fp32, f"channels:{ratio:g}")
        if result.plan is None or not result.plan.groups:
            notes.append(f"pruned {ratio:.0%} skipped: no prunable channel group in this graph")
            continue
        name = f"fp32 pruned {ratio:.0%}"
        out.append(Variant(name, "fp32", name, result.model.SerializeToString()))
        notes.append(f"{name}: parameters {result.summary['params_before']:,} -> {result.summary['params_after']:,}, "
                     f"MACs {result.summary['macs_before']:,} -> {result.summary['macs_after']:,}; on the front "
                     f"only, never shipped (build --prune channels:{ratio:.0%} ships it, verified)")
    return out


def mark_pruned(points: list[Point], pruned: Sequence[Variant]) -> None:
    """Give each point of a pruned variant its ratio (read back from the variant name)."""
    ratios = {v.name: float(v.name.rsplit(" ", 1)[1].rstrip("%")) / 100 for v in pruned}
    for p in points:
        if p.variant in ratios:
            p.pruned = ratios[p.variant]
