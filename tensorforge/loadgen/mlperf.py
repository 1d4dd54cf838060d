"""The official MLPerf LoadGen (``mlcommons-loadgen``) driving the same target, and its verdict beside ours.

LoadGen is the reference implementation of the scenarios this package re-implements;
running both on one target with the same settings checks our arithmetic against
theirs. The adapter is a thin SUT + QSL:

* **QSL** — samples are the target's pre-made random inputs (or the rows of a
  ``--dataset`` file); loading and unloading them is a no-op.
* **SUT** — ``issue_queries`` hands each query to the target exactly as our generator
  does (SingleStream/Server: one request per sample; MultiStream: one request of all
  the query's samples, split only beyond the target's max batch; Offline: requests of
  the target's max batch fed by a helper thread with bounded outstanding requests),
  and each completion calls ``QuerySamplesComplete`` from the target's own thread.

Settings map one to one (scenario, min/max duration and query count, target QPS,
latency bound and percentile, samples per query, seeds). LoadGen sizes SingleStream,
MultiStream and Offline runs from an *expected* latency or rate; we measure it first
with a short warm-up. LoadGen writes ``mlperf_log_summary.txt`` and
``mlperf_log_detail.txt`` (and the accuracy log) into the output directory;
:func:`parse_summary` reads the summary back.
"""

from __future__ import annotations

import math
import queue
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..core.stats import percentile, percentile_index
from ..errors import InputError, TensorForgeError
from .scenarios import ScenarioSettings, measure_capacity
from .targets import Target

__all__ = ["MlperfSummary", "MlperfRun", "parse_summary", "run_mlperf", "compare", "load_dataset"]

_LG_SCENARIO = {"single-stream": "SingleStream", "multi-stream": "MultiStream", "server": "Server",
                "offline": "Offline"}
_QSL_SIZE = 1024


@dataclass(frozen=True)
class MlperfSummary:
    """What LoadGen's ``mlperf_log_summary.txt`` says."""

    result: str                        # VALID | INVALID
    scenario: str
    mode: str
    metric_name: str
    metric_value: float | None         # ms for SS/MS (early-stopping estimate), QPS/ samples/s otherwise
    metric_unit: str
    percentile_latency_ms: float | None       # at the scenario's target percentile
    early_stopping_estimate_ms: float | None
    percentiles_ms: dict[str, float]          # "50.00" … "99.90" → ms (per query for MultiStream)
    fields: dict[str, str]
    early_stopping_text: str
    recommendations: str

    @property
    def valid(self) -> bool:
        return self.result == "VALID"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_LINE = re.compile(r"^\s*([^:\n]+?)\s*:\s*(.+?)\s*$")
_ES = re.compile(r"Early stopping (\d+(?:\.\d+)?)th percentile estimate: (\d+)")


def parse_summary(text: str) -> MlperfSummary:
    """Parse LoadGen's summary text (the ``key : value`` lines, early-stopping lines, recommendations)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if m and not line.lstrip().startswith("*"):
            fields.setdefault(m.group(1).strip(), m.group(2).strip())
    result = fields.get("Result is")
    if result not in ("VALID", "INVALID"):
        raise TensorForgeError("not an MLPerf LoadGen summary: no 'Result is : VALID|INVALID' line")
    scenario = fields.get("Scenario", "")
    es_section = text.split("Early Stopping Result:", 1)[1].split("=====", 1)[0] if "Early Stopping Result:" in text \
        else ""
    recs = text.split("Recommendations:", 1)[1].split("Early Stopping Result:", 1)[0] if "Recommendations:" in text \
        else ""
    pct_latency = None
    percentiles: dict[str, float] = {}
    for key, text_value in fields.items():
        m = re.fullmatch(r"(\d+(?:\.\d+)?)(th)? percentile latency \(ns\)", key)
        number = _float(text_value)
        if m and number is not None:
            if m.group(2):
                pct_latency = number / 1e6
            else:
                percentiles[f"{float(m.group(1)):.2f}"] = number / 1e6
    es = _ES.search(es_section)
    es_ms = float(es.group(2)) / 1e6 if es else None
    value: float | None
    if scenario == "Offline":
        name, unit, value = "samples per second", "samples/s", _float(fields.get("Samples per second"))
    elif scenario == "Server":
        name, unit = "completed samples per second", "samples/s"
        value = _float(fields.get("Completed samples per second") or fields.get("Scheduled samples per second"))
    else:
        name, unit = "percentile latency (early-stopping estimate)", "ms"
        value = es_ms if es_ms is not None else pct_latency
    return MlperfSummary(result=result, scenario=scenario, mode=fields.get("Mode", ""), metric_name=name,
                         metric_value=value, metric_unit=unit, percentile_latency_ms=pct_latency,
                         early_stopping_estimate_ms=es_ms, percentiles_ms=percentiles, fields=fields,
                         early_stopping_text=" ".join(es_section.split()), recommendations=" ".join(recs.split()))


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class MlperfRun:
    summary: MlperfSummary
    outdir: str
    settings: dict[str, Any]
    errors: int
    accuracy: dict[str, Any] | None = None
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary.to_dict(), "outdir": self.outdir, "settings": self.settings,
                "errors": self.errors, "accuracy": self.accuracy, "files": self.files}


def load_dataset(path: str, input_names: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """A ``.npz`` holding one array per model input (rows = samples) and ``labels`` (int class ids)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read dataset {path!r}: {exc} — expected an .npz of arrays") from exc
    missing = [n for n in input_names + ["labels"] if n not in arrays]
    if missing:
        raise InputError(f"dataset {path!r} lacks array(s) {missing}; it needs one per model input "
                         f"({input_names}) and 'labels'")
    labels = arrays["labels"].astype(np.int64).reshape(-1)
    rows = {n: arrays[n].shape[0] for n in input_names}
    if any(r != labels.size for r in rows.values()):
        raise InputError(f"dataset {path!r}: input rows {rows} and {labels.size} labels differ")
    return {n: arrays[n] for n in input_names}, labels


def _test_settings(lg: Any, s: ScenarioSettings, accuracy: bool, expected_ns: int | None,
                   expected_sps: float | None) -> Any:
    assert s.percentile is not None and s.samples_per_query is not None and s.min_query_count is not None
    ts = lg.TestSettings()
    ts.scenario = getattr(lg.TestScenario, _LG_SCENARIO[s.scenario])
    ts.mode = lg.TestMode.AccuracyOnly if accuracy else lg.TestMode.PerformanceOnly
    ts.min_duration_ms = int(round(s.min_duration_s * 1000))
    ts.min_query_count = int(s.min_query_count)
    if s.max_query_count is not None:
        ts.max_query_count = int(s.max_query_count)
    if s.max_duration_s is not None:
        ts.max_duration_ms = int(round(s.max_duration_s * 1000))
    ts.qsl_rng_seed = ts.sample_index_rng_seed = ts.schedule_rng_seed = int(s.seed)
    if s.scenario == "single-stream":
        ts.single_stream_target_latency_percentile = s.percentile
        ts.single_stream_expected_latency_ns = int(expected_ns or 1_000_000)
    elif s.scenario == "multi-stream":
        ts.multi_stream_target_latency_percentile = s.percentile
        ts.multi_stream_samples_per_query = int(s.samples_per_query)
        ts.multi_stream_expected_latency_ns = int(expected_ns or 8_000_000)
    elif s.scenario == "server":
        assert s.target_qps is not None and s.latency_bound_ms is not None
        ts.server_target_qps = float(s.target_qps)
        ts.server_target_latency_ns = int(round(s.latency_bound_ms * 1e6))
        ts.server_target_latency_percentile = s.percentile
    else:
        ts.offline_expected_qps = float(s.offline_expected_sps or expected_sps or 100.0)
        if s.offline_sample_count is not None:
            ts.min_query_count = 1
    return ts


def _expected(target: Target, s: ScenarioSettings) -> tuple[int | None, float | None]:
    """Measured closed-loop query latency (SS/MS) or saturation rate (Offline), to size LoadGen's run."""
    assert s.samples_per_query is not None
    if s.scenario == "offline":
        return None, measure_capacity(target, s.samples_per_query, max(s.warmup_s, 0.2))[0]
    if s.scenario == "server":
        return None, None
    done: "queue.SimpleQueue[int]" = queue.SimpleQueue()
    batch = min(s.samples_per_query, target.max_batch)
    target.prepare([batch])
    lat: list[int] = []
    end = time.perf_counter_ns() + int(max(s.warmup_s, 0.2) * 1e9)
    while len(lat) < 3 or time.perf_counter_ns() < end:
        t0 = time.perf_counter_ns()
        parts = -(-s.samples_per_query // batch)
        for _ in range(parts):
            target.issue(len(lat), batch, lambda tag, err, out: done.put(tag))
        for _ in range(parts):
            done.get(timeout=s.drain_timeout_s)
        lat.append(time.perf_counter_ns() - t0)
    # a little under the median, so LoadGen's pre-generated query count covers the minimum duration
    return int(np.median(lat) * 0.9), None


def run_mlperf(target: Target, settings: ScenarioSettings, outdir: str | Path, *,
               dataset: tuple[dict[str, np.ndarray], np.ndarray] | None = None) -> MlperfRun:
    """Run LoadGen in performance mode (and accuracy mode when ``dataset`` is given) against ``target``."""
    import mlperf_loadgen as lg

    s = settings.resolved(target.max_batch)
    assert s.samples_per_query is not None
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    expected_ns, expected_sps = _expected(target, s)
    sut = _Sut(lg, target, s, dataset)
    total = int(dataset[1].size) if dataset is not None else _QSL_SIZE
    qsl = lg.ConstructQSL(total, min(total, _QSL_SIZE), lambda idx: None, lambda idx: None)
    handle = lg.ConstructSUT(sut.issue_queries, sut.flush_queries)
    accuracy = None
    try:
        ts = _test_settings(lg, s, False, expected_ns, expected_sps)
        _start(lg, handle, qsl, ts, outdir / "performance")
        summary = parse_summary((outdir / "performance" / "mlperf_log_summary.txt").read_text())
        if dataset is not None:
            sut.predictions.clear()
            _start(lg, handle, qsl, _test_settings(lg, s, True, expected_ns, expected_sps), outdir / "accuracy")
            labels = dataset[1]
            got = np.array([sut.predictions.get(i, -1) for i in range(labels.size)])
            accuracy = {"samples": int(labels.size), "top1": float(np.mean(got == labels)),
                        "answered": int(np.count_nonzero(got >= 0))}
    finally:
        sut.stop()
        lg.DestroySUT(handle)
        lg.DestroyQSL(qsl)
    files = {p.name: str(p) for p in sorted((outdir / "performance").glob("mlperf_log_*"))}
    return MlperfRun(summary=summary, outdir=str(outdir), errors=sut.errors, accuracy=accuracy, files=files,
                     settings={"scenario": s.scenario, "expected_latency_ns": expected_ns,
                               "expected_samples_per_s": expected_sps, **s.to_dict()})


def _start(lg: Any, sut: Any, qsl: Any, ts: Any, outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    log = lg.LogSettings()
    log.log_output.outdir = str(outdir)
    log.log_output.copy_summary_to_stdout = False
    log.enable_trace = False
    lg.StartTestWithLogSettings(sut, qsl, ts, log)


class _Sut:
    """LoadGen's system under test, forwarding every query to the target."""

    def __init__(self, lg: Any, target: Target, s: ScenarioSettings,
                 dataset: tuple[dict[str, np.ndarray], np.ndarray] | None) -> None:
        self.lg = lg
        self.target = target
        self.s = s
        self.dataset = dataset
        self.errors = 0
        self.predictions: dict[int, int] = {}
        self._lock = threading.Lock()
        self._tag = 0
        self._offline: "queue.SimpleQueue[list[Any] | None]" = queue.SimpleQueue()
        self._feeder = threading.Thread(target=self._feed, daemon=True, name="tf-mlperf-offline")
        self._feeder.start()

    def issue_queries(self, samples: list[Any]) -> None:
        if self.s.scenario == "offline":
            self._offline.put(list(samples))    # never block LoadGen's issuing thread
        elif self.s.scenario == "multi-stream":
            self._send(list(samples))
        else:
            for sample in samples:
                self._send([sample])

    def flush_queries(self) -> None:
        pass

    def _send(self, samples: list[Any], slots: threading.Semaphore | None = None) -> None:
        mb = self.target.max_batch
        for start in range(0, len(samples), mb):
            chunk = samples[start:start + mb]
            ids = [q.id for q in chunk]
            idx = [q.index for q in chunk]
            feeds = None
            if self.dataset is not None:
                feeds = {n: np.ascontiguousarray(a[idx]) for n, a in self.dataset[0].items()}
            self._tag += 1

            def done(tag: int, error: BaseException | None, outputs: Mapping[str, np.ndarray] | None,
                     ids: list[int] = ids, idx: list[int] = idx) -> None:
                self._complete(ids, idx, error, outputs)
                if slots is not None:
                    slots.release()

            if slots is not None:
                slots.acquire()
            self.target.issue(self._tag, len(chunk), done, feeds)

    def _complete(self, ids: list[int], idx: list[int], error: BaseException | None,
                  outputs: Mapping[str, np.ndarray] | None) -> None:
        lg = self.lg
        if error is not None:
            with self._lock:
                self.errors += 1
        top1 = None
        if outputs is not None and self.dataset is not None:
            first = np.asarray(next(iter(outputs.values())))
            top1 = first.reshape(first.shape[0], -1).argmax(axis=1).astype(np.int64)
            with self._lock:
                self.predictions.update(zip(idx, top1.tolist()))
        if top1 is None:
            lg.QuerySamplesComplete([lg.QuerySampleResponse(i, 0, 0) for i in ids])
        else:
            responses = []
            for i, value in zip(ids, top1):
                buf = np.array([value], dtype=np.int64)
                responses.append((buf, lg.QuerySampleResponse(i, buf.ctypes.data, buf.nbytes)))
            lg.QuerySamplesComplete([r for _, r in responses])   # bufs stay alive until this returns

    def _feed(self) -> None:
        slots = threading.Semaphore(max(1, self.target.max_in_flight))
        while True:
            samples = self._offline.get()
            if samples is None:
                return
            self._send(samples, slots)

    def stop(self) -> None:
        self._offline.put(None)
        self._feeder.join(5.0)


def compare(ours: Any, theirs: MlperfSummary) -> dict[str, Any]:
    """Do our verdict and headline figure agree with LoadGen's, within the run's own noise?

    The figure compared: SingleStream/MultiStream — the early-stopping percentile
    estimate; Server — the latency at the bound's percentile (both runs offer the same
    QPS; their Poisson schedules differ, so completed QPS differs by ~1/sqrt(n));
    Offline — samples per second. The tolerance is the run's own noise, at least 5 %:
    the largest of (a) the spread (max − min over the median) of the compared
    percentile across five consecutive windows of our run (drift; for Offline, of the
    windows' median latencies) and (b) the sampling uncertainty of that percentile —
    the latencies ±2σ order statistics away from it (σ = sqrt(n·p·(1−p)), widened by
    √2 because both runs draw their own sample).
    """
    p = None if ours.scenario == "offline" else ours.percentile
    tol = max(5.0, _window_spread(ours.latencies_ns, p), _quantile_uncertainty(ours, p))
    if ours.scenario == "server":
        key = f"{ours.percentile * 100:.2f}"
        mine, theirs_value, unit = ours.percentile_latency_ms, theirs.percentiles_ms.get(key), "ms"
        label = f"p{ours.percentile * 100:g} latency"
    else:
        mine, theirs_value, unit, label = ours.metric_value, theirs.metric_value, ours.metric_unit, ours.metric_name
    ratio = None if not mine or theirs_value is None else theirs_value / mine
    metric_agree = ratio is not None and abs(ratio - 1.0) * 100.0 <= tol
    return {"figure": label, "unit": unit,
            "ours": {"verdict": ours.verdict, "value": mine},
            "loadgen": {"verdict": theirs.result, "value": theirs_value},
            "ratio_loadgen_over_ours": ratio, "tolerance_pct": tol, "verdicts_agree": ours.verdict == theirs.result,
            "figures_agree": metric_agree}


def _window_spread(latencies_ns: np.ndarray, p: float | None, windows: int = 5) -> float:
    """Spread in % of a statistic (the ``p`` percentile, LoadGen's definition; or the median) across windows."""
    parts = [w for w in np.array_split(np.asarray(latencies_ns), windows) if w.size]
    if len(parts) < 2:
        return 0.0
    values = [float(np.median(w)) if p is None else float(percentile(w, p)) for w in parts]
    centre = float(np.median(values))
    return (max(values) - min(values)) / centre * 100.0 if centre > 0 else 0.0


def _quantile_uncertainty(ours: Any, p: float | None) -> float:
    """Half-width in % of the ±2σ·√2 order-statistic band around the compared latency figure."""
    lat = np.sort(np.asarray(ours.latencies_ns))
    n = int(lat.size)
    if p is None or n < 2:
        return 0.0
    es = ours.early_stopping
    k = n - 1 - int(es.discarded_highest) if es is not None and es.estimate_ns is not None else percentile_index(n, p)
    band = int(math.ceil(2.0 * math.sqrt(2.0) * math.sqrt(n * p * (1.0 - p))))
    value = float(lat[k])
    lo, hi = float(lat[max(0, k - band)]), float(lat[min(n - 1, k + band)])
    return max(hi - value, value - lo) / value * 100.0 if value > 0 else 0.0
