"""``tune_serve``: the engine and server settings that sustain the highest load within a latency SLO.

The search is small on purpose — a coordinate search, one axis at a time, each step starting from
the best point so far:

1. engine: each (backend, precision) this host runs natively, built once, at a default server
   configuration (1 instance, max batch 8, 2 ms queue delay);
2. instances × max batch size (1/2/4 instances up to the cores, max batch 1/8/32);
3. queue delay (0, 0.5, 5 ms) and then preferred batch sizes (the max batch).

Every candidate is measured against the real server: the model is loaded, with its settings, into
a running :class:`~tensorforge.serve.InferenceServer` (HTTP on a free loopback port) and driven over
HTTP by the load generator's MLPerf server scenario, whose find-max search
(:func:`~tensorforge.loadgen.findmax.find_max_qps`) gives the highest Poisson rate whose percentile
latency meets the SLO with a VALID verdict (early stopping, no errors). The budget is checked
before each candidate against what one candidate has cost so far; what does not fit is listed as
skipped. The winner is written as a model repository ``OUT/<name>/config.json`` +
``OUT/<name>/1/model.tfe`` that ``tensorforge serve --repository OUT`` loads as is.

>>> result = tensorforge.tune_serve("mlp.onnx", slo="p99=20ms", budget_s=300, output="repo")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import ConfigError, InputError, TensorForgeError

__all__ = ["ServeCandidate", "Trial", "TuneServeResult", "parse_slo", "parse_budget", "tune_serve"]

_SLO = re.compile(r"^\s*(?:p(\d+(?:\.\d+)?)\s*=\s*)?(\d+(?:\.\d+)?)\s*(ms|s|us)?\s*$", re.IGNORECASE)
_BUDGET = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h)?\s*$", re.IGNORECASE)
_UNIT_MS = {"ms": 1.0, "s": 1000.0, "us": 0.001}
_UNIT_S = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
DEFAULT_SERVER = {"instances": 1, "max_batch_size": 8, "max_queue_delay_ms": 2.0}
INSTANCES = (1, 2, 4)
MAX_BATCHES = (1, 8, 32)
DELAYS_MS = (0.0, 0.5, 5.0)
SEARCH_PRECISIONS = ("fp32", "fp16", "bf16")


def parse_slo(text: str) -> tuple[float, float]:
    """``"p99=50ms"`` → (0.99, 50.0): the latency percentile (a fraction) and its bound in ms.

    Accepts ``pNN[.N]=VALUE[ms|s|us]`` or a bare bound (p99). Raises ConfigError naming ``slo``."""
    m = _SLO.match(str(text))
    if m is None:
        raise ConfigError(f"`slo` must look like p99=50ms (a percentile and a latency bound), got {text!r}")
    pct = float(m.group(1)) if m.group(1) else 99.0
    bound = float(m.group(2)) * _UNIT_MS[(m.group(3) or "ms").lower()]
    if not 0 < pct < 100:
        raise ConfigError(f"`slo` percentile must be between p0 and p100 (e.g. p99), got p{m.group(1)}")
    if not bound > 0:
        raise ConfigError(f"`slo` latency bound must be > 0 ms, got {text!r}")
    return pct / 100.0, bound


def parse_budget(text: str | float) -> float:
    """``"10m"`` → 600.0 seconds (``s``, ``m``, ``h``; a bare number is seconds). ConfigError names ``budget``."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        m = _BUDGET.match(str(text))
        if m is None:
            raise ConfigError(f"`budget` must be a duration such as 10m, 90s or 1h, got {text!r}")
        seconds = float(m.group(1)) * _UNIT_S[(m.group(2) or "s").lower()]
    if not (math.isfinite(seconds) and seconds > 0):
        raise ConfigError(f"`budget` must be a positive duration such as 10m, got {text!r}")
    return seconds


@dataclass(frozen=True)
class ServeCandidate:
    """One point of the search: an engine (backend, precision) and the server settings it is served with."""

    backend: str
    precision: str
    instances: int = 1
    max_batch_size: int = 8
    max_queue_delay_ms: float = 2.0
    preferred_batch_sizes: tuple[int, ...] = ()

    @property
    def engine_label(self) -> str:
        return f"{self.backend} {self.precision}"

    def model_config(self) -> dict[str, Any]:
        """The repository ``config.json`` of this candidate (serve/config.py's ModelConfig keys)."""
        return {"instances": self.instances, "max_batch_size": self.max_batch_size,
                "max_queue_delay_ms": self.max_queue_delay_ms,
                "preferred_batch_sizes": list(self.preferred_batch_sizes)}

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "precision": self.precision, **self.model_config()}


@dataclass(frozen=True)
class Trial:
    """What one candidate sustained: the highest VALID rate (None: none met the SLO), its percentile latency."""

    stage: str
    candidate: ServeCandidate
    max_valid_qps: float | None
    percentile_latency_ms: float | None
    valid: bool
    probes: int
    seconds: float
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, **self.candidate.to_dict(), "max_valid_qps": self.max_valid_qps,
                "percentile_latency_ms": self.percentile_latency_ms, "valid": self.valid, "probes": self.probes,
                "seconds": round(self.seconds, 3), "note": self.note}


@dataclass(frozen=True)
class TuneServeResult:
    """Every candidate tried (in order), the best, what the budget left out, and where the winner went."""

    name: str
    percentile: float
    latency_bound_ms: float
    budget_s: float
    trials: tuple[Trial, ...]
    best: Trial | None
    skipped: tuple[tuple[str, str], ...] = ()         # (candidate or stage, why)
    repository: str | None = None
    seconds: float = 0.0
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "slo": {"percentile": self.percentile, "latency_bound_ms": self.latency_bound_ms},
                "budget_s": self.budget_s, "seconds": round(self.seconds, 3),
                "best": self.best.to_dict() if self.best else None, "trials": [t.to_dict() for t in self.trials],
                "skipped": [{"what": w, "why": y} for w, y in self.skipped], "repository": self.repository,
                "notes": list(self.notes)}


def _engine_choices(backends: Sequence[str] | None, precisions: Sequence[str] | None
                    ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """((backend, precision) pairs to build, (label, why skipped)) — only what this host runs natively."""
    from ..backends.registry import get_backend
    from ..tune.space import unusable

    bad = [p for p in precisions or () if p not in SEARCH_PRECISIONS]
    if bad:
        raise ConfigError(f"`precisions` {bad} cannot be searched here; use some of {', '.join(SEARCH_PRECISIONS)} "
                          "(INT8 needs calibration data: build it with `tensorforge build --precision int8`)")
    choices: list[tuple[str, str]] = []
    skipped: list[tuple[str, str]] = []
    for name in backends or ("onnxruntime", "openvino"):
        reason = unusable(name, "cpu")
        if reason:
            skipped.append((name, reason))
            continue
        native = get_backend(name).capabilities("cpu").precisions
        for p in precisions or SEARCH_PRECISIONS:
            if p == "fp32" or p in native:
                choices.append((name, p))
            elif precisions:
                skipped.append((f"{name} {p}", f"{name} has no native {p} kernels on this host"))
    return choices, skipped


class _Search:
    """The running server, the load generator and the budget, shared by every candidate of one search."""

    def __init__(self, scratch: Path, percentile: float, bound_ms: float, deadline: float,
                 clock: Callable[[], float], probe_s: float, max_probes: int, min_queries: int | None) -> None:
        from ..loadgen.scenarios import ScenarioSettings
        from ..serve import InferenceServer, ServerConfig

        self.scratch = scratch
        self.clock = clock
        self.deadline = deadline
        self.max_probes = max_probes
        self.settings = ScenarioSettings(scenario="server", target_qps=1.0, latency_bound_ms=bound_ms,
                                         percentile=percentile, min_duration_s=probe_s, warmup_s=min(0.5, probe_s),
                                         min_query_count=min_queries, drain_timeout_s=max(10.0, 4 * bound_ms / 1000))
        self.server = InferenceServer([], scratch, config=ServerConfig(http_port=0, grpc_port=None, metrics_port=None))
        self.server.start()
        self.costs: list[float] = []
        self.guess_s = (max_probes + 2) * (probe_s + 0.5) + 2.0

    def left(self) -> float:
        return self.deadline - self.clock()

    def affordable(self) -> bool:
        """Whether one more candidate fits: what candidates cost so far (the first: a guess from the probes)."""
        cost = max(self.costs) if self.costs else self.guess_s
        return self.left() >= cost

    def measure(self, stage: str, model: str, cand: ServeCandidate) -> Trial:
        from ..core.progress import report
        from ..loadgen.findmax import find_max_qps
        from ..loadgen.remote import HttpTarget

        t0 = self.clock()
        repo = self.server.repository
        try:
            repo.load(model, json.dumps(cand.model_config()))
            target = HttpTarget(f"http://{self.server.http_url}", model, concurrency=64, max_batch=1)
            try:
                found = find_max_qps(target, self.settings, tolerance=0.1, max_probes=self.max_probes,
                                     capacity_s=0.5, progress=lambda m: report("tune-serve", 0, None, m))
            finally:
                target.close()
        except TensorForgeError as exc:
            return Trial(stage, cand, None, None, False, 0, self.clock() - t0, f"failed: {exc}")
        finally:
            try:
                repo.unload(model)
            except TensorForgeError:
                pass
        seconds = self.clock() - t0
        self.costs.append(seconds)
        best = found.best
        return Trial(stage, cand, found.max_valid_qps, best.percentile_latency_ms if best else None,
                     found.max_valid_qps is not None, len(found.probes), seconds,
                     "" if found.converged else "not converged (probe budget)")

    def close(self) -> None:
        self.server.stop(drain=False)


def _build(source: Any, name: str, backend: str, precision: str, max_batch: int, path: Path) -> Any:
    from ..engine.build import BuildOptions, build

    path.parent.mkdir(parents=True, exist_ok=True)
    engine, _ = build(source, path, BuildOptions(backend=backend, precision=precision, max_batch=max_batch),
                      name=name)
    return engine


def tune_serve(model: Any, *, slo: str | tuple[float, float] = "p99=50ms", budget_s: float | str = 600.0,
               output: str | os.PathLike[str] | None = None, name: str | None = None,
               backends: Sequence[str] | None = None, precisions: Sequence[str] | None = None,
               max_batch: int = 32, probe_s: float = 1.0, max_probes: int = 6, min_queries: int | None = None,
               clock: Callable[[], float] = time.monotonic) -> TuneServeResult:
    """Search engine and server settings for the highest load that meets ``slo``; write the winner to ``output``.

    ``model``: an ONNX file, zoo name or engine file (``.tfe``: its engine is kept, only the server
    settings are searched). ``slo``: ``"p99=50ms"`` or ``(0.99, 50.0)``. ``budget_s``: seconds or
    ``"10m"``; the search stops before a candidate that would not fit (``clock`` measures it —
    inject one in tests). ``backends``/``precisions`` narrow the engine choices (default:
    ONNX Runtime and OpenVINO when installed, each precision it runs natively). ``max_batch``: the
    largest server batch tried (engines are built with it). ``probe_s``/``max_probes``/``min_queries``
    size each find-max (shorter probes: a faster, noisier search). ``output``: a model repository
    folder; the winner becomes ``output/<name>/config.json`` + ``output/<name>/1/model.tfe``.
    Progress goes to :func:`tensorforge.core.progress.report` (stage ``"tune-serve"``).
    """
    from ..core.progress import report
    from ..core.streams import physical_cores
    from ..engine.source import resolve_source

    percentile, bound_ms = slo if isinstance(slo, tuple) else parse_slo(slo)
    budget = parse_budget(budget_s)
    if max_batch < 1 or max_probes < 2 or probe_s <= 0:
        raise ConfigError(f"`max_batch` must be >= 1, `max_probes` >= 2 and `probe_s` > 0; got {max_batch}, "
                          f"{max_probes}, {probe_s}")
    start = clock()
    src = resolve_source(model)         # a missing file or unknown zoo name fails here, before any work
    skipped: list[tuple[str, str]] = []
    notes: list[str] = []
    scratch = Path(tempfile.mkdtemp(prefix="tf-tune-serve-"))
    engines: dict[tuple[str, str], tuple[str, Path, int | None]] = {}   # choice -> (model name, file, max batch)
    try:
        if src.engine is not None:
            eng = src.engine
            choices = [(eng.manifest.backend.name, eng.manifest.precision)]
            name = name or src.name
            dst = scratch / "e0" / "1" / "model.tfe"
            dst.parent.mkdir(parents=True)
            if src.path is None:
                raise InputError("`model`: give the engine's file path (an in-memory Engine cannot be served)")
            shutil.copyfile(src.path, dst)
            engines[choices[0]] = ("e0", dst, _batch_limit(eng))
            notes.append("engine file given: its backend and precision are kept; server settings are searched")
        else:
            choices, skipped_engines = _engine_choices(backends, precisions)
            skipped += skipped_engines
            if not choices:
                raise InputError("no engine choice is usable on this host; "
                                 + "; ".join(f"{w}: {y}" for w, y in skipped_engines))
            name = name or src.name
            for i, (backend, precision) in enumerate(choices):
                report("tune-serve", i, len(choices), f"building {backend} {precision}")
                path = scratch / f"e{i}" / "1" / "model.tfe"
                try:
                    eng = _build(src.model, name, backend, precision, max_batch, path)
                    engines[(backend, precision)] = (f"e{i}", path, _batch_limit(eng))
                except TensorForgeError as exc:
                    skipped.append((f"{backend} {precision}", f"build failed: {exc}"))
        search = _Search(scratch, percentile, bound_ms, start + budget, clock, probe_s, max_probes, min_queries)
        trials: list[Trial] = []
        try:
            _coordinate_search(search, engines, trials, skipped, max_batch, physical_cores())
        finally:
            search.close()
        if not trials and engines:
            notes.append(f"the budget ({budget:g} s) holds no candidate: one takes about {search.guess_s:.0f} s "
                         "(probes + start-up); raise --budget or lower --probe-seconds / --max-probes")
        valid = [t for t in trials if t.valid and t.max_valid_qps is not None]
        best = max(valid, key=lambda t: t.max_valid_qps or 0.0) if valid else None
        repository = None
        if best is not None and output is not None:
            choice = (best.candidate.backend, best.candidate.precision)
            repository = str(_write_repository(Path(output), name, engines[choice][1], best, percentile, bound_ms))
        elif output is not None:
            notes.append(f"no candidate met p{percentile * 100:g} <= {bound_ms:g} ms: nothing was written")
        return TuneServeResult(name=str(name), percentile=percentile, latency_bound_ms=bound_ms, budget_s=budget,
                               trials=tuple(trials), best=best, skipped=tuple(skipped), repository=repository,
                               seconds=clock() - start, notes=tuple(notes))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _batch_limit(engine: Any) -> int | None:
    """The most rows one batch may hold: a static batch axis, else the engine's max batch (None: any)."""
    static = [s.shape[0] for s in engine.inputs if s.shape and isinstance(s.shape[0], int)]
    return int(static[0]) if static else engine.max_batch


def _coordinate_search(search: _Search, engines: dict[tuple[str, str], tuple[str, Path, int | None]],
                       trials: list[Trial], skipped: list[tuple[str, str]], max_batch: int, cores: int) -> None:
    from ..core.progress import report

    tried: set[ServeCandidate] = set()

    def best() -> Trial | None:
        valid = [t for t in trials if t.valid]
        return max(valid, key=lambda t: t.max_valid_qps or 0.0) if valid else (trials[0] if trials else None)

    def fit(cand: ServeCandidate) -> ServeCandidate:
        limit = engines[(cand.backend, cand.precision)][2]
        top = min(max_batch, limit) if limit else max_batch
        return replace(cand, max_batch_size=min(cand.max_batch_size, top),
                       preferred_batch_sizes=tuple(b for b in cand.preferred_batch_sizes if b <= top))

    def run(stage: str, cands: list[ServeCandidate]) -> None:
        for cand in cands:
            cand = fit(cand)
            if cand in tried:
                continue
            if not search.affordable():
                skipped.append((f"{stage}: {_label(cand)}", f"budget: {max(search.left(), 0):.0f} s left"))
                continue
            tried.add(cand)
            report("tune-serve", len(trials), None, f"{stage}: {_label(cand)}")
            trial = search.measure(stage, engines[(cand.backend, cand.precision)][0], cand)
            trials.append(trial)
            rate = f"{trial.max_valid_qps:g} QPS" if trial.max_valid_qps else "no valid rate"
            report("tune-serve", len(trials), None, f"{stage}: {_label(cand)} -> {rate}")

    run("engine", [ServeCandidate(b, p, **DEFAULT_SERVER) for b, p in engines])  # type: ignore[arg-type]
    top = best()
    if top is None or (not top.valid and all(t.note.startswith("failed") for t in trials)):
        return                   # every engine failed outright: the server settings cannot fix that
    c = top.candidate
    run("instances x batch", [replace(c, instances=i, max_batch_size=b) for i in INSTANCES if i <= max(1, cores)
                              for b in MAX_BATCHES])
    c = (best() or top).candidate
    run("queue delay", [replace(c, max_queue_delay_ms=d) for d in DELAYS_MS])
    c = (best() or top).candidate
    if c.max_batch_size > 1:
        run("preferred sizes", [replace(c, preferred_batch_sizes=(c.max_batch_size,))])


def _label(cand: ServeCandidate) -> str:
    pref = f" pref={','.join(map(str, cand.preferred_batch_sizes))}" if cand.preferred_batch_sizes else ""
    return (f"{cand.engine_label} inst={cand.instances} batch={cand.max_batch_size} "
            f"delay={cand.max_queue_delay_ms:g}ms{pref}")


def _write_repository(root: Path, name: str, engine_path: Path, best: Trial, percentile: float,
                      bound_ms: float) -> Path:
    """``root/<name>/config.json`` + ``root/<name>/1/model.tfe`` (+ ``tune-serve.json``, the winner's numbers)."""
    model_dir = root / name
    (model_dir / "1").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(engine_path, model_dir / "1" / "model.tfe")
    (model_dir / "config.json").write_text(json.dumps(best.candidate.model_config(), indent=2) + "\n",
                                           encoding="utf-8")
    record = {"slo": {"percentile": percentile, "latency_bound_ms": bound_ms}, "winner": best.to_dict()}
    (model_dir / "tune-serve.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return root
