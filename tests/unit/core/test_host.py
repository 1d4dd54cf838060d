"""core.host: the CPU's model and ISA flags, read once, and the build's hint that follows from them."""

from __future__ import annotations

from tensorforge.core import host
from tensorforge.core.host import host_fingerprint


def test_flags_are_the_known_isa_features_in_order():
    flags = host.isa_flags()
    assert flags == [f for f in host.ISA_FLAGS if f in flags]
    assert host.cpu_model()
    assert host_fingerprint()["isa_flags"] == flags


def test_the_plain_build_points_at_optimize_where_the_cpu_computes_bf16(monkeypatch):
    from tensorforge.engine import build as build_mod

    monkeypatch.setattr(build_mod, "isa_flags", lambda: ["avx2", "avx512f", "avx512_bf16", "amx_bf16"])
    assert "optimize=latency|throughput" in (build_mod._host_hint() or "")
    monkeypatch.setattr(build_mod, "isa_flags", lambda: ["avx2", "fma"])
    assert build_mod._host_hint() is None
