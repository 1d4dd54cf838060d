"""Tests for tensorforge.bench.memory: real allocations, real RSS."""

from __future__ import annotations

import time

import numpy as np
import psutil
import pytest

from tensorforge.bench.memory import PeakMemory, available_memory_bytes

MB = 1_000_000
N = 200 * MB // 8  # float64 elements in 200 MB


def test_peak_sees_a_200mb_array_freed_before_exit() -> None:
    with PeakMemory() as mem:
        a = np.ones(N)  # ones, not zeros: calloc'd zeros are never touched, so not resident
        a[::4096] += 1.0
        del a
    assert mem.peak_delta_bytes >= 150 * MB


def test_sampler_thread_updates_peak_while_block_runs() -> None:
    with PeakMemory(interval_s=0.002) as mem:
        a = np.ones(N)
        deadline = time.monotonic() + 120.0     # a safety net only: the loop ends when the sampler saw it
        while mem.peak_delta_bytes < 150 * MB and time.monotonic() < deadline:
            time.sleep(0.005)
        seen_inside = mem.peak_delta_bytes  # before __exit__'s final sample
        del a
    assert seen_inside >= 150 * MB


def test_small_block_shows_no_large_peak() -> None:
    with PeakMemory() as mem:
        sum(range(1000))
    assert mem.baseline_bytes > 0
    assert mem.peak_delta_bytes < 50 * MB     # (peak >= baseline holds by construction: not tested)


def test_bad_interval_and_reuse() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        PeakMemory(interval_s=0)
    mem = PeakMemory()
    with mem:
        with pytest.raises(RuntimeError, match="already measuring"):
            mem.__enter__()


def test_available_memory_bytes() -> None:
    avail = available_memory_bytes()
    assert 0 < avail <= psutil.virtual_memory().total
