"""This host's CPU: its model name and the ISA features that change which kernels a library picks.

Read once from ``/proc/cpuinfo`` (Linux; elsewhere the platform's processor name and no flags).
The build fingerprint records them, and the INT8 quantizer asks whether this CPU has VNNI.

Example::

    from tensorforge.core.host import cpu_model, isa_flags
    "avx512_vnni" in isa_flags()
"""

from __future__ import annotations

import platform
from functools import lru_cache

__all__ = ["ISA_FLAGS", "cpu_model", "isa_flags", "is_x86"]

# ISA features that change which kernels a CPU library picks; the rest of /proc/cpuinfo is noise.
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
             "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16",
             "asimd", "asimdhp", "asimddp", "sve", "sve2", "i8mm", "bf16")


@lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, tuple[str, ...]]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model", "cpu model") and value.strip():
                    model = value.strip()
                elif key in ("flags", "Features"):
                    flags.update(value.split())
    except OSError:
        pass
    return model, tuple(f for f in ISA_FLAGS if f in flags)


def cpu_model() -> str:
    return _cpuinfo()[0]


def isa_flags() -> list[str]:
    """The :data:`ISA_FLAGS` this CPU has, in that order."""
    return list(_cpuinfo()[1])


def is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")
