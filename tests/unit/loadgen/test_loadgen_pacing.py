"""The Pacer's sleep-then-spin arithmetic on a fake clock: exact, whatever the machine is doing."""

from __future__ import annotations

import pytest

from tensorforge.loadgen.pacing import MONOTONIC, Pacer


class FakeTime:
    """A clock that each read moves 1 µs forward (a spin) and whose sleeps overshoot by ``overshoot_ns``."""

    def __init__(self, overshoot_ns: int) -> None:
        self.t = 10_000_000_000
        self.overshoot_ns = overshoot_ns
        self.sleeps: list[int] = []
        self.reads = 0

    def clock(self) -> int:
        self.reads += 1
        self.t += 1_000
        return self.t

    def sleep(self, seconds: float) -> None:
        ns = round(seconds * 1e9)
        self.sleeps.append(ns)
        self.t += ns + self.overshoot_ns


def test_wait_sleeps_short_of_the_due_time_then_spins_to_it():
    fake = FakeTime(overshoot_ns=50_000)
    pacer = Pacer(margin_ns=20_000, initial_slack_ns=80_000, clock=fake.clock, sleep=fake.sleep)
    due = fake.t + 10_000_000
    got = pacer.wait_until(due)
    assert got >= due and got - due <= 1_000              # returns within one clock step of the due time
    # slept for the 10 ms less the slack and the margin (and the 1 µs of the first read)
    assert fake.sleeps == [10_000_000 - 80_000 - 20_000 - 1_000]
    # the 50 µs overshoot was below the 80 µs allowance: it shrinks slowly (alpha 0.05)
    assert pacer.slack_ns == pytest.approx(80_000 + 0.05 * (51_000 - 80_000))


def test_slack_follows_a_larger_overshoot_but_stays_capped():
    fake = FakeTime(overshoot_ns=150_000)
    pacer = Pacer(clock=fake.clock, sleep=fake.sleep)
    for _ in range(40):
        pacer.wait_until(fake.t + 5_000_000)
    assert pacer.slack_ns == pytest.approx(151_000, rel=0.01)   # converged on the sleeps' overshoot
    fake.overshoot_ns = 20_000_000                               # a busy CPU: a 20 ms late wake-up
    for _ in range(40):
        pacer.wait_until(fake.t + 50_000_000)
    assert pacer.slack_ns <= pacer.max_slack_ns                  # not timer slack: never spin that long


def test_a_due_time_in_the_past_returns_at_once_without_sleeping():
    fake = FakeTime(overshoot_ns=0)
    pacer = Pacer(clock=fake.clock, sleep=fake.sleep)
    start = fake.t
    assert pacer.wait_until(start - 1) == start + 1_000 and fake.sleeps == [] and fake.reads == 1


def test_the_real_clock_waits_through_ready_and_pacer():
    calls = []
    assert MONOTONIC.wait(lambda t: calls.append(t) or True, 3.0) is True and calls == [3.0]
    with MONOTONIC.pacer() as pacer:
        due = MONOTONIC.now_ns() + 200_000
        assert pacer.wait_until(due) >= due                      # never early (how late is not tested)
