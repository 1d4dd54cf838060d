"""The tuner: time every candidate against the incumbent, keep the fastest that gives the right answers.

King of the hill, as a user would do it by hand but without fooling themselves:

1. The reference is ONNX Runtime with its graph optimizations off, on the engine's own
   payload, run once on seeded random inputs at the tuning batch.
2. The first candidate that opens and matches the reference is the incumbent — in the
   default space, ONNX Runtime at its defaults, so the tuned engine is never slower than
   the plain one by construction.
3. Each further candidate is opened (a failure is recorded, never fatal), its outputs are
   checked against the reference within the precision's tolerance (else *rejected*), then
   timed against the incumbent in paired rounds (:func:`.measure.duel`). It takes the
   incumbent's place only when it won every round by more than the noise and ``min_gain``;
   one far behind in each of the first two rounds is dropped there.
4. A candidate whose duel could overrun the budget left is skipped, and says so. The space
   lists each backend's best bet first (:func:`.space.default_space`), so a tight budget is
   spent where a winner is likeliest.

Every candidate's row — its time, its ratio to the incumbent it met, its error, or why it
was rejected or skipped — goes into the result, the engine manifest and the build report.
"""

from __future__ import annotations

import datetime as _dt
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..backends.reference import REFERENCE as BACKEND_REFERENCE
from ..backends.reference import reference_session
from ..backends.registry import get_backend
from ..core import tolerances
from ..core.hashing import sha256
from ..core.progress import report
from ..core.specs import TensorSpec, random_inputs
from ..errors import BackendUnavailable, InputError, TuningError, VerificationError
from .cache import TimingCache, cache_key
from .measure import LocalContender, check_outputs, duel
from .space import OBJECTIVES, Candidate, default_space

REFERENCE = f"{BACKEND_REFERENCE}, the engine's own payload"


@dataclass(frozen=True)
class TuneOptions:
    """How to tune. ``batch`` defaults to 1 for latency and 8 for throughput; ``cache`` is a
    directory, None for the default one, or False for none; ``candidates`` replaces the
    default space (its first entry is the incumbent)."""

    objective: str = "latency"
    batch: int | None = None
    budget_s: float = 120.0
    device: str = "cpu"
    precision: str = "fp32"
    backends: tuple[str, ...] | None = None
    candidates: tuple[Candidate, ...] | None = None
    cache: Any = None
    rounds: int = 5
    min_gain: float = 0.02
    rtol: float | None = None
    seed: int = 0
    isolate: bool = True          # each candidate in a process of its own (tune/worker.py)

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise InputError(f"unknown tuning objective {self.objective!r}; use one of {', '.join(OBJECTIVES)}")
        if self.budget_s <= 0:
            raise InputError(f"the tuning budget must be > 0 seconds, got {self.budget_s}")
        if self.batch is not None and self.batch < 1:
            raise InputError(f"the tuning batch must be >= 1, got {self.batch}")
        if self.rounds < 2:
            raise InputError(f"rounds must be >= 2 for a paired verdict, got {self.rounds}")

    @property
    def tuning_batch(self) -> int:
        return self.batch or (1 if self.objective == "latency" else 8)

    @property
    def tolerance(self) -> float:
        """``rtol``, else the precision's tolerance across kernels (``core.tolerances``): candidates are
        other backends, thread counts and settings computing the same graph."""
        return self.rtol if self.rtol is not None else tolerances.tolerance(self.precision, across_kernels=True)


@dataclass(frozen=True)
class CandidateResult:
    """One candidate's row in the result: what happened to it and, when timed, its speed.

    ``status``: baseline | winner | faster | slower | same | takes over | outside budget | rejected |
    failed | skipped; ``ratio`` is its speed over the incumbent it met (paired rounds, median);
    ``speedup_vs_baseline`` chains those ratios back to the first candidate; ``max_err`` is its
    error against the reference; ``reason`` says why it won, lost, or was not timed."""

    candidate: Candidate
    status: str = ""
    reason: str = ""
    throughput_sps: float | None = None
    p50_ms: float | None = None
    ratio: float | None = None
    noise_pct: float | None = None
    max_err: float | None = None
    setup_s: float | None = None
    speedup_vs_baseline: float | None = None

    @property
    def label(self) -> str:
        return self.candidate.label

    def to_dict(self) -> dict[str, Any]:
        return {"candidate": self.candidate.label, "config": self.candidate.to_dict(), "status": self.status,
                "reason": self.reason, "throughput_sps": self.throughput_sps, "p50_ms": self.p50_ms,
                "ratio": self.ratio, "noise_pct": self.noise_pct, "max_err": self.max_err, "setup_s": self.setup_s,
                "speedup_vs_baseline": self.speedup_vs_baseline}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CandidateResult":
        return cls(candidate=Candidate.from_dict(data["config"]), status=data["status"], reason=data["reason"],
                   throughput_sps=data["throughput_sps"], p50_ms=data["p50_ms"], ratio=data["ratio"],
                   noise_pct=data["noise_pct"], max_err=data["max_err"], setup_s=data["setup_s"],
                   speedup_vs_baseline=data["speedup_vs_baseline"])


@dataclass(frozen=True)
class TuneResult:
    """The tuner's answer: the ``winner`` (the candidate to build with) and every candidate's row.

    Typed throughout; :meth:`to_dict` is the JSON of the timing cache, the engine manifest's
    ``build.tuning`` and the build report (the winner as its config plus ``label``)."""

    objective: str
    batch: int
    device: str
    precision: str
    winner: Candidate
    candidates: tuple[CandidateResult, ...]
    speedup_vs_first: float
    elapsed_s: float
    cached: bool = False
    notes: tuple[str, ...] = ()
    tolerance: float = tolerances.TOLERANCES["fp32-kernels"]
    reference: str = REFERENCE

    @property
    def winner_row(self) -> CandidateResult:
        return next(r for r in self.candidates if r.status == "winner")

    def to_dict(self) -> dict[str, Any]:
        return {"objective": self.objective, "batch": self.batch, "device": self.device, "precision": self.precision,
                "winner": dict(self.winner.to_dict(), label=self.winner.label),
                "candidates": [r.to_dict() for r in self.candidates], "speedup_vs_first": self.speedup_vs_first,
                "elapsed_s": self.elapsed_s, "cached": self.cached, "notes": list(self.notes),
                "tolerance": self.tolerance, "reference": self.reference}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TuneResult":
        return cls(objective=data["objective"], batch=data["batch"], device=data["device"],
                   precision=data["precision"], winner=Candidate.from_dict(data["winner"]),
                   candidates=tuple(CandidateResult.from_dict(r) for r in data["candidates"]),
                   speedup_vs_first=data["speedup_vs_first"], elapsed_s=data["elapsed_s"],
                   cached=bool(data.get("cached", False)), notes=tuple(data.get("notes", ())),
                   tolerance=data.get("tolerance", tolerances.TOLERANCES["fp32-kernels"]),
                   reference=data.get("reference", REFERENCE))


def tune(model_bytes: bytes, inputs: Sequence[TensorSpec], options: TuneOptions = TuneOptions(),
         progress: Callable[[str], None] | None = None, payloads: Payloads | None = None, *,
         clock: Callable[[], float] = time.perf_counter) -> TuneResult:
    """Tune ``model_bytes`` (an engine payload) for ``options.objective``; see the module docstring.

    ``payloads`` holds further model variants that candidates name in ``Candidate.variant``
    (the joint precision search, :mod:`.joint`); ``model_bytes`` is then the baseline's.
    ``clock`` (seconds) accounts the budget only — duels always time on the real clock — so a
    caller can decide which candidates fit independently of how busy the machine is."""
    say = progress or (lambda _msg: None)
    skipped: list[tuple[Candidate, str]] = []
    if options.candidates is not None:
        tried = list(options.candidates)
    else:
        tried, skipped = default_space(options.objective, options.device, batch=options.tuning_batch,
                                       backends=list(options.backends) if options.backends else None)
    versions = _versions(tried)
    cache = None if options.cache is False else TimingCache(options.cache)
    key = cache_key({"model": sha256(model_bytes), "objective": options.objective, "batch": options.tuning_batch,
                     "device": options.device, "precision": options.precision, "budget_s": options.budget_s,
                     "rounds": options.rounds, "min_gain": options.min_gain, "tolerance": options.tolerance,
                     "candidates": [c.label for c in tried],
                     "variants": None if payloads is None else {k: sha256(v) for k, v in payloads.models.items()},
                     "never_win": None if payloads is None else sorted(payloads.never_win),
                     "reference": None if payloads is None or payloads.reference is None
                     else sha256(payloads.reference)})
    notes: list[str] = []
    if cache is not None:
        hit, note = cache.lookup(key, versions)
        notes.append(note)
        if hit is not None:
            try:
                cached = TuneResult.from_dict(hit)
            except (KeyError, TypeError, ValueError) as exc:      # a hand-edited or truncated entry
                notes[-1] = f"timing cache: ignored an unreadable entry ({type(exc).__name__}: {exc}); re-timing"
            else:
                say(note)
                return replace(cached, cached=True, notes=tuple(notes))
    t0 = time.perf_counter()
    result = _search(model_bytes, inputs, options, tried, skipped, say, payloads, clock)
    result = replace(result, elapsed_s=round(time.perf_counter() - t0, 2))
    if cache is not None:
        created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        path = cache.store(key, result.to_dict(), versions, created)
        notes.append(f"timing cache: stored {path}")
    return replace(result, notes=tuple(notes) + result.notes)


def _versions(candidates: list[Candidate]) -> dict[str, str]:
    from .. import __version__

    versions = {"tensorforge": __version__}
    for name in sorted({c.backend for c in candidates}):
        try:
            versions.update(get_backend(name).versions())
        except BackendUnavailable:
            versions[name] = "unavailable"
    return versions


@dataclass(frozen=True)
class Payloads:
    """The model payloads of a joint search, by variant name (``Candidate.variant``), with the
    tolerance each is checked with against its own reference; ``never_win`` names candidates
    (labels) that are timed for the record but may not take the incumbent's place (outside the
    accuracy budget); ``expand(incumbent)`` gives more candidates once the list is done (the
    winner's own settings to explore); ``reference``, when given, is the one model every variant's
    outputs are checked against (graph-pipeline variants of one model), else each variant's own."""

    models: dict[str, bytes]
    tolerances: dict[str, float]
    never_win: frozenset[str] = frozenset()
    expand: Callable[[Candidate], list[Candidate]] | None = None
    reference: bytes | None = None


def _search(model_bytes: bytes, inputs: Sequence[TensorSpec], options: TuneOptions, tried: list[Candidate],
            skipped: list[tuple[Candidate, str]], say: Callable[[str], None],
            payloads: Payloads | None = None, clock: Callable[[], float] = time.perf_counter) -> TuneResult:
    deadline = clock() + options.budget_s
    batch = options.tuning_batch
    feeds = random_inputs(list(inputs), batch, seed=options.seed)
    references: dict[str | None, list[np.ndarray]] = {}

    def payload(cand: Candidate) -> tuple[bytes, float, list[np.ndarray]]:
        """(model bytes, tolerance, reference outputs) of the candidate's variant."""
        key = cand.variant
        data = model_bytes if payloads is None or key is None else payloads.models[key]
        tol = options.tolerance if payloads is None or key is None else payloads.tolerances[key]
        shared = None if payloads is None else payloads.reference
        ref_key = "\0shared reference" if shared is not None else key
        if ref_key not in references:
            ref = reference_session(shared if shared is not None else data)
            references[ref_key] = ref.run(feeds)
            del ref
        return data, tol, references[ref_key]

    tried = list(tried)
    expanded = payloads is None or payloads.expand is None
    # per duel: two warm-ups and 2×rounds rounds; size the rounds so every candidate fits the budget
    round_s = float(np.clip(options.budget_s / max(1, len(tried)) / (2 * options.rounds + 4), 0.05, 0.5))
    warmup_s = round_s
    rows: list[CandidateResult] = []
    incumbent: Any = None
    inc = -1                  # the incumbent's row in ``rows``
    chain = 1.0
    per_call_s = 0.0          # the incumbent's time per call, from the last duel
    contender: Any = None
    i = 0

    def note(status: str, reason: str, **fields: Any) -> None:
        """Settle the current (last) row."""
        rows[-1] = replace(rows[-1], status=status, reason=reason, **fields)

    try:
        while True:
            if i == len(tried) and not expanded and incumbent is not None and payloads is not None:
                assert payloads.expand is not None
                expanded = True
                seen_labels = {c.label for c in tried}
                tried += [c for c in payloads.expand(incumbent.candidate) if c.label not in seen_labels]
            if i >= len(tried):
                break
            cand = tried[i]
            i += 1
            rows.append(CandidateResult(cand))
            left = deadline - clock()
            # a round runs at least one call and a warm-up at least two: at a large batch both outlast round_s
            need = (cand.cost_s + 2 * options.rounds * max(round_s, per_call_s)
                    + 2 * (warmup_s + 3 * per_call_s))
            if incumbent is not None and left < need:
                note("skipped", f"budget: {left:.0f} s left, this candidate needs ~{need:.0f} s")
                continue
            say(f"trying {cand.label}")
            report("tuning", i, len(tried), f"candidate {cand.label}, {max(0.0, left):.0f} s of budget left")
            try:
                data, tol, reference = payload(cand)
                contender = _open(cand, data, options, batch, feeds)
            except Exception as exc:     # any library's failure to build this candidate only rules it out
                note("failed", _short(exc))
                continue
            setup_s = round(contender.setup_s, 3)
            try:
                err = check_outputs(contender, reference).max_norm
            except VerificationError as exc:     # another number of outputs or another shape
                contender.close()
                note("rejected", f"outputs differ from the reference: {exc}", setup_s=setup_s)
                continue
            except Exception as exc:
                contender.close()
                note("failed", f"run failed: {_short(exc)}", setup_s=setup_s)
                continue
            if not err <= tol:
                contender.close()
                note("rejected", f"outputs differ from the reference: error {err:.3g} > {tol:g}",
                     setup_s=setup_s, max_err=err)
                continue
            if incumbent is None:
                incumbent, inc = contender, len(rows) - 1
                note("baseline", "", setup_s=setup_s, max_err=err, ratio=1.0, speedup_vs_baseline=1.0)
                continue
            try:
                d = duel(contender, incumbent, rounds=options.rounds, round_s=round_s, warmup_s=warmup_s,
                         min_gain=options.min_gain)
            except Exception as exc:     # a worker that dies mid-duel rules out its candidate
                contender.close()
                note("failed", f"timing failed: {_short(exc)}", setup_s=setup_s, max_err=err)
                continue
            timed = dict(setup_s=setup_s, max_err=err, ratio=round(d.median_ratio, 4),
                         noise_pct=round(d.noise_pct, 2), throughput_sps=round(float(np.median(d.challenger_rates)), 3),
                         p50_ms=round(d.challenger_p50_ms, 4), speedup_vs_baseline=round(chain * d.median_ratio, 4))
            if rows[inc].throughput_sps is None:
                rows[inc] = replace(rows[inc], throughput_sps=round(float(np.median(d.incumbent_rates)), 3),
                                    p50_ms=round(d.incumbent_p50_ms, 4))
            seen = f"{incumbent.candidate.label} ({np.median(d.incumbent_rates):.1f}/s in this duel)"
            if d.stopped_early:
                seen += f", stopped after {len(d.ratios)} rounds"
            per_call_s = batch * incumbent.candidate.streams / max(float(np.median(d.incumbent_rates)), 1e-9)
            barred = payloads is not None and incumbent.candidate.label in payloads.never_win
            if barred and cand.label not in (payloads.never_win if payloads else ()):
                note("faster" if d.verdict == "faster" else "takes over",
                     f"takes over from {seen} (×{d.median_ratio:.3f}, noise ±{d.noise_pct:.1f}%): "
                     "that one may not be chosen (outside the budget or the asked precisions)", **timed)
                chain *= d.median_ratio
                incumbent.close()
                incumbent, inc = contender, len(rows) - 1
            elif d.verdict == "faster" and payloads is not None and cand.label in payloads.never_win:
                note("outside budget", f"faster than {seen} ×{d.median_ratio:.3f} (noise ±{d.noise_pct:.1f}%), but "
                     "its accuracy is outside the budget: timed for the record, never chosen", **timed)
                contender.close()
            elif d.verdict == "faster":
                note(d.verdict, f"beat {seen} ×{d.median_ratio:.3f} (noise ±{d.noise_pct:.1f}%)", **timed)
                chain *= d.median_ratio
                incumbent.close()
                incumbent, inc = contender, len(rows) - 1
            else:
                note(d.verdict, f"vs {seen}: ×{d.median_ratio:.3f} (noise ±{d.noise_pct:.1f}%)", **timed)
                contender.close()
    except BaseException:       # Ctrl-C or a bug: no worker may be left behind (a stopped one ignores SIGTERM)
        for c in {id(x): x for x in (contender, incumbent) if x is not None}.values():
            c.close()
        raise
    if incumbent is None:
        reasons = "; ".join(f"{r.label}: {r.reason}" for r in rows)
        raise TuningError(f"no candidate ran the model correctly on device {options.device!r}: {reasons}")
    if payloads is not None and incumbent.candidate.label in payloads.never_win:
        incumbent.close()
        raise TuningError("no candidate that may be chosen ran the model correctly in the budget (the others are "
                          "outside the accuracy budget or the asked precisions): "
                          + "; ".join(f"{r.label}: {r.status} {r.reason}" for r in rows))
    rows[inc] = replace(rows[inc], status="winner")
    incumbent.close()
    rows += [CandidateResult(cand, status="skipped", reason=reason) for cand, reason in skipped]
    return TuneResult(objective=options.objective, batch=batch, device=options.device, precision=options.precision,
                      winner=rows[inc].candidate, candidates=tuple(rows), speedup_vs_first=round(chain, 4),
                      elapsed_s=0.0, tolerance=options.tolerance)


def _open(cand: Candidate, model_bytes: bytes, options: TuneOptions, batch: int, feeds: dict[str, np.ndarray]) -> Any:
    if options.isolate:
        from .worker import IsolatedContender

        return IsolatedContender(cand, model_bytes, options.device, batch, feeds)
    return LocalContender(cand, model_bytes, options.device, batch, feeds)


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first[:300]
