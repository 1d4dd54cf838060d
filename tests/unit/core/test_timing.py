"""Paired timing (core.timing): the schedule, the verdict rules, and Timer on an injected fake clock."""

from __future__ import annotations

import pytest

from tensorforge.core.timing import GIVE_UP_AFTER, Timer, paired_timing


class FakeClock:
    """Integer nanoseconds that only move when a contender 'runs' (advance) or is read (tick)."""

    def __init__(self, tick_ns: int = 0) -> None:
        self.now = 0
        self.tick_ns = tick_ns

    def __call__(self) -> int:
        self.now += self.tick_ns
        return self.now

    def advance(self, ns: int) -> None:
        self.now += ns


def timer_costing(clock: FakeClock, cost_ns: list[int] | int, requests_per_call: int = 1) -> Timer:
    """A Timer whose call takes ``cost_ns`` on the fake clock (a list: one cost per round, by call order)."""
    costs = cost_ns if isinstance(cost_ns, list) else None
    state = {"round": 0}

    def call(feeds: object) -> None:
        clock.advance(costs[state["round"]] if costs is not None else cost_ns)

    t = Timer(call, requests_per_call, clock=clock)
    t.state = state          # type: ignore[attr-defined]
    return t


def round_of(t: Timer, iterations: int):
    def run() -> float:
        rate = t.run_for({}, 0.0, min_iterations=iterations)
        t.state["round"] += 1       # type: ignore[attr-defined]
        return rate
    return run


def test_timer_rates_and_samples_on_a_fake_clock():
    clock = FakeClock()
    t = timer_costing(clock, 2_000_000, requests_per_call=2)      # 2 ms per call, 2 requests per call
    assert t.run_for({}, 0.0, min_iterations=5) == pytest.approx(1000.0)   # 10 requests in 10 ms
    assert t.samples == [2_000_000] * 5 and t.wall_ns == 10_000_000
    assert t.p50_ms() == 2.0
    m = t.measurement(batch=4, threshold_pct=10.0)
    assert m.iterations == 10 and m.throughput_sps == pytest.approx(4000.0) and m.latency["p99_ms"] == 2.0


def test_timer_round_lasts_until_the_deadline():
    clock = FakeClock()
    t = timer_costing(clock, 1_000_000)
    t.run_for({}, 0.0105, min_iterations=1)        # 10.5 ms of 1 ms calls: 11 calls
    assert len(t.samples) == 11


def test_paired_timing_alternates_the_order():
    order: list[str] = []

    def make(name: str, rate: float):
        def run() -> float:
            order.append(name)
            return rate
        return run

    p = paired_timing(make("a", 2.0), make("b", 1.0), 4)
    assert order == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert p.ours == (2.0,) * 4 and p.peer == (1.0,) * 4 and p.ratios == (2.0,) * 4


def test_paired_timing_on_fake_clock_gives_the_exact_ratio():
    clock = FakeClock()
    ours = timer_costing(clock, 1_000_000)           # 1 ms per call
    peer = timer_costing(clock, 2_000_000)           # 2 ms per call
    p = paired_timing(round_of(ours, 10), round_of(peer, 10), 3)
    assert p.ratios == (2.0, 2.0, 2.0) and p.median == 2.0 and p.noise_pct == 0.0 and p.verdict == "faster"


def test_drift_that_hits_both_cancels():
    clock = FakeClock()
    slowing = [1_000_000, 2_000_000, 4_000_000]      # the machine slows down round by round
    ours, peer = timer_costing(clock, slowing), timer_costing(clock, slowing)
    p = paired_timing(round_of(ours, 5), round_of(peer, 5), 3)
    assert p.ratios == (1.0, 1.0, 1.0) and p.verdict == "same"
    assert ours.round_rates == [1000.0, 500.0, 250.0]


def rates(ours: list[float], peer: list[float], **kw):
    a, b = iter(ours), iter(peer)
    return paired_timing(lambda: next(a), lambda: next(b), len(ours), **kw)


def test_verdicts():
    assert rates([110, 120, 105], [100, 100, 100]).verdict == "faster"
    assert rates([90, 95, 97], [100, 100, 100]).verdict == "slower"
    p = rates([98, 103, 101], [100, 100, 100])
    assert p.verdict == "same" and p.median == pytest.approx(1.01) and p.noise_pct == pytest.approx(2.5)


def test_min_gain_asks_for_a_gain_above_the_noise():
    # every round won, but the median gain (2 %) is below min_gain (5 %)
    assert rates([102, 102, 102], [100, 100, 100], min_gain=0.05).verdict == "same"
    # every round won, median gain 2 % above min_gain 1 %, but the rounds spread ±30 %
    assert rates([101, 102, 161], [100, 100, 100], min_gain=0.01).verdict == "same"
    assert rates([110, 111, 112], [100, 100, 100], min_gain=0.05).verdict == "faster"


def test_give_up_stops_a_challenger_far_behind():
    p = rates([50, 60, 200, 200], [100, 100, 100, 100], give_up_below=0.85)
    assert p.stopped_early and p.verdict == "slower" and len(p.ratios) == GIVE_UP_AFTER
    p = rates([80, 90, 95, 99], [100, 100, 100, 100], give_up_below=0.85)   # behind, not far: all rounds
    assert not p.stopped_early and len(p.ratios) == 4 and p.verdict == "slower"


def test_without_a_peer_only_ours_is_timed():
    p = paired_timing(lambda: 5.0, None, 3)
    assert p.ours == (5.0, 5.0, 5.0) and p.peer == () and p.median is None and p.verdict is None
    with pytest.raises(ValueError, match="rounds"):
        paired_timing(lambda: 1.0, None, 0)
