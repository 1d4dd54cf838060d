"""The sections of the HTML report, one function per kind of result: tables first, then plots.

Each takes the :class:`~.loaders.Item` s of its kind and ``draw`` (False without matplotlib: tables
only) and returns a :class:`~.html_parts.Section`. Hosts are named H1, H2 … by :func:`host_names`
(the machines table of the page says which is which).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from . import plots
from .html_parts import Section, note, num, table
from .loaders import Item, host_key
from .seed_figures import ACCURACY_TABLE1, SOURCE

__all__ = ["host_names", "bench_section", "accuracy_section", "tune_section", "optimize_section",
           "profile_section", "loadtest_section"]

_PROFILE_TOP = 15


def host_names(items: Sequence[Item]) -> dict[str, str]:
    """host key -> "H1", "H2" … in the order the hosts first appear (items without a host are left out)."""
    names: dict[str, str] = {}
    for item in items:
        key = host_key(item.data.get("host"))
        if key and key not in names:
            names[key] = f"H{len(names) + 1}"
    return names


def _bench_label(item: Item, hosts: Mapping[str, str]) -> str:
    model = item.data.get("model", {})
    host = hosts.get(host_key(item.data.get("host")), "")
    return f"{model.get('name', '?')} {str(model.get('precision', '?')).upper()}" + (f" @{host}" if host else "")


def _power_reason(row: Mapping[str, Any], doc: Mapping[str, Any]) -> str:
    power = row.get("power") or {}
    return str(power.get("unavailable") or doc.get("power_source") or "no power reading")


def _wide(series: Mapping[str, Sequence[tuple[float, float]]]) -> bool:
    """True when the values span more than 100× (models of very different speeds): a log axis then."""
    values = [y for pts in series.values() for _, y in pts if y > 0]
    return bool(values) and max(values) > 100 * min(values)


def bench_section(items: Sequence[Item], hosts: Mapping[str, str], draw: bool) -> Section:
    """Per result the whitepaper-style table (throughput, latency, power, perf/W by batch); then
    throughput and p50 latency against batch, one line per result (and stream count)."""
    sec = Section("bench", "Throughput, latency and power by batch")
    tput: dict[str, list[tuple[float, float]]] = {}
    lat: dict[str, list[tuple[float, float]]] = {}
    labels = [_bench_label(item, hosts) for item in items]
    for item, base in zip(items, labels):
        if labels.count(base) > 1:          # the same model, precision and host from several files
            base += f" ({item.path.name})"
        doc = item.data
        model = doc.get("model", {})
        rows = doc.get("rows", [])
        with_streams = any(r.get("streams", 1) != 1 for r in rows)
        cells, reasons = [], []
        for r in rows:
            eng = r.get("engine", {})
            q = eng.get("latency", {})
            if r.get("power_w") is None:
                reasons.append(_power_reason(r, doc))
            cells.append([r.get("batch")] + ([r.get("streams", 1)] if with_streams else []) + [
                num(eng.get("throughput_sps")), num(r.get("power_w"), "{:.1f}", "unavailable"),
                num(r.get("perf_per_watt"), "{:.2f}", "unavailable"), num(q.get("mean_ms"), "{:.3f}"),
                num(q.get("p50_ms"), "{:.3f}"), num(q.get("p90_ms"), "{:.3f}"), num(q.get("p99_ms"), "{:.3f}"),
                num(q.get("max_ms"), "{:.3f}"), num((eng.get("noise") or {}).get("spread_pct"), "{:.1f}")])
            label = base + (f" ×{r.get('streams')} streams" if with_streams else "")
            if isinstance(eng.get("throughput_sps"), (int, float)):
                tput.setdefault(label, []).append((r["batch"], eng["throughput_sps"]))
            if isinstance(q.get("p50_ms"), (int, float)):
                lat.setdefault(label, []).append((r["batch"], q["p50_ms"]))
        host = doc.get("host", {})
        caption = (f"{model.get('name', '?')} · {str(model.get('precision', '?')).upper()} · "
                   f"{model.get('backend', '?')} · {hosts.get(host_key(host), '?')}: {host.get('cpu_model', '?')} "
                   f"({host.get('logical_cores', '?')} cores) — {item.path}")
        notes = [f"power: unavailable — {r}" for r in dict.fromkeys(reasons)] + list(doc.get("warnings", []))
        sec.blocks.append(table(["batch"] + (["streams"] if with_streams else []) + [
            "perf (samples/s)", "power (W)", "perf/W", "latency mean (ms)", "p50", "p90", "p99", "max", "noise %"],
            cells, caption=caption, kind="bench", notes=notes))
    if draw and tput:
        sec.plots.append(plots.line_plot("throughput-vs-batch", tput, xlabel="batch", ylabel="samples/s",
                                         title="throughput vs batch", log_x=True, log_y=_wide(tput)))
    if draw and lat:
        sec.plots.append(plots.line_plot("latency-vs-batch", lat, xlabel="batch", ylabel="p50 latency (ms)",
                                         title="latency (p50) vs batch", log_x=True, log_y=_wide(lat)))
    return sec


def accuracy_section(items: Sequence[Item], draw: bool) -> Section:
    """FP32 vs FP16 vs INT8 (…) per model: top-1/top-5 or fidelity, the drop vs FP32, speed; then the
    whitepaper's Table 1 as the reference."""
    sec = Section("accuracy", "Accuracy by precision")
    for item in items:
        doc = item.data
        cells = [[c.get("precision", "?").upper() + (f" (shipped {c['shipped']})" if c.get("shipped") not in (
                  None, c.get("precision")) else ""),
                  num(c.get("top1_pct"), "{:.2f}"), num(c.get("top1_delta_pts"), "{:+.2f}"),
                  num(c.get("top5_pct"), "{:.2f}"), num(c.get("cosine_mean"), "{:.5f}"),
                  num(c.get("throughput_sps")), num(c.get("speedup_vs_fp32"), "{:.2f}×"),
                  ", ".join(c.get("kept_fp32_layers") or []) or "-"] for c in doc.get("columns", [])]
        caption = (f"{doc.get('model', '?')} on {doc.get('dataset', '?')} ({doc.get('split', '?')} split, "
                   f"{doc.get('samples', '?')} samples, batch {doc.get('batch', '?')}) — {item.path}")
        notes = [f"{c['precision']}: {c['note']}" for c in doc.get("columns", []) if c.get("note")]
        sec.blocks.append(table(["precision", "top-1 %", "Δ top-1 (pts)", "top-5 %", "cosine vs FP32",
                                 "samples/s", "speed vs FP32", "kept in FP32"], cells, caption=caption,
                                kind="accuracy", notes=notes + list(doc.get("notes", []))))
    ref = [[r["model"], r["precision"].upper(), f"{r['fp32_top1_pct']:.2f}", f"{r['top1_pct']:.2f}",
            f"{r['delta_pts']:+.2f}"] for r in ACCURACY_TABLE1]
    sec.blocks.append(table(["model", "precision", "FP32 top-1 %", "top-1 %", "Δ (pts)"], ref, kind="reference",
                            caption=f"whitepaper reference: Table 1 — {SOURCE}"))
    return sec


def tune_section(items: Sequence[Item], draw: bool) -> Section:
    """Each tuner run: the winner and every candidate's speed; the timed candidates as bars."""
    sec = Section("tune", "Tuner candidates")
    for n, item in enumerate(items):
        doc = item.data
        rows = doc.get("candidates", [])
        cells = [[r.get("candidate"), r.get("status"), num(r.get("throughput_sps")), num(r.get("p50_ms"), "{:.4f}"),
                  num(r.get("ratio"), "{:.3f}"), num(r.get("noise_pct"), "{:.1f}"), r.get("reason") or ""]
                 for r in rows]
        winner = (doc.get("winner") or {}).get("label", "?")
        caption = (f"{item.name or 'model'} · tuned for {doc.get('objective')} at batch {doc.get('batch')} on "
                   f"{doc.get('device')} · winner: {winner} — {item.path}")
        sec.blocks.append(table(["candidate", "status", "samples/s", "p50 (ms)", "× first", "noise %", "why"],
                                cells, caption=caption, kind="tune", notes=list(doc.get("notes", []))))
        timed = [r for r in rows if isinstance(r.get("throughput_sps"), (int, float))]
        if draw and timed:
            sec.plots.append(plots.bar_plot(
                f"tune-{n}", [str(r.get("candidate")) for r in timed], [r["throughput_sps"] for r in timed],
                xlabel="samples/s (in its duel)", title=f"{item.name} · tuner candidates",
                colors=["#D55E00" if r.get("status") == "winner" else "#0072B2" for r in timed]))
    return sec


def optimize_section(items: Sequence[Item], draw: bool) -> Section:
    """Each ``--optimize`` search: every point (precision × backend), and the speed–accuracy Pareto front."""
    sec = Section("optimize", "Speed vs accuracy (Pareto front)")
    for n, item in enumerate(items):
        doc = item.data
        cells = [[p.get("name"), p.get("backend"), p.get("precision"), num(p.get("loss"), "{:.4f}"),
                  num(p.get("speedup"), "{:.3f}×"), num(p.get("throughput_sps")), p.get("status") or ""]
                 for p in doc.get("points", [])]
        chosen = doc.get("chosen") or {}
        caption = (f"{item.name or 'model'} · optimize {doc.get('objective')} at batch {doc.get('batch')} · "
                   f"chosen: {chosen.get('name')} @{chosen.get('backend')} · budget {doc.get('budget') or 'none'}"
                   f" — {item.path}")
        known = "" if doc.get("accuracy_known") else "accuracy unknown (no held-out data): loss is 1 − cosine"
        sec.blocks.append(table(["candidate", "backend", "precision", str(doc.get("loss_metric", "loss")),
                                 "speed × ORT FP32", "samples/s", "status"], cells, caption=caption,
                                kind="optimize", notes=[known] if known else []))
        if draw:
            sec.plots.append(plots.front_plot(f"pareto-{n}", doc, title=f"{item.name} · {doc.get('objective')}"))
    return sec


def profile_section(items: Sequence[Item], draw: bool) -> Section:
    """Each profile: the slowest layers with kernel, precision and share; the same as bars by precision."""
    sec = Section("profile", "Time per layer")
    for n, item in enumerate(items):
        doc = item.data
        layers = sorted(doc.get("layers", []), key=lambda r: -float(r.get("time_ms") or 0))[:_PROFILE_TOP]
        cells = [[r.get("name"), f"{r.get('op_type', '')} / {r.get('kernel', '')}", r.get("precision"),
                  num(r.get("time_ms"), "{:.4f}"), num(r.get("share_pct"), "{:.1f}")] for r in layers]
        caption = (f"{doc.get('engine')} ({doc.get('engine_precision')}) · {doc.get('backend')} · batch "
                   f"{doc.get('batch')} · top {len(layers)} of {len(doc.get('layers', []))} layers · run "
                   f"{num(doc.get('run_ms'), '{:.3f}')} ms, layers cover {num(doc.get('coverage_pct'), '{:.0f}')} %"
                   f" — {item.path}")
        sec.blocks.append(table(["layer (ONNX node)", "op / kernel", "precision", "time (ms)", "share %"], cells,
                                caption=caption, kind="profile", notes=list(doc.get("notes", []))))
        if draw and layers:
            sec.plots.append(plots.bar_plot(
                f"profile-{n}", [str(r.get("name")) for r in layers], [float(r.get("time_ms") or 0) for r in layers],
                xlabel=f"time per run (ms, {doc.get('statistic', 'median')})", title=f"{doc.get('engine')} layers",
                colors=[str(r.get("precision")) for r in layers],
                notes=[f"{float(r.get('time_ms') or 0):.3g} ms · {r.get('precision')}" for r in layers]))
    return sec


def _load_points(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Runs (full latency) and find-max probes (the judged percentile only), as plain points."""
    out = []
    for r in config.get("runs", []):
        q = r.get("latency") or {}
        out.append({"qps": r.get("offered_qps") or (r.get("settings") or {}).get("target_qps"),
                    "tput": r.get("throughput_qps"), "p50": q.get("p50_ms"), "p99": q.get("p99_ms"),
                    "pct": r.get("percentile_latency_ms"), "valid": r.get("valid"),
                    "bound": (r.get("settings") or {}).get("latency_bound_ms"), "what": r.get("scenario", "run")})
    probes = list(config.get("probes", [])) + list((config.get("find_max") or {}).get("probes", []))
    bound = (config.get("find_max") or {}).get("latency_bound_ms")
    for p in probes:
        out.append({"qps": p.get("target_qps"), "tput": p.get("throughput_qps"), "p50": None, "p99": None,
                    "pct": p.get("percentile_latency_ms"), "valid": p.get("valid"),
                    "bound": p.get("latency_bound_ms", bound) or p.get("budget_ms"), "what": "probe"})
    return [p for p in out if isinstance(p["qps"], (int, float))]


def loadtest_section(items: Sequence[Item], hosts: Mapping[str, str], draw: bool) -> Section:
    """Each load test: its runs and probes; latency against offered load with the latency bound."""
    sec = Section("loadtest", "Latency vs offered load")
    series: dict[str, list[tuple[float, float]]] = {}
    hollow: dict[str, list[bool]] = {}
    bounds: set[float] = set()
    for item in items:
        host = hosts.get(host_key(item.data.get("host")), "")
        for config in item.data.get("configs", []):
            label = str(config.get("label", "config")) + (f" @{host}" if host else "")
            pts = sorted(_load_points(config), key=lambda p: p["qps"])
            cells = [[p["what"], num(p["qps"]), num(p["tput"]), num(p["p50"], "{:.3f}"), num(p["p99"], "{:.3f}"),
                      num(p["pct"], "{:.3f}"), num(p["bound"], "{:g}", "-"),
                      {True: "VALID", False: "INVALID"}.get(p["valid"], "?")] for p in pts]
            sec.blocks.append(table(["run", "offered (q/s)", "achieved (q/s)", "p50 (ms)", "p99 (ms)",
                                     "judged percentile (ms)", "bound (ms)", "verdict"], cells,
                                    caption=f"{label} — {item.path}", kind="loadtest"))
            for key, name in (("p50", "p50"), ("p99", "p99"), ("pct", "judged pct")):
                got = [p for p in pts if isinstance(p[key], (int, float)) and (key != "pct" or p["p99"] is None)]
                if got:
                    series[f"{label} {name}"] = [(p["qps"], p[key]) for p in got]
                    hollow[f"{label} {name}"] = [p["valid"] is False for p in got]
            bounds.update(float(p["bound"]) for p in pts if isinstance(p["bound"], (int, float)))
    if draw and series:
        sec.plots.append(plots.line_plot("latency-vs-load", series, xlabel="offered load (queries/s)",
                                         ylabel="latency (ms)", title="latency vs offered load (open: INVALID)",
                                         log_y=True, hlines=[(b, f"bound {b:g} ms") for b in sorted(bounds)],
                                         hollow=hollow))
    if not series:
        sec.blocks.append(note("no run or probe with a latency to show"))
    return sec
