"""The joint search's bookkeeping: its points (a variant as one backend computes it), which to time,
the speed each gets from the tuner's rows, and the Pareto front of speed against accuracy loss."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

from ..precision.evaluate import Score
from .search import CandidateResult
from .space import Candidate

__all__ = ["BASELINE", "Point", "accuracy_loss", "pareto_front", "place", "representatives"]

BASELINE = "fp32"


@dataclass
class Point:
    """One numeric of the search: a variant as one backend computes it, its accuracy and speed."""

    name: str               # the variant name used by the tuner's candidates ("int8 per-channel entropy @bf16")
    variant: str
    backend: str
    precision: str          # what the kernels compute in: fp32, bf16, fp16, int8, int8+bf16
    options: dict[str, Any]
    score: Score | None = None
    loss: float | None = None            # top-1 drop in points, or 1 − mean cosine without labels
    within_budget: bool | None = None    # None: accuracy unknown (no held-out data) or not scored
    speedup: float | None = None         # samples/s ÷ the baseline's, paired and chained
    noise_pct: float | None = None       # the noise of the duel that timed it (half the range of its ratios)
    throughput_sps: float | None = None  # in its duel (the machine's speed drifts between duels: compare speedup)
    timed_as: str | None = None          # the tuner row whose timing stands for this point
    status: str = ""                     # chosen | front | dominated | outside budget | not timed | failed
    note: str = ""
    pruned: float | None = None          # the channel-pruning ratio of its graph (None: not pruned)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def representatives(points: list[Point], graph_of: dict[str, str]) -> tuple[list[Point], list[Point]]:
    """(points to time that may win, points timed for the front only): one per graph × backend × numerics."""
    groups: dict[tuple[str, str, str], list[Point]] = {}
    for p in points:
        if p.status in ("failed", "not scored", "baseline only") and not (p.name == BASELINE):
            continue
        key = (graph_of[p.variant], p.backend, repr(sorted(p.options.items())))
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


def place(points: list[Point], rows: Sequence[CandidateResult], winner: Candidate) -> Point:
    """Give every point its speed from the tuner's rows (its own, or its graph twin's); return the winner's."""
    best: dict[tuple[str, str], CandidateResult] = {}
    for row in rows:
        key = (row.candidate.variant or BASELINE, row.candidate.backend)
        speedup = row.speedup_vs_baseline
        if speedup is not None:
            held = best.get(key)
            if held is None or speedup > (held.speedup_vs_baseline or 0.0):
                best[key] = row
    for p in points:
        source = p.name if p.timed_as is None else p.timed_as
        found = best.get((source, p.backend))
        if found is not None:
            p.speedup, p.throughput_sps, p.noise_pct = found.speedup_vs_baseline, found.throughput_sps, found.noise_pct
            if p.timed_as is not None:
                p.note = (p.note + "; " if p.note else "") + f"same graph as {p.timed_as}: timed once"
            p.timed_as = found.label
            if p.status == "":
                p.status = "timed"
        elif p.status == "":
            p.status = "not timed"
            own = [r for r in rows if (r.candidate.variant or BASELINE) == source and r.candidate.backend == p.backend]
            p.note = own[0].reason if own else "budget or an earlier failure left it untimed"
    # (name, backend) names one point: the reduced-float numerics of a backend carry their own names
    chosen = next(p for p in points if p.name == (winner.variant or BASELINE) and p.backend == winner.backend)
    winner_row = next(r for r in rows if r.status == "winner")
    chosen.speedup, chosen.throughput_sps = winner_row.speedup_vs_baseline, winner_row.throughput_sps
    chosen.noise_pct, chosen.timed_as = winner_row.noise_pct, winner_row.label
    return chosen


def accuracy_loss(got: Score, ref: Score) -> float:
    if got.top1_pct is not None and ref.top1_pct is not None:
        return round(ref.top1_pct - got.top1_pct, 4)
    return float(1.0 - got.cosine_mean)
