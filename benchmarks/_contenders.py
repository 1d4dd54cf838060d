"""Process-per-contender, round-robin timing shared by the peer benchmarks (a helper, not a test).

Every contender runs in a process of its own, as a user would run it: OpenVINO's default
CPU pinning and the libraries' spinning thread pools made co-resident libraries up to
~40 % slower, which would skew any in-process comparison. The processes take turns,
round-robin: each round times each contender for ``round_s`` seconds while the others are
stopped (SIGSTOP: an idle library may still spin), the order rotating between rounds, so
drift of the machine hits all alike.

A benchmark passes a ``make(kind, spec) -> (callable, requests per call, facts)`` function,
defined at module level (it is pickled by reference into the spawned workers), a picklable
``spec`` per contender and the feeds; :func:`round_robin` returns, per contender, the
per-round samples/s, their median, percentiles and noise, the call latencies, and the max
normalized error of the first output against the reference contender on the same input.
A contender whose setup fails is reported with its error and left out of the rounds.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import traceback
from typing import Any, Callable, Mapping, Sequence

import numpy as np

Make = Callable[[str, Any], "tuple[Callable[[Mapping[str, np.ndarray]], Any], int, dict]"]


def first_output(out: Any) -> np.ndarray:
    """The first output of a call, as float64 NumPy (dict, list, tuple, tensor or array)."""
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        out = out[0]
    return np.asarray(out.detach().numpy() if hasattr(out, "detach") else out, dtype=np.float64)


def _stdout_to_stderr() -> None:
    """In a child process: whatever a library prints (nncf's progress bars, native logs) goes to
    stderr, so the parent's stdout carries only its JSON document."""
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr


def _worker(conn: Any, make: Make, kind: str, spec: Any, feeds: dict[str, np.ndarray]) -> None:
    """A contender in a process of its own: its thread pools and CPU pinning cannot touch the others."""
    from tensorforge.core.stats import latency_stats

    _stdout_to_stderr()
    from tensorforge.core.timing import Timer

    try:
        fn, per, facts = make(kind, spec)
    except Exception as exc:                # reported, not raised: one broken peer must not end the run
        conn.send({"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=4)})
        return
    timer = Timer(fn)
    conn.send(facts)

    def one(result: Any) -> np.ndarray:          # a StreamPool returns one result per stream
        return first_output(result[0] if per > 1 else result)

    while True:
        cmd, arg = conn.recv()
        if cmd == "output":
            conn.send(one(fn(feeds)))
        elif cmd == "predict":                   # first outputs of a list of feeds (e.g. a test split)
            conn.send(np.concatenate([one(fn(f)) for f in arg], axis=0))
        elif cmd == "warm":
            timer.warm(feeds, arg)
            conn.send(None)
        elif cmd == "run":
            timer.run_for(feeds, arg, min_iterations=2)
            conn.send(timer.round_rates[-1] * per)
        else:
            conn.send(latency_stats(timer.samples).to_dict() if timer.samples else {})
            return


def paired_ratio(ours: Sequence[float], peer: Sequence[float]) -> dict[str, Any]:
    """Round-by-round ratio of two contenders' rates: median, 25th-75th percentile, range, rounds won."""
    r = np.asarray(ours, dtype=np.float64) / np.asarray(peer, dtype=np.float64)
    return {"median": round(float(np.median(r)), 4),
            "iqr": [round(float(q), 4) for q in np.percentile(r, [25, 75])],
            "min": round(float(r.min()), 4), "max": round(float(r.max()), 4),
            "rounds_won": int((r > 1.0).sum()), "rounds": int(r.size)}


def _summarize(rates: list[float]) -> dict[str, Any]:
    med = float(np.median(rates))
    p10, p25, p75, p90 = np.percentile(rates, [10, 25, 75, 90])
    return {"samples_per_s": round(med, 2),
            "round_rate_percentiles": {"p10": round(float(p10), 2), "p25": round(float(p25), 2),
                                       "p75": round(float(p75), 2), "p90": round(float(p90), 2)},
            "noise_pct": round((max(rates) - min(rates)) / 2 / med * 100, 2)}


def round_robin(make: Make, specs: dict[str, Any], feeds: dict[str, np.ndarray], batch: int, rounds: int,
                round_s: float, reference: str = "onnxruntime",
                predict: list[dict[str, np.ndarray]] | None = None,
                log: Callable[[str], None] | None = None) -> dict[str, dict]:
    """Time every contender of ``specs`` (kind -> spec), each in its own process, round-robin.

    ``reference`` names the contender whose first output the others are compared with.
    With ``predict`` (a list of feeds), each contender's first outputs on all of them come
    back under ``"predictions"`` (computed before the rounds; not timed).
    """
    ctx = mp.get_context("spawn")
    workers: dict[str, tuple[Any, Any]] = {}
    out: dict[str, dict] = {}
    for kind, spec in specs.items():        # set up one after another: compiles do not overlap
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(child, make, kind, spec, feeds), daemon=True)
        proc.start()
        try:
            facts = parent.recv()
        except EOFError:
            facts = {"error": f"worker exited with code {proc.join(10) or proc.exitcode} during setup"}
        if "error" in facts:
            if log:
                log(f"  {kind}: setup failed: {facts['error']}")
            out[kind] = {"facts": facts, "error": facts["error"]}
            proc.join(timeout=10)
            continue
        workers[kind] = (parent, proc)
        out[kind] = {"round_rates": [], "facts": facts}
    outputs = {}
    for kind, (conn, _) in workers.items():
        conn.send(("output", None))
        outputs[kind] = conn.recv()
        if predict is not None:
            conn.send(("predict", predict))
            out[kind]["predictions"] = conn.recv()
        conn.send(("warm", min(round_s, 1.0)))
        conn.recv()
    for _, proc in workers.values():
        os.kill(proc.pid, signal.SIGSTOP)
    kinds = list(workers)
    for r in range(rounds):
        if not kinds:
            break
        for kind in kinds[r % len(kinds):] + kinds[:r % len(kinds)]:   # one at a time; the rest stopped
            conn, proc = workers[kind]
            os.kill(proc.pid, signal.SIGCONT)
            conn.send(("run", round_s))
            try:
                out[kind]["round_rates"].append(round(conn.recv() * batch, 2))
            except EOFError:                     # it died mid-run: report it, time the others on
                out[kind]["error"] = f"worker died in round {r} (exit code {proc.join(10) or proc.exitcode})"
                del workers[kind]
                continue
            os.kill(proc.pid, signal.SIGSTOP)
        kinds = [k for k in kinds if k in workers]
    from tensorforge.core.reference import compare

    ref = outputs.get(reference)
    for kind, (conn, proc) in workers.items():
        os.kill(proc.pid, signal.SIGCONT)
        conn.send(("stop", None))
        latency = conn.recv()
        proc.join(timeout=30)
        res = out[kind]
        res["p50_ms"] = round(float(latency.get("p50_ms", float("nan"))), 3)
        res["latency_ms"] = {k: round(float(v), 3) for k, v in latency.items() if k.endswith("_ms")}
        res.update(_summarize(res["round_rates"]))
        if ref is not None and outputs[kind].shape == ref.shape:
            res[f"max_norm_err_vs_{reference}"] = compare([outputs[kind]], [ref]).max_norm
    return out


def _call(conn: Any, fn: Callable[..., Any], args: tuple) -> None:
    _stdout_to_stderr()
    try:
        conn.send(("ok", fn(*args)))
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent, which re-raises
        conn.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"))


def call_in_process(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a fresh spawned process (not a daemon: a build may spawn workers of its own),
    so no library it loads keeps threads or pinning in this one; its picklable result comes back."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_call, args=(child, fn, args))
    proc.start()
    try:
        status, value = parent.recv()
    except EOFError:
        proc.join(10)
        raise RuntimeError(f"{getattr(fn, '__name__', fn)} died in its process (exit code {proc.exitcode})") from None
    proc.join()
    if status == "error":
        raise RuntimeError(value)
    return value


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def emit(doc: dict[str, Any], json_path: str | None) -> int:
    """Print a benchmark's JSON document (and write it to ``json_path`` when given); the exit code 0."""
    import json
    from pathlib import Path

    text = json.dumps(doc, indent=1, default=str)
    if json_path:
        Path(json_path).write_text(text, encoding="utf-8")
    print(text)
    return 0


def start_server(cmd: list[str]) -> tuple[Any, dict[str, int]]:
    """Start ``tensorforge serve`` (``cmd``) in its own process; return it and the ports it printed."""
    import re
    import subprocess

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    text = ""
    assert proc.stdout is not None
    for line in proc.stdout:
        text += line
        if line.startswith("press Ctrl-C"):
            break
    ports = {k: int(v) for k, v in re.findall(r"^\s+(http|grpc|metrics)\s+\S*?:(\d+)", text, re.M)}
    if "http" not in ports:
        proc.kill()
        raise RuntimeError(f"server did not start: {text}")
    return proc, ports
