"""find-max converges on a target's known capacity; the latency sweep re-judges probes for every budget.

The target is a simulated queue on simulated time (:mod:`loadgen_sim`): its capacity is
exactly what it says, and every probe's latencies are the same on a busy machine as on an
idle one.
"""

from __future__ import annotations

import pytest
from loadgen_sim import SimClock, SimTarget

from tensorforge.errors import InputError
from tensorforge.loadgen.findmax import ProbeCache, find_max_qps, latency_sweep
from tensorforge.loadgen.scenarios import ScenarioSettings

FAST = dict(scenario="server", target_qps=1.0, percentile=0.9, min_duration_s=0.4, warmup_s=0.05)


def one_worker(ms: float) -> SimTarget:
    return SimTarget.per_sample(SimClock(), ms)


def test_find_max_converges_on_the_known_capacity():
    # One worker, 2 ms per query: exactly 500 queries/s.
    # Below capacity an M/D/1 queue's p90 stays within 20 ms up to ~85 % load, so the answer lies between
    # ~0.55 and 1.0 of capacity. A finite run (0.8 s) is lenient above capacity by about bound / (0.9 × run)
    # = 2.8 %, since its queue has little time to grow — hence the 5 % headroom on top.
    target = one_worker(2.0)
    try:
        found = find_max_qps(target, ScenarioSettings(latency_bound_ms=20.0, **{**FAST, "min_duration_s": 0.8}),
                             tolerance=0.08, max_probes=8)
    finally:
        target.close()
    assert found.capacity_estimate_qps == pytest.approx(500, rel=0.01)
    assert 0.55 * 500 <= found.max_valid_qps <= 1.05 * 500
    valid = [p.target_qps for p in found.probes if p.valid]
    invalid = [p.target_qps for p in found.probes if not p.valid]
    assert max(valid) == found.max_valid_qps and invalid and min(invalid) > found.max_valid_qps
    assert found.converged and found.lowest_invalid_qps <= found.max_valid_qps * 1.08 + 1e-6
    assert found.best.valid and found.best.settings["target_qps"] == pytest.approx(found.max_valid_qps)
    assert found.to_dict()["probes"]


def test_tighter_bound_gives_lower_max_and_probes_are_rejudged_not_rerun():
    target = one_worker(2.0)
    try:
        base = ScenarioSettings(latency_bound_ms=40.0, **FAST)
        cache = ProbeCache(target, base)
        record = cache.run(300.0)
        assert cache.judge(300.0, 0.001).valid is False          # same latencies, judged against 1 µs
        assert cache.judge(300.0, 10_000.0).valid is True        # … and against 10 s
        assert len(cache.records) == 1 and cache.records[300.0] is record
        sweep = latency_sweep([("sleep 2ms", lambda: target)], [8.0, 40.0], base, tolerance=0.15, max_probes=6)
    finally:
        target.close()
    tight, loose = sweep.max_qps["sleep 2ms"][8.0], sweep.max_qps["sleep 2ms"][40.0]
    # 0.4 s runs are lenient above capacity by up to bound / (0.9 × 0.4 s): 11 % for 40 ms, plus the tolerance
    assert tight is not None and loose is not None and tight <= loose <= 500 * 1.11 * 1.15
    assert sweep.best[40.0] == ("sleep 2ms", loose)
    d = sweep.to_dict()
    assert d["budgets_ms"] == [8.0, 40.0] and "details" in d


def test_find_max_needs_a_server_scenario_with_a_bound():
    target = one_worker(1.0)
    try:
        with pytest.raises(InputError):
            find_max_qps(target, ScenarioSettings(scenario="single-stream"))
        with pytest.raises(InputError):
            find_max_qps(target, ScenarioSettings(latency_bound_ms=5.0, **FAST), tolerance=2.0)
    finally:
        target.close()
    with pytest.raises(InputError):
        latency_sweep([], [5.0], ScenarioSettings(latency_bound_ms=5.0, **FAST))
