"""Numbers as people read them in reports and tables: counts with k/M/G, sizes with KiB/MiB/GiB."""

from __future__ import annotations

__all__ = ["human_count", "human_bytes"]


def human_count(n: float) -> str:
    """``1234567`` -> ``"1.23 M"`` (decimal units: parameters, MACs)."""
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f} {unit}"
    return f"{n:.0f}"


def human_bytes(n: float) -> str:
    """``3145728`` -> ``"3.0 MiB"`` (binary units: memory, files)."""
    for unit, div in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n:.0f} B"
