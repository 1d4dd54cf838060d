"""Paired timing: the verdict rules shared by bench and the tuner."""

from __future__ import annotations

import pytest

from tensorforge.bench.timing import Timer, paired_speedup


def test_paired_speedup_verdicts():
    def timer(rates):
        t = Timer(lambda feeds: None)
        t.round_rates = list(rates)
        return t

    assert paired_speedup(timer([110, 120, 105]), timer([100, 100, 100]))[2] == "faster"
    assert paired_speedup(timer([90, 95, 97]), timer([100, 100, 100]))[2] == "slower"
    median, half_range, verdict = paired_speedup(timer([98, 103, 101]), timer([100, 100, 100]))
    assert verdict == "same" and median == pytest.approx(1.01) and half_range == pytest.approx(2.5)
    # drift that hits both contenders alike cancels in the paired ratio
    median, _, verdict = paired_speedup(timer([200, 100, 50]), timer([200, 100, 50]))
    assert median == 1.0 and verdict == "same"
