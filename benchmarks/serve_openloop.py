"""Open-loop Poisson load over HTTP and the search for the highest rate that meets a p99 bound.

Used by serve_latency.py (not a test). Each request's latency is measured from its
*scheduled* send time, not from when the client got round to sending it, so a stalled
server cannot hide its queueing by slowing the client down (no coordinated omission).
The client's own lag (actual send − scheduled send) is reported next to the result so
a client-bound run is visible as such.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from tensorforge.core.stats import percentile


@dataclass(frozen=True)
class Probe:
    rate_rps: float
    sent: int
    ok: int
    failed: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    client_lag_p99_ms: float
    valid: bool
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass
class Search:
    bound_ms: float
    probes: list[Probe] = field(default_factory=list)

    @property
    def best(self) -> Probe | None:
        valid = [p for p in self.probes if p.valid]
        return max(valid, key=lambda p: p.rate_rps) if valid else None

    def to_dict(self) -> dict[str, Any]:
        best = self.best
        return {"max_rate_rps": best.rate_rps if best else 0.0, "p99_bound_ms": self.bound_ms,
                "at_max": best.to_dict() if best else None, "probes": [p.to_dict() for p in self.probes]}


async def _probe(url: str, body: bytes, headers: dict[str, str], rate: float, duration_s: float, seed: int,
                 bound_ms: float, warmup_s: float) -> Probe:
    import aiohttp

    rng = np.random.default_rng(seed)
    total = warmup_s + duration_s
    gaps = rng.exponential(1.0 / rate, int(rate * total * 1.5) + 20)
    times = np.cumsum(gaps)
    times = times[times < total]
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    lags: list[float] = []
    failures = 0
    timeout = aiohttp.ClientTimeout(total=max(10.0, bound_ms / 100.0))
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = loop.time() + 0.05

        async def one(when: float) -> None:
            nonlocal failures
            scheduled = start + when
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            sent = loop.time()
            ok = False
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    ok = response.status == 200
            except (aiohttp.ClientError, asyncio.TimeoutError):
                ok = False
            done = loop.time()
            if when < warmup_s:
                return
            if ok:
                latencies.append((done - scheduled) * 1000.0)
                lags.append((sent - scheduled) * 1000.0)
            else:
                failures += 1

        await asyncio.gather(*(one(float(t)) for t in times))
    measured = int(np.sum(times >= warmup_s))
    lat = np.array(latencies) if latencies else np.array([float("inf")])
    p50, p90, p99 = (float(percentile(lat, q)) for q in (0.50, 0.90, 0.99))
    reason = ""
    if failures:
        reason = f"{failures} failed request(s)"
    elif p99 > bound_ms:
        reason = f"p99 {p99:.1f} ms > {bound_ms:g} ms"
    return Probe(rate_rps=rate, sent=measured, ok=len(latencies), failed=failures, duration_s=duration_s,
                 p50_ms=p50, p90_ms=p90, p99_ms=p99, max_ms=float(lat.max()),
                 client_lag_p99_ms=float(percentile(lags, 0.99)) if lags else 0.0, valid=not reason, reason=reason)


def probe(url: str, body: bytes, headers: dict[str, str], rate: float, duration_s: float, *, seed: int = 0,
          bound_ms: float = 50.0, warmup_s: float = 0.5) -> Probe:
    """Offer Poisson arrivals at ``rate`` for ``duration_s`` (after ``warmup_s``, not counted)."""
    return asyncio.run(_probe(url, body, headers, rate, duration_s, seed, bound_ms, warmup_s))


def find_max_rate(url: str, body: bytes, headers: dict[str, str], *, start_rps: float, bound_ms: float = 50.0,
                  duration_s: float = 3.0, steps: int = 7, log: Callable[[str], None] = print) -> Search:
    """Grow the rate ×1.5 until a probe fails the bound, then bisect between the last pass and the first fail."""
    search = Search(bound_ms=bound_ms)
    lo, hi = 0.0, None
    rate = start_rps
    for step in range(steps):
        result = probe(url, body, headers, rate, duration_s, seed=step, bound_ms=bound_ms)
        search.probes.append(result)
        log(f"    {rate:8.1f} req/s → p50 {result.p50_ms:7.1f} ms  p99 {result.p99_ms:7.1f} ms  "
            f"{'ok' if result.valid else result.reason}")
        if result.valid:
            lo = max(lo, rate)
        else:
            hi = rate if hi is None else min(hi, rate)
        rate = rate * 1.5 if hi is None else (lo + hi) / 2 if lo else hi / 2
    return search
