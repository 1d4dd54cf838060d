"""A whole load test: one or more target configurations, one mode, one report (what ``tensorforge loadtest`` runs).

Modes, for every configuration (a target string, and for in-process targets one
batcher setting):

* **run** — the scenario once, or once per offered load when several ``target_qps``
  are given (a throughput–latency curve);
* **find-max** — the highest VALID Server load (:func:`.findmax.find_max_qps`);
* **sweep** — for each latency budget, the highest VALID load (:func:`.findmax.latency_sweep`).

With ``harness="mlperf"`` the official LoadGen then runs the same target with the same
settings (for find-max: at the load found) and its verdict is set beside ours.

    >>> report = loadtest([TargetConfig("tiny_mlp")], LoadtestOptions(ScenarioSettings()))  # doctest: +SKIP
    >>> report.configs[0].runs[0].verdict                                                     # doctest: +SKIP
    'VALID'
"""

from __future__ import annotations

import datetime as _dt
import itertools
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..errors import ConfigError, InputError
from .findmax import FindMaxResult, SweepResult, find_max_qps, latency_sweep
from .scenarios import ScenarioSettings, run_scenario
from .targets import Target, open_target
from .verdict import ScenarioResult, summarize

if TYPE_CHECKING:
    from ..serve.batching import BatcherConfig
    from .mlperf import MlperfRun

__all__ = ["TargetConfig", "LoadtestOptions", "ConfigReport", "LoadtestReport", "loadtest", "target_configs"]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class TargetConfig:
    """A target string and, for in-process targets, the batcher settings to put in front of it."""

    spec: str
    batcher: "BatcherConfig | None" = None
    label: str = ""

    @property
    def remote(self) -> bool:
        return self.spec.lower().startswith(("http://", "https://", "grpc://"))

    def name(self) -> str:
        if self.label:
            return self.label
        if self.batcher is None or self.remote:
            return self.spec
        b = self.batcher
        return f"{self.spec} mbs={b.max_batch_size} delay={b.max_queue_delay_ms:g}ms inst={b.instances}"


@dataclass(frozen=True)
class LoadtestOptions:
    settings: ScenarioSettings
    qps: tuple[float, ...] = ()                 # server: several offered loads → one run each
    find_max: bool = False
    sweep_budgets_ms: tuple[float, ...] = ()
    harness: str = "ours"                       # "ours" | "mlperf" (ours, then LoadGen beside it)
    tolerance: float = 0.05
    max_probes: int = 10
    threads: int | None = None
    model: str | None = None
    model_version: str | None = None
    concurrency: int = 64
    max_batch: int | None = None                # remote: samples per request (default: the server's)
    dataset: str | None = None
    mlperf_dir: str = "mlperf"
    inputs: Any = None          # real data instead of random: feeds(batch) -> feed dicts (bench.inputs.read_inputs)

    def __post_init__(self) -> None:
        if self.harness not in ("ours", "mlperf"):
            raise ConfigError(f"`harness` must be 'ours' or 'mlperf', got {self.harness!r}")
        for label, value in (("threads", self.threads), ("concurrency", self.concurrency),
                             ("max_batch", self.max_batch), ("max_probes", self.max_probes)):
            if value is not None and value < 1:
                raise ConfigError(f"`{label}` must be >= 1, got {value}")
        if (self.find_max or self.sweep_budgets_ms) and self.settings.scenario != "server":
            raise ConfigError("find_max=True and sweep_budgets_ms= search the server scenario; set "
                              "scenario=\"server\"")
        if self.find_max and self.sweep_budgets_ms:
            raise ConfigError("give find_max=True (one latency bound) or sweep_budgets_ms= (several budgets), "
                              "not both")
        if self.sweep_budgets_ms and self.harness == "mlperf":
            raise ConfigError("harness=\"mlperf\" runs one setting; use it with a single run or find_max=True, "
                              "not a sweep")
        if self.qps and (self.find_max or self.sweep_budgets_ms):
            raise ConfigError("several `qps` values make a load curve; find_max=True and sweep_budgets_ms= choose "
                              "the loads themselves — give one or the other")

    @property
    def mode(self) -> str:
        return "sweep" if self.sweep_budgets_ms else "find-max" if self.find_max else "run"


@dataclass(frozen=True)
class ConfigReport:
    label: str
    target: dict[str, Any]
    runs: tuple[ScenarioResult, ...] = ()
    find_max: FindMaxResult | None = None
    mlperf: "MlperfRun | None" = None
    comparison: dict[str, Any] | None = None
    batcher_stats: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "target": self.target, "runs": [r.to_dict() for r in self.runs],
                "find_max": self.find_max.to_dict() if self.find_max else None,
                "mlperf": self.mlperf.to_dict() if self.mlperf else None, "comparison": self.comparison,
                "batcher_stats": self.batcher_stats}


@dataclass(frozen=True)
class LoadtestReport:
    mode: str
    options: dict[str, Any]
    configs: tuple[ConfigReport, ...]
    sweep: SweepResult | None = None
    host: dict[str, Any] = field(default_factory=dict)
    started: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "started": self.started, "host": self.host, "options": self.options,
                "configs": [c.to_dict() for c in self.configs],
                "sweep": self.sweep.to_dict() if self.sweep else None}

    def all_runs(self) -> list[tuple[str, ScenarioResult]]:
        return [(c.label, r) for c in self.configs for r in c.runs]


def target_configs(specs: Sequence[str], batch_sizes: Sequence[int] = (), delays_ms: Sequence[float] = (),
                   **batcher: Any) -> list[TargetConfig]:
    """Every target × max batch size × queue delay (batcher settings apply to in-process targets only)."""
    from ..serve.batching import BatcherConfig

    if not specs:
        raise InputError("give at least one target: an engine file, a zoo name, noop, sleep:5ms or a server URL")
    configs = []
    for spec in specs:
        remote = spec.lower().startswith(("http://", "https://", "grpc://"))
        if remote or spec.lower() == "noop":
            configs.append(TargetConfig(spec))
            continue
        sleeping = spec.lower().startswith("sleep:")
        default = BatcherConfig(max_batch_size=1, max_queue_delay_ms=0.0) if sleeping else BatcherConfig()
        for mbs, delay in itertools.product(batch_sizes or [default.max_batch_size],
                                            delays_ms or [default.max_queue_delay_ms]):
            fields = {**{k: v for k, v in batcher.items() if v is not None}, "max_batch_size": int(mbs),
                      "max_queue_delay_ms": float(delay)}
            configs.append(TargetConfig(spec, replace(default, **fields)))
    return configs


def _open(config: TargetConfig, o: LoadtestOptions, seed: int) -> Target:
    return open_target(config.spec, config=config.batcher, threads=o.threads, model=o.model, version=o.model_version,
                       concurrency=o.concurrency, max_batch=o.max_batch, seed=seed, inputs=o.inputs)


def loadtest(configs: Sequence[TargetConfig], options: LoadtestOptions, progress: Progress | None = None,
             outdir: str | Path = "loadtest-results",
             on_result: Callable[[str, dict[str, Any]], None] | None = None) -> LoadtestReport:
    """Run the load test described by ``options`` on every configuration; LoadGen logs go under ``outdir``.

    ``on_result(config_label, row)`` is called as each result comes in — each find-max probe
    (:meth:`Probe.to_dict`) and each plain run (:meth:`ScenarioResult.to_dict`) — so a caller can keep
    partial results when the run is interrupted."""
    from ..core.host import host_fingerprint

    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    say = progress or (lambda message: None)
    s = options.settings
    sweep = None
    reports: list[ConfigReport] = []
    if options.mode == "sweep":
        makers = [(c.name(), (lambda c=c: _open(c, options, s.seed))) for c in configs]
        sweep = latency_sweep(makers, options.sweep_budgets_ms, s, tolerance=options.tolerance,
                              max_probes=options.max_probes, progress=say,
                              on_probe=None if on_result is None else
                              (lambda label, b, p: on_result(label, {"kind": "probe", "budget_ms": b, **p.to_dict()})))
        for c in configs:
            found = sweep.details.get(c.name(), [])
            best = [r.best for r in found if r.best is not None]
            reports.append(ConfigReport(label=c.name(), target={"spec": c.spec, "batcher": c.batcher.to_dict()
                                                                if c.batcher else None}, runs=tuple(best)))
    else:
        for index, c in enumerate(configs):
            reports.append(_one_config(c, options, say, Path(outdir) / options.mlperf_dir / f"config{index}",
                                       on_result))
    return LoadtestReport(mode=options.mode, options=_options_dict(options), configs=tuple(reports), sweep=sweep,
                          host=host_fingerprint(), started=started)


def _one_config(c: TargetConfig, o: LoadtestOptions, say: Progress, mlperf_dir: Path,
                on_result: Callable[[str, dict[str, Any]], None] | None = None) -> ConfigReport:
    s = o.settings
    keep = on_result or (lambda label, row: None)
    target = _open(c, o, s.seed)
    try:
        desc = target.describe()
        runs: list[ScenarioResult] = []
        found = None
        if o.find_max:
            say(f"{c.name()}: find-max")
            found = find_max_qps(target, s, tolerance=o.tolerance, max_probes=o.max_probes, start_qps=None,
                                 progress=lambda m: say(f"{c.name()}: {m}"),
                                 on_probe=lambda p: keep(c.name(), {"kind": "probe", **p.to_dict()}))
            runs = list(found.results)
        else:
            for q in o.qps or (s.target_qps,):
                run_settings = replace(s, target_qps=q) if q is not None else s
                say(f"{c.name()}: {s.scenario}" + (f" at {q:g} QPS" if q else ""))
                runs.append(summarize(run_scenario(target, run_settings), desc))
                keep(c.name(), {"kind": "run", **runs[-1].to_dict()})
        padding = getattr(target, "padding_stats", lambda: None)()
        if padding is not None:              # the counts after the runs (describe() came before them)
            desc = {**desc, "padding": padding}
        mlperf = comparison = None
        if o.harness == "mlperf":
            from .mlperf import compare, load_dataset, run_mlperf

            ours = found.best if found is not None else runs[-1]
            if ours is None:
                raise InputError("find-max found no valid load, so there is no setting to hand to LoadGen; "
                                 "raise `latency_bound_ms`")
            lg_settings = replace(s, target_qps=ours.settings.get("target_qps"))
            dataset = None
            if o.dataset:
                specs = getattr(target, "input_specs", None)
                if specs is None or target.kind in ("http", "grpc"):
                    raise InputError("`dataset` (LoadGen accuracy mode) needs an in-process target: its "
                                     "outputs are read back to score top-1")
                dataset = load_dataset(o.dataset, [sp.name for sp in specs])
            say(f"{c.name()}: MLPerf LoadGen")
            mlperf = run_mlperf(target, lg_settings, mlperf_dir, dataset=dataset)
            comparison = compare(ours, mlperf.summary)
        stats_fn = getattr(target, "batcher_stats", None)
        return ConfigReport(label=c.name(), target=desc, runs=tuple(runs), find_max=found, mlperf=mlperf,
                            comparison=comparison, batcher_stats=stats_fn() if stats_fn else None)
    finally:
        target.close()


def _options_dict(o: LoadtestOptions) -> dict[str, Any]:
    d = {k: v for k, v in o.__dict__.items() if k != "settings"}
    d["settings"] = o.settings.to_dict()
    d["inputs"] = o.inputs.describe() if o.inputs is not None else "random (seeded)"
    d["mode"] = o.mode
    return d
