"""The soak's traffic (scripts/soak.py): its repository, the request mix, and the tally of what came back.

* :func:`build_repository` builds the models with the real build pipeline (see soak.py);
* :class:`Mix` holds pre-encoded requests — good ones with their reference outputs, computed in
  this process from the same engine files on the same inputs, and bad ones — and sends one;
* :class:`Tally` sorts every answer: a good request is ok (200 and outputs match), wrong (200 and
  they do not), lost (no answer within the hang guard), a failure its fault explains (the batch of a
  killed process instance, the unloaded model's 503/404), or unexpected; a bad request must get a
  4xx (or the connection closed), never a 5xx. It also keeps per-window latencies and RSS samples.
"""

from __future__ import annotations

import http.client
import json
import random
import shutil
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tensorforge.core.reference import compare
from tensorforge.core.tolerances import tolerance
from tensorforge.errors import VerificationError

CONFIGS: dict[str, dict[str, Any]] = {
    "mlp": {"max_batch_size": 8, "max_queue_delay_ms": 2, "instances": 2, "threads_per_instance": 1},
    "proc": {"max_batch_size": 8, "max_queue_delay_ms": 2, "instances": 2, "threads_per_instance": 1,
             "instance_kind": "process"},
    "gather": {"max_batch_size": 1, "max_queue_delay_ms": 0, "instances": 1, "threads_per_instance": 1},
    "victim": {"max_batch_size": 8, "max_queue_delay_ms": 2, "instances": 1, "threads_per_instance": 1},
}
# kind → weight in the mix; good kinds go to the model named before the underscore
GOOD = {"mlp_json": 40, "mlp_binary": 10, "proc_json": 15, "gather_json": 8, "victim_json": 7}
BAD = {"bad_json": 4, "bad_shape": 3, "bad_dtype": 3, "bad_nan": 3, "bad_garbled": 3, "bad_oversize": 1,
       "bad_model": 1, "bad_raise": 2}
STEADY = ("mlp_json", "mlp_binary")        # the model no fault touches: its latency is the tracked p99
OVERSIZE = (1 << 20) + 4096                # over the server's --max-request-mb 1
LATE_S = 1.0                               # a request sent this long after it was due: the load was not held


def gather_model() -> Any:
    """y = 2x and g = GatherElements(x, idx, axis=1): an idx outside 0..7 makes ONNX Runtime raise."""
    import onnx
    from onnx import TensorProto as T
    from onnx import helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["y"]), helper.make_node("GatherElements", ["x", "idx"], ["g"], axis=1)],
        "gather", [helper.make_tensor_value_info("x", T.FLOAT, ["N", 8]),
                   helper.make_tensor_value_info("idx", T.INT64, ["N", 1])],
        [helper.make_tensor_value_info("y", T.FLOAT, ["N", 8]), helper.make_tensor_value_info("g", T.FLOAT, ["N", 1])],
        initializer=[numpy_helper.from_array(np.array(2.0, np.float32), "two")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def build_repository(root: Path) -> Path:
    """root/<model>/1/model.tfe + config.json for every model in CONFIGS (tiny_mlp built once, copied)."""
    from tensorforge.engine.build import build

    for name, config in CONFIGS.items():
        (root / name / "1").mkdir(parents=True, exist_ok=True)
        (root / name / "config.json").write_text(json.dumps(config))
    build("tiny_mlp", root / "mlp" / "1" / "model.tfe")
    for copy in ("proc", "victim"):
        shutil.copyfile(root / "mlp" / "1" / "model.tfe", root / copy / "1" / "model.tfe")
    build(gather_model(), root / "gather" / "1" / "model.tfe")
    return root


@dataclass
class Outcome:
    status: int | None             # HTTP status; None: no answer (connection closed, or timed out)
    text: str = ""
    ok: bool = False               # 200 with the reference outputs
    wrong: bool = False            # 200 with other outputs
    timeout: bool = False          # no answer within the hang guard


@dataclass
class Request:
    path: str
    body: bytes
    headers: dict[str, str]
    expected: dict[str, np.ndarray] | None = None


def _json_body(inputs: dict[str, np.ndarray], datatypes: dict[str, str]) -> bytes:
    return json.dumps({"inputs": [{"name": k, "shape": list(v.shape), "datatype": datatypes[k],
                                   "data": v.reshape(-1).tolist()} for k, v in inputs.items()]}).encode()


def _binary_body(inputs: dict[str, np.ndarray], datatypes: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    head = json.dumps({"inputs": [{"name": k, "shape": list(v.shape), "datatype": datatypes[k],
                                   "parameters": {"binary_data_size": v.nbytes}} for k, v in inputs.items()]}).encode()
    body = head + b"".join(np.ascontiguousarray(v).tobytes() for v in inputs.values())
    return body, {"Inference-Header-Content-Length": str(len(head)), "Content-Type": "application/octet-stream"}


class Mix:
    """Pre-encoded requests of every kind, and how to send one and judge its answer."""

    def __init__(self, repo: Path, with_raise: bool = True, seed: int = 0, variants: int = 16) -> None:
        import tensorforge

        rng = np.random.default_rng(seed)
        sessions = {m: tensorforge.load(repo / m / "1" / "model.tfe", threads=1) for m in ("mlp", "gather")}
        self.requests: dict[str, list[Request]] = {k: [] for k in list(GOOD) + list(BAD)}
        json_headers = {"Content-Type": "application/json"}
        for _ in range(variants):
            x = rng.standard_normal((int(rng.integers(1, 5)), 64)).astype(np.float32)
            expected = dict(sessions["mlp"].run({"input": x}))
            body = _json_body({"input": x}, {"input": "FP32"})
            for model in ("mlp", "proc", "victim"):
                self.requests[f"{model}_json"].append(Request(f"/v2/models/{model}/infer", body, json_headers,
                                                              expected))
            bbody, bheaders = _binary_body({"input": x}, {"input": "FP32"})
            self.requests["mlp_binary"].append(Request("/v2/models/mlp/infer", bbody, bheaders, expected))
            g = {"x": rng.standard_normal((1, 8)).astype(np.float32), "idx": rng.integers(0, 8, (1, 1))}
            self.requests["gather_json"].append(Request("/v2/models/gather/infer", _json_body(
                g, {"x": "FP32", "idx": "INT64"}), json_headers, dict(sessions["gather"].run(g))))
            g_bad = {"x": g["x"], "idx": np.array([[int(rng.integers(8, 1 << 20))]], np.int64)}
            self.requests["bad_raise"].append(Request("/v2/models/gather/infer", _json_body(
                g_bad, {"x": "FP32", "idx": "INT64"}), json_headers))
            cut = int(rng.integers(1, len(body) - 1))
            self.requests["bad_json"].append(Request("/v2/models/mlp/infer", body[:cut], json_headers))
            bad_rows = x[:, : int(rng.integers(1, 64))]
            self.requests["bad_shape"].append(Request("/v2/models/mlp/infer", _json_body(
                {"input": bad_rows}, {"input": "FP32"}), json_headers))
            dtype = random.Random(cut).choice(["INT32", "INT64", "FP16", "BOOL", "BYTES"])
            self.requests["bad_dtype"].append(Request("/v2/models/mlp/infer", json.dumps({"inputs": [
                {"name": "input", "shape": list(x.shape), "datatype": dtype,
                 "data": [1] * x.size if dtype != "BYTES" else ["a"] * x.size}]}).encode(), json_headers))
            nan = x.copy()
            nan.flat[int(rng.integers(0, nan.size))] = np.nan if cut % 2 else np.inf
            self.requests["bad_nan"].append(Request("/v2/models/mlp/infer", *_binary_body({"input": nan},
                                                                                          {"input": "FP32"})))
            head_len = int(bheaders["Inference-Header-Content-Length"])
            garbled = [(bbody, str(len(bbody) + 1 + cut)), (bbody, str(max(1, head_len - 1 - cut % head_len))),
                       (bytes(rng.integers(0, 256, len(bbody), dtype=np.uint8)), str(head_len)),
                       (bbody[:head_len] + bbody[head_len:][: cut % (len(bbody) - head_len)], str(head_len))]
            g_body, g_len = garbled[cut % len(garbled)]
            self.requests["bad_garbled"].append(Request("/v2/models/mlp/infer", g_body, {
                "Inference-Header-Content-Length": g_len, "Content-Type": "application/octet-stream"}))
            self.requests["bad_model"].append(Request("/v2/models/no_such_model/infer", body, json_headers))
        self.requests["bad_oversize"].append(Request("/v2/models/mlp/infer", b'{"inputs": [' + b" " * OVERSIZE,
                                                     json_headers))
        weights = {**GOOD, **BAD}
        if not with_raise:
            weights.pop("bad_raise")
        self.kinds, self.weights = list(weights), list(weights.values())
        self._pick_lock = threading.Lock()
        self._rng = random.Random(seed)

    def pick(self, rng: random.Random) -> str:
        return rng.choices(self.kinds, self.weights)[0]

    def _variant(self, kind: str) -> Request:
        with self._pick_lock:
            return self._rng.choice(self.requests[kind])

    def send(self, conn: http.client.HTTPConnection, kind: str) -> tuple[Outcome, bool]:
        """Send one request of ``kind`` on ``conn``; (its outcome, whether the connection can be reused).
        A connection the server closed while idle is retried once on a fresh one (as HTTP clients do)."""
        req = self._variant(kind)
        if kind == "bad_oversize":
            return self._oversize(conn, req), False
        for attempt in (0, 1):
            try:
                conn.request("POST", req.path, body=req.body, headers=req.headers)
                resp = conn.getresponse()
                data = resp.read()
                break
            except socket.timeout:
                return Outcome(None, "timeout", timeout=True), False
            except (OSError, http.client.HTTPException) as exc:
                conn.close()            # the next request() opens a fresh connection
                if attempt:
                    return Outcome(None, f"{type(exc).__name__}: {exc}"), False
        reuse = not resp.will_close
        if resp.status != 200 or req.expected is None:
            return Outcome(resp.status, data[:300].decode(errors="replace")), reuse
        return judge(data, req.expected), reuse

    def _oversize(self, conn: http.client.HTTPConnection, req: Request) -> Outcome:
        """Send a body past the limit on its own socket: 413, or the server closing it, are both fine."""
        conn.close()
        with socket.create_connection((conn.host, conn.port), timeout=30) as s:
            head = (f"POST {req.path} HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(req.body)}\r\n\r\n").encode()
            try:
                s.sendall(head + req.body)
            except OSError:
                pass                              # the server answered and closed before reading it all
            return read_raw_response(s)

    def raw_request(self, kind: str = "mlp_json") -> tuple[bytes, Request]:
        req = self._variant(kind)
        head = (f"POST {req.path} HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(req.body)}\r\n\r\n").encode()
        return head + req.body, req

    def trickle(self, s: socket.socket, r: random.Random, stop: threading.Event) -> Outcome:
        """A good request sent in ~10 pieces over ~1 s; the answer must be right."""
        raw, req = self.raw_request()
        step = max(1, len(raw) // 10)
        for i in range(0, len(raw), step):
            s.sendall(raw[i:i + step])
            stop.wait(r.uniform(0.05, 0.15))
        out = read_raw_response(s)
        return judge(out.text.encode(), req.expected) if out.status == 200 and req.expected is not None else out

    def stalled_bytes(self, i: int) -> bytes:
        raw, _ = self.raw_request()
        head_end = raw.index(b"\r\n\r\n") + 4
        return raw[: head_end // 2] if i % 2 == 0 else raw[: head_end + (len(raw) - head_end) // 2]

    def stall(self, s: socket.socket, r: random.Random) -> Outcome:
        """Half a request, then nothing: the server should answer 408 or close once its timeout passes."""
        s.sendall(self.stalled_bytes(r.randrange(2)))
        return read_raw_response(s)


def judge(data: bytes, expected: dict[str, np.ndarray]) -> Outcome:
    """200 with outputs equal (to float tolerance: batching changes summation order) to the reference?"""
    try:
        outputs = {o["name"]: np.asarray(o["data"], np.float64).reshape(o["shape"])
                   for o in json.loads(data)["outputs"]}
        rtol = tolerance("fp32", across_kernels=True)
        match = set(outputs) == set(expected) and compare([outputs[k] for k in expected],
                                                          list(expected.values())).within(rtol)
    except (ValueError, KeyError, TypeError, VerificationError) as exc:
        return Outcome(200, f"unreadable answer: {exc}", wrong=True)
    return Outcome(200, "", ok=match, wrong=not match)


def read_raw_response(s: socket.socket) -> Outcome:
    """Read one HTTP/1.1 response from a raw socket (Content-Length bodies, else up to EOF)."""
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                return Outcome(None, "closed" if not buf else f"closed mid-head: {buf[:80]!r}")
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next((int(ln.split(":", 1)[1]) for ln in lines[1:] if ln.lower().startswith("content-length:")),
                      None)
        while length is None or len(body) < length:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
    except socket.timeout:
        return Outcome(None, "timeout", timeout=True)
    except (OSError, ValueError, IndexError) as exc:
        return Outcome(None, f"{type(exc).__name__}: {exc}")
    return Outcome(status, body.decode(errors="replace"))


class Tally:
    """Every answer, sorted (see the module docstring), per kind and per window."""

    def __init__(self, windows: int, t0: float, duration: float) -> None:
        self.t0, self.width, self.n = t0, max(duration / windows, 1e-9), windows
        self.lock = threading.Lock()
        self.kinds: dict[str, dict[str, int]] = {}
        self.counts = {k: 0 for k in ("good_sent", "good_ok", "wrong", "lost", "unexpected", "bad_sent", "bad_4xx",
                                      "bad_5xx", "bad_closed", "stalls_not_closed", "answered_fast")}
        self.fault_failures: dict[str, int] = {}
        self.samples: dict[str, list[str]] = {}
        self.latency: list[list[float]] = [[] for _ in range(windows)]      # send → answer (the server's part)
        self.from_sched: list[list[float]] = [[] for _ in range(windows)]   # scheduled time → answer
        self.late = [0] * windows            # sent over LATE_S after their scheduled time (client behind)
        self.requests = [0] * windows
        self.rss_samples: list[tuple[float, int]] = []
        self.backlog: list[tuple[float, int]] = []
        self.server: list[tuple[float, float, int]] = []

    def _window(self, t: float) -> int:
        return min(self.n - 1, max(0, int((t - self.t0) / self.width)))

    def record(self, kind: str, out: Outcome, latency_s: float, sched: float, sent: float | None = None) -> None:
        """``latency_s``: send → answer; ``sched``/``sent``: when the request was due and when it went out."""
        key = "timeout" if out.timeout else "closed" if out.status is None else str(out.status)
        with self.lock:
            seen = self.kinds.setdefault(kind, {})
            seen[key] = seen.get(key, 0) + 1
            w = self._window(sched)
            self.requests[w] += 1
            if out.status is not None and kind != "slow_stall":
                self.counts["answered_fast"] += 1
            verdict = self._classify(kind, out)
            self.counts[verdict] = self.counts.get(verdict, 0) + 1
            if verdict in ("wrong", "lost", "unexpected", "bad_5xx") and len(self.samples.get(verdict, [])) < 5:
                self.samples.setdefault(verdict, []).append(f"{kind}: {key} {out.text[:160]}")
            sent = sched if sent is None else sent
            if sent - sched > LATE_S:
                self.late[w] += 1
            if verdict == "good_ok" and kind in STEADY:
                self.latency[w].append(latency_s)
                self.from_sched[w].append(sent - sched + latency_s)

    def _classify(self, kind: str, out: Outcome) -> str:
        if kind in GOOD or kind == "slow_trickle":
            self.counts["good_sent"] += 1
            if out.ok:
                return "good_ok"
            if out.wrong:
                return "wrong"
            if out.status is None:
                return "lost"
            if kind == "proc_json" and out.status >= 500 and "instance process died" in out.text:
                self.fault_failures["kill"] = self.fault_failures.get("kill", 0) + 1
                return "fault_kill"
            if kind == "victim_json" and out.status in (404, 503):
                self.fault_failures["unload"] = self.fault_failures.get("unload", 0) + 1
                return "fault_unload"
            return "unexpected"
        if kind == "bad_raise":
            return "raised_500" if out.status == 500 else "unexpected"
        self.counts["bad_sent"] += 1
        if out.timeout:
            return "stalls_not_closed" if kind == "slow_stall" else "lost"
        if out.status is None:
            return "bad_closed"
        return "bad_5xx" if out.status >= 500 else "bad_4xx" if out.status >= 400 else "unexpected"

    def rss(self, t: float, rss: int, backlog: int = 0, cpu_s: float = 0.0, threads: int = 0) -> None:
        """One sample of the server (RSS, CPU seconds, threads) and of the client backlog."""
        with self.lock:
            self.rss_samples.append((t - self.t0, round(rss / 2**20, 1)))
            self.backlog.append((t - self.t0, backlog))
            self.server.append((t - self.t0, cpu_s, threads))

    def window_report(self) -> list[dict[str, Any]]:
        out = []
        for w in range(self.n):
            lat, sched = np.array(self.latency[w]) * 1e3, np.array(self.from_sched[w]) * 1e3
            rss = [m for t, m in self.rss_samples if self._window(self.t0 + t) == w]
            backlog = [b for t, b in self.backlog if self._window(self.t0 + t) == w]
            srv = [(t, c, n) for t, c, n in self.server if self._window(self.t0 + t) == w]
            cpu = 100 * (srv[-1][1] - srv[0][1]) / (srv[-1][0] - srv[0][0]) if len(srv) > 1 else None
            out.append({"window": w, "t_end_s": round((w + 1) * self.width, 1), "requests": self.requests[w],
                        "rps": round(self.requests[w] / self.width, 1),
                        "p50_ms": round(float(np.percentile(lat, 50)), 2) if lat.size else None,
                        "p99_ms": round(float(np.percentile(lat, 99)), 2) if lat.size else None,
                        "p99_from_schedule_ms": round(float(np.percentile(sched, 99)), 2) if sched.size else None,
                        "sent_late": self.late[w], "max_client_backlog": max(backlog) if backlog else 0,
                        "server_cpu_pct": None if cpu is None else round(cpu), "server_threads": srv[-1][2] if srv
                        else None,
                        "rss_mib": float(np.median(rss[-5:])) if rss else None})
        return out

    def totals(self) -> dict[str, Any]:
        with self.lock:
            return {**self.counts, "fault_failures": dict(self.fault_failures), "samples": dict(self.samples)}


