"""Soak and fault test of the inference server (issue 13): a real ``tensorforge serve`` under mixed load.

    python scripts/soak.py [--minutes 30] [--load 0.8] [--no-kill] [--no-unload] [--no-disk-full] ...

What it does, in order:

1. builds a small repository with the real build pipeline: ``mlp`` (the zoo's tiny_mlp, thread
   instances — the steady model whose latency is tracked), ``proc`` (the same engine on two
   child-process instances), ``gather`` (y = 2x, g = GatherElements(x, idx): an out-of-range
   ``idx`` makes ONNX Runtime raise inside the backend — a real failing op, not a mock) and
   ``victim`` (tiny_mlp again, unloaded and reloaded under load);
2. starts ``python -m tensorforge serve --repository …`` as a subprocess, exactly as a user
   would, so whichever HTTP stack is the default is the one soaked;
3. measures capacity: a closed loop of ``--workers`` clients sending the traffic mix as fast
   as answers come back, for ``--probe-s`` seconds;
4. sends the mix open-loop at ``--load`` × capacity for ``--minutes``: good requests (JSON and
   binary) checked against outputs computed in this process from the same engines on the same
   inputs, bad ones (malformed JSON, wrong shape, wrong dtype, NaN, garbled binary, oversized,
   unknown model) that must get a 4xx, and slow clients trickling a request or stalling;
5. injects faults while the load runs, one after another (each can be turned off): a backend
   that raises (continuous), a process instance killed with SIGKILL, ``victim`` unloaded and
   reloaded with requests in flight, an engine written into the live repository with the disk
   "full" (RLIMIT_FSIZE in the writing process), then SIGTERM with stalled clients connected;
6. prints one JSON document and exits 1 unless every check holds: 0 lost or wrong answers,
   0 5xx for client errors, RSS growth under ``--rss-limit`` after the warm-up window, p99 of
   the last window within ``--p99-factor`` × the first window after warm-up, every fault survived.

Per window it reports p99 of send → answer (the server's part; what ``--p99-factor`` checks) and of
scheduled time → answer (no coordinated omission: a client backlog shows there), the requests sent
over a second late, and the client backlog. If this machine cannot keep the pace (other work on
the CPUs), the ``load_held`` check fails rather than the run quietly sending less.
``tests/e2e/test_soak_faults.py`` runs this same code for ~15 s in the default test suite.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak_traffic import Mix, Outcome, Tally, build_repository, judge, read_raw_response  # noqa: E402

FAULTS = ("raise", "kill", "unload", "disk_full", "sigterm")
HANG_GUARD_S = 30.0             # a request without an answer after this long is lost (the server hung)


@dataclass
class SoakOptions:
    minutes: float = 30.0
    load: float = 0.8                    # fraction of the measured capacity held
    probe_s: float = 5.0                 # closed-loop capacity probe
    windows: int = 10                    # report windows; the first is the warm-up
    workers: int = 12                    # client threads (more only add GIL contention to the latencies)
    slow_clients: int = 2                # threads that trickle or stall requests
    faults: tuple[str, ...] = FAULTS
    drain_s: float = 5.0                 # the server's --drain-timeout (SIGTERM grace period)
    drain_slack_s: float = 5.0           # beyond the grace period: closing models, process exit
    header_timeout_s: float = 5.0
    p99_factor: float | None = 3.0       # last window p99 <= factor x first window after warm-up
    rss_limit: float | None = 0.05       # RSS growth after warm-up
    workdir: Path | None = None
    seed: int = 0
    log: Callable[[str], None] = field(default=lambda msg: print(msg, file=sys.stderr, flush=True))


# -- the server, as a user starts it ------------------------------------------------------------------
class ServerProcess:
    """``python -m tensorforge serve --repository DIR`` on a free port; its stdout/stderr go to files."""

    def __init__(self, repo: Path, workdir: Path, opts: SoakOptions) -> None:
        cmd = [sys.executable, "-m", "tensorforge", "serve", "--repository", str(repo), "--http-port", "0",
               "--grpc-port", "off", "--metrics-port", "off", "--drain-timeout", str(opts.drain_s),
               "--header-timeout", str(opts.header_timeout_s), "--body-timeout", str(opts.header_timeout_s),
               "--max-request-mb", "1"]
        self.out_path, self.err_path = workdir / "server.out", workdir / "server.err"
        self._out, self._err = open(self.out_path, "wb"), open(self.err_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=self._err, start_new_session=True)
        self.host, self.port = "127.0.0.1", 0

    def wait_ready(self, guard_s: float = 180.0) -> None:
        deadline = time.monotonic() + guard_s
        while time.monotonic() < deadline:
            text = self.out_path.read_text(errors="replace")
            if "press Ctrl-C" in text:
                m = re.search(r"http\s+(?:http://)?([^\s:]+|\[[^\]]+\]):(\d+)", text)
                if m is None:
                    raise RuntimeError(f"server started but printed no HTTP address:\n{text}")
                self.host, self.port = m.group(1).strip("[]"), int(m.group(2))
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.stderr()[-3000:]}")
            time.sleep(0.05)
        raise RuntimeError("server did not become ready (hang guard)")

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def rss(self) -> int:
        try:
            with open(f"/proc/{self.proc.pid}/status") as fh:
                return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            return 0

    def cpu_threads(self) -> tuple[float, int]:
        """(CPU seconds used so far, thread count) of the server process, from /proc."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), int(fields[17])
        except (OSError, ValueError, IndexError):
            return 0.0, 0

    def worker_pids(self, model: str) -> list[int]:
        """pids of the child-process instances serving ``model`` (their command line names its engine)."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    cmdline = fh.read().decode(errors="replace")
            except (OSError, ValueError, IndexError):
                continue
            if ppid == self.proc.pid and "tensorforge.serve.worker" in cmdline and f"/{model}/" in cmdline:
                pids.append(int(entry))
        return pids

    def request(self, method: str, path: str, body: bytes = b"", timeout: float = HANG_GUARD_S) -> tuple[int, str]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body)
            resp = conn.getresponse()
            return resp.status, resp.read().decode(errors="replace")
        finally:
            conn.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self._out.close()
        self._err.close()


# -- load --------------------------------------------------------------------------------------------
class Load:
    """Client threads sending jobs from a queue (open loop) or back to back (closed loop)."""

    def __init__(self, server: ServerProcess, mix: Mix, tally: Tally, workers: int) -> None:
        self.server, self.mix, self.tally, self.workers = server, mix, tally, workers
        self.jobs: queue.Queue[tuple[str, float] | None] = queue.Queue()
        self.threads: list[threading.Thread] = []

    def _conn(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.server.host, self.server.port, timeout=HANG_GUARD_S)

    def _send(self, conn: http.client.HTTPConnection, kind: str, sched: float) -> http.client.HTTPConnection:
        sent = time.monotonic()
        outcome, reuse = self.mix.send(conn, kind)
        self.tally.record(kind, outcome, time.monotonic() - sent, sched, sent)
        if not reuse:
            conn.close()
            conn = self._conn()
        return conn

    def start_open(self) -> None:
        def work() -> None:
            conn = self._conn()
            while (job := self.jobs.get()) is not None:
                conn = self._send(conn, *job)
            conn.close()

        self.threads = [threading.Thread(target=work, daemon=True) for _ in range(self.workers)]
        for t in self.threads:
            t.start()

    def stop_open(self) -> int:
        """Stop the clients; jobs still queued (the clients fell behind) are dropped and counted."""
        dropped = 0
        while True:
            try:
                self.jobs.get_nowait()
                dropped += 1
            except queue.Empty:
                break
        for _ in self.threads:
            self.jobs.put(None)
        for t in self.threads:
            t.join(HANG_GUARD_S + 10)
        return dropped

    def closed_loop(self, seconds: float, rng: random.Random) -> float:
        """Requests answered per second with every client sending its next request as soon as it has
        its answer: the capacity of server + clients on this machine for this mix."""
        stop = time.monotonic() + seconds
        done = [0] * self.workers

        def work(i: int) -> None:
            conn, r = self._conn(), random.Random(rng.random())
            while time.monotonic() < stop:
                conn = self._send(conn, self.mix.pick(r), time.monotonic())
                done[i] += 1
            conn.close()

        t0 = time.monotonic()
        threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(self.workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + HANG_GUARD_S + 10)
        return sum(done) / (time.monotonic() - t0)


class SlowClients:
    """Threads that trickle a good request over ~1 s (must get a correct 200) or send half a request and
    stall (the server must close it: 408 or EOF, never a 5xx)."""

    def __init__(self, server: ServerProcess, mix: Mix, tally: Tally, n: int, header_timeout_s: float) -> None:
        self.server, self.mix, self.tally = server, mix, tally
        self.stop = threading.Event()
        self.guard = header_timeout_s + 20
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(n)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def _run(self, i: int) -> None:
        r = random.Random(i)
        while not self.stop.is_set():
            try:
                with socket.create_connection((self.server.host, self.server.port), timeout=self.guard) as s:
                    t0 = time.monotonic()
                    if r.random() < 0.5:
                        outcome = self.mix.trickle(s, r, self.stop)
                        self.tally.record("slow_trickle", outcome, time.monotonic() - t0, t0)
                    else:
                        outcome = self.mix.stall(s, r)
                        self.tally.record("slow_stall", outcome, time.monotonic() - t0, t0)
            except OSError as exc:
                self.tally.record("slow_trickle", Outcome(None, f"connect: {exc}"), 0.0, time.monotonic())
            self.stop.wait(0.2)

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(self.guard + 10)


# -- faults --------------------------------------------------------------------------------------------
def fault_kill(server: ServerProcess, opts: SoakOptions) -> dict[str, Any]:
    """SIGKILL one child-process instance of ``proc``; it must be restarted (log line + new pid)."""
    before = server.worker_pids("proc")
    if not before:
        return {"name": "kill", "survived": False, "why": "no process instance found"}
    victim = before[0]
    logged = server.stderr().count("restarting it")
    os.kill(victim, signal.SIGKILL)
    t0 = time.monotonic()
    deadline = t0 + 60
    restarted = False
    while time.monotonic() < deadline:
        pids = server.worker_pids("proc")
        if victim not in pids and len(pids) == len(before) and server.stderr().count("restarting it") > logged:
            restarted = True
            break
        time.sleep(0.05)
    line = next((ln for ln in server.stderr().splitlines() if f"process {victim} " in ln), "")
    return {"name": "kill", "killed_pid": victim, "restarted": restarted, "restart_s": round(time.monotonic() - t0, 2),
            "log_line": line.strip()[-200:], "survived": restarted}


def fault_unload(server: ServerProcess, opts: SoakOptions) -> dict[str, Any]:
    """Unload ``victim`` with requests in flight, let traffic hit it unloaded, then load it again."""
    t0 = time.monotonic()
    st_unload, text_unload = server.request("POST", "/v2/repository/models/victim/unload")
    time.sleep(1.0)                                 # requests meanwhile: 503/404 with a reason, never a hang
    st_load, text_load = server.request("POST", "/v2/repository/models/victim/load")
    ready = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not ready:
        ready = server.request("GET", "/v2/models/victim/ready")[0] == 200
        time.sleep(0.05)
    return {"name": "unload", "unload_status": st_unload, "load_status": st_load, "ready_again": ready,
            "took_s": round(time.monotonic() - t0, 2), "survived": st_unload == 200 and st_load == 200 and ready,
            **({} if st_unload == 200 and st_load == 200 else {"why": (text_unload + text_load)[:300]})}


def fault_disk_full(server: ServerProcess, opts: SoakOptions, repo: Path) -> dict[str, Any]:
    """Write an engine into the live repository (victim/2/model.tfe) from a process whose files may not
    grow past half the engine's size (RLIMIT_FSIZE: write() fails with EFBIG part-way, as on a full disk),
    through the engine writer ``tensorforge build`` uses (a whole build would also steal the soak's CPU
    for seconds). The write must fail with a clear EngineFileError and leave no file, and the server
    keep serving version 1 — also after a reload that rescans the repository."""
    target_dir = repo / "victim" / "2"
    target_dir.mkdir()
    source = repo / "victim" / "1" / "model.tfe"
    limit = source.stat().st_size // 2
    code = ("import resource, signal, sys\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"        # EFBIG from write(), not a kill
            "from tensorforge.engine.format import read_engine, write_engine\n"
            "from tensorforge.errors import EngineFileError\n"
            f"manifest, payloads = read_engine({str(source)!r})\n"
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
            "try:\n"
            f"    write_engine({str(target_dir / 'model.tfe')!r}, manifest, payloads)\n"
            "except EngineFileError as exc:\n"
            "    print(f'error: {exc}', file=sys.stderr)\n"
            "    sys.exit(2)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    left = sorted(p.name for p in target_dir.iterdir())
    st_load, _ = server.request("POST", "/v2/repository/models/victim/load")
    st_index, index = server.request("POST", "/v2/repository/index")
    served = [m.get("version") for m in json.loads(index) if m.get("name") == "victim"] if st_index == 200 else []
    shutil.rmtree(target_dir)
    clear = "cannot write the engine file" in run.stderr and "Traceback" not in run.stderr
    ok = run.returncode != 0 and not left and clear and st_load == 200 and served == ["1"]
    return {"name": "disk_full", "fsize_limit_bytes": limit, "write_exit": run.returncode,
            "write_error": run.stderr.strip().splitlines()[-1][-300:] if run.stderr.strip() else "",
            "files_left": left, "reload_status": st_load, "versions_served": served, "survived": ok}


def fault_sigterm(server: ServerProcess, opts: SoakOptions, mix: Mix) -> dict[str, Any]:
    """Connect stalled clients (half a head, a head and half a body), put good requests in flight, send
    SIGTERM: the server must exit by itself within the grace period (plus slack for closing models), and
    the in-flight requests get their answer (200, or 503 if they arrived after draining began)."""
    stalled = []
    for i in range(4):
        s = socket.create_connection((server.host, server.port), timeout=HANG_GUARD_S)
        s.sendall(mix.stalled_bytes(i))
        stalled.append(s)
    results: list[Outcome] = []
    connected = threading.Barrier(9)          # 8 senders + this thread: every connection is open first
    sent = threading.Semaphore(0)

    def one() -> None:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=HANG_GUARD_S)
        try:
            conn.connect()
        finally:
            connected.wait(HANG_GUARD_S)
        raw, req = mix.raw_request()
        assert conn.sock is not None
        conn.sock.sendall(raw)
        sent.release()
        out = read_raw_response(conn.sock)
        results.append(judge(out.text.encode(), req.expected) if out.status == 200 and req.expected else out)
        conn.close()

    senders = [threading.Thread(target=one, daemon=True) for _ in range(8)]
    for t in senders:
        t.start()
    connected.wait(HANG_GUARD_S)
    for _ in senders:
        sent.acquire(timeout=HANG_GUARD_S)
    time.sleep(0.05)                          # let the server read them: they are in flight, not in a buffer
    t0 = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    stopped_s = None                          # when the CLI printed "stopped": drained, models closed
    deadline = t0 + opts.drain_s + opts.drain_slack_s + 60
    while server.proc.poll() is None and time.monotonic() < deadline:
        if stopped_s is None and server.out_path.read_text(errors="replace").rstrip().endswith("stopped"):
            stopped_s = time.monotonic() - t0
        time.sleep(0.02)
    code = server.proc.poll()
    took = time.monotonic() - t0
    for t in senders:
        t.join(HANG_GUARD_S + 5)
    for s in stalled:
        s.close()
    answers = sorted(f"{o.status} {'' if o.ok or o.status == 503 else o.text[:80]}".strip() for o in results)
    inflight_ok = all(o.ok or o.status == 503 for o in results) and len(results) == len(senders)
    in_grace = code is not None and took <= opts.drain_s + opts.drain_slack_s
    return {"name": "sigterm", "stalled_clients": len(stalled), "exit_code": code, "exit_s": round(took, 2),
            "stopped_s": None if stopped_s is None else round(stopped_s, 2),
            "grace_s": opts.drain_s, "slack_s": opts.drain_slack_s, "inflight_answers": answers,
            "survived": bool(in_grace and code == 0 and inflight_ok)}


# -- the run -------------------------------------------------------------------------------------------
def run_soak(opts: SoakOptions) -> dict[str, Any]:
    """Everything in the module docstring; returns the summary (``summary["passed"]``)."""
    workdir = Path(opts.workdir or tempfile.mkdtemp(prefix="tf-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(opts.seed)
    opts.log(f"soak: building the repository in {workdir}")
    repo = build_repository(workdir / "repo")
    mix = Mix(repo, with_raise="raise" in opts.faults, seed=opts.seed)
    server = ServerProcess(repo, workdir, opts)
    try:
        server.wait_ready()
        return _run(server, repo, mix, opts, rng)
    finally:
        server.close()
        if opts.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


def _run(server: ServerProcess, repo: Path, mix: Mix, opts: SoakOptions, rng: random.Random) -> dict[str, Any]:
    probe_tally = Tally(windows=1, t0=time.monotonic(), duration=opts.probe_s)
    capacity = Load(server, mix, probe_tally, opts.workers).closed_loop(opts.probe_s, rng)
    rate = max(1.0, opts.load * capacity)
    duration = opts.minutes * 60
    opts.log(f"soak: capacity {capacity:.0f} req/s; holding {rate:.0f} req/s for {duration:.0f} s")
    t0 = time.monotonic()
    tally = Tally(windows=opts.windows, t0=t0, duration=duration)
    load = Load(server, mix, tally, opts.workers)
    load.start_open()
    slow = SlowClients(server, mix, tally, opts.slow_clients, opts.header_timeout_s)
    slow.start()
    faults: list[dict[str, Any]] = []
    # one kill → unload → disk-full cycle per 3 minutes (up to 5), all between 25 % and 80 % of the run:
    # the warm-up window, the first window after it and the last window are fault-free (their p99s compare)
    cycles = max(1, min(5, int(duration // 180)))
    step = 0.55 / cycles / 3
    plan = [(0.25 + 0.55 * c / cycles + k * step, name) for c in range(cycles)
            for k, name in enumerate(("kill", "unload", "disk_full")) if name in opts.faults]

    def inject() -> None:
        for at, name in plan:
            wait = t0 + at * duration - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            opts.log(f"soak: fault {name} at {time.monotonic() - t0:.1f} s")
            try:
                result = (fault_kill(server, opts) if name == "kill" else fault_unload(server, opts)
                          if name == "unload" else fault_disk_full(server, opts, repo))
            except Exception as exc:  # a fault that could not even be injected fails the run, with its reason
                result = {"name": name, "survived": False, "why": f"{type(exc).__name__}: {exc}"}
            result["at_s"] = round(at * duration, 1)
            faults.append(result)

    injector = threading.Thread(target=inject, daemon=True)
    injector.start()
    sampler_stop = threading.Event()

    def sample() -> None:
        while not sampler_stop.wait(1.0):
            tally.rss(time.monotonic(), server.rss(), load.jobs.qsize(), *server.cpu_threads())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    i = 0
    while True:                          # open loop: job i is due at t0 + i / rate, whatever came back
        due = t0 + i / rate
        now = time.monotonic()
        if now - t0 >= duration and not injector.is_alive():
            break
        if due > now:
            time.sleep(due - now)
        load.jobs.put((mix.pick(rng), due))
        i += 1
    elapsed = time.monotonic() - t0
    sent_in_run = sum(tally.requests)
    dropped = load.stop_open()
    slow.close()
    sampler_stop.set()
    sampler.join()
    injector.join()
    if "sigterm" in opts.faults:
        opts.log("soak: SIGTERM with stalled clients")
        faults.append(fault_sigterm(server, opts, mix))
    if "raise" in opts.faults:
        raised = tally.kinds.get("bad_raise", {})
        faults.insert(0, {"name": "raise", "sent": sum(raised.values()), "answers": raised,
                          "survived": bool(raised) and set(raised) == {"500"}})
    return summarize(opts, tally, probe_tally, capacity, rate, i, elapsed, faults, server, sent_in_run, dropped)


def summarize(opts: SoakOptions, tally: Tally, probe: Tally, capacity: float, rate: float, sent: int,
              elapsed: float, faults: list[dict[str, Any]], server: ServerProcess, sent_in_run: int,
              dropped: int) -> dict[str, Any]:
    windows = tally.window_report()
    totals = tally.totals()
    checks: dict[str, dict[str, Any]] = {
        "lost": {"value": totals["lost"] + probe.totals()["lost"], "limit": 0},
        "wrong": {"value": totals["wrong"] + probe.totals()["wrong"], "limit": 0},
        "unexpected_errors": {"value": totals["unexpected"] + probe.totals()["unexpected"], "limit": 0},
        "5xx_for_client_errors": {"value": totals["bad_5xx"] + probe.totals()["bad_5xx"], "limit": 0},
        "kill_failures_one_batch_each": {"value": tally.fault_failures.get("kill", 0),
                                         "limit": mix_batch("proc") * sum(f["name"] == "kill" for f in faults)},
    }
    for c in checks.values():
        c["ok"] = c["value"] <= c["limit"]
    steady = [w for w in windows[1:] if w["rss_mib"]]
    if steady:
        base, end = steady[0]["rss_mib"], steady[-1]["rss_mib"]
        growth = (end - base) / base if base else 0.0
        checks["rss_growth"] = {"value": round(growth, 4), "limit": opts.rss_limit, "base_mib": base,
                                "end_mib": end, "ok": opts.rss_limit is None or growth < opts.rss_limit}
    if len(windows) >= 3:
        first, last = windows[1]["p99_ms"], windows[-1]["p99_ms"]
        ratio = last / first if first else float("inf")
        checks["p99_stable"] = {"value": round(ratio, 2), "limit": opts.p99_factor, "first_ms": first,
                                "last_ms": last, "ok": opts.p99_factor is None or ratio <= opts.p99_factor}
    behind = (sum(tally.late) + dropped) / max(1, sent)
    checks["load_held"] = {"value": round(behind, 4), "limit": 0.01, "ok": behind <= 0.01,
                           "what": "share of scheduled requests sent over 1 s late or never sent"}
    for f in faults:
        checks[f"fault_{f['name']}"] = {"ok": bool(f["survived"])}
    return {
        "command": " ".join(sys.argv) if __name__ == "__main__" else "run_soak()",
        "duration_s": round(elapsed, 1), "capacity_rps": round(capacity, 1), "target_rps": round(rate, 1),
        "achieved_rps": round(sent_in_run / elapsed, 1) if elapsed else 0.0,
        "load_pct_of_capacity": round(100 * sent_in_run / elapsed / capacity, 1) if capacity else 0,
        "scheduled": sent, "answered_in_run": sent_in_run, "sent_late": sum(tally.late),
        "dropped_client_backlog": dropped, "requests": totals, "by_kind": tally.kinds, "windows": windows,
        "rss_mib": {"start": tally.rss_samples[0][1] if tally.rss_samples else None,
                    "end": tally.rss_samples[-1][1] if tally.rss_samples else None},
        "restart_log_lines": server.stderr().count("restarting it"),
        "faults": faults, "checks": checks, "passed": all(c["ok"] for c in checks.values()),
    }


def mix_batch(model: str) -> int:
    """Requests one failed batch of ``model`` can hold (its max_batch_size: one request per row at most)."""
    from soak_traffic import CONFIGS

    return int(CONFIGS[model]["max_batch_size"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--load", type=float, default=0.8, help="fraction of measured capacity (default 0.8)")
    ap.add_argument("--probe-s", type=float, default=5.0, help="capacity probe length (default 5)")
    ap.add_argument("--windows", type=int, default=10, help="report windows, the first is warm-up (default 10)")
    ap.add_argument("--workers", type=int, default=12, help="client threads (default 12)")
    ap.add_argument("--slow-clients", type=int, default=2)
    ap.add_argument("--drain-s", type=float, default=5.0, help="server grace period on SIGTERM (default 5)")
    ap.add_argument("--p99-factor", type=float, default=3.0, help="last/first-after-warm-up p99 limit (default 3)")
    ap.add_argument("--rss-limit", type=float, default=0.05, help="RSS growth limit after warm-up (default 0.05)")
    ap.add_argument("--workdir", type=Path, help="keep the repository and server logs here")
    ap.add_argument("--seed", type=int, default=0)
    for name in FAULTS:
        ap.add_argument(f"--no-{name.replace('_', '-')}", action="store_true", help=f"skip the {name} fault")
    args = ap.parse_args(argv)
    faults = tuple(n for n in FAULTS if not getattr(args, f"no_{n}"))
    opts = replace(SoakOptions(), minutes=args.minutes, load=args.load, probe_s=args.probe_s, windows=args.windows,
                   workers=args.workers, slow_clients=args.slow_clients, drain_s=args.drain_s,
                   p99_factor=args.p99_factor, rss_limit=args.rss_limit, workdir=args.workdir, seed=args.seed,
                   faults=faults)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1]),) * 2)
    summary = run_soak(opts)
    print(json.dumps(summary, indent=2))
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
