"""This host: its CPU (model name, the ISA features that change which kernels a library picks),
cores, memory, GPUs, and the library versions — the fingerprint every engine manifest records,
so a user (and the tuner's cache) can tell when an engine runs on a machine unlike the one it
was built and timed on.

CPU facts are read once from ``/proc/cpuinfo`` (Linux; elsewhere the platform's processor name
and no flags); the INT8 quantizer asks them whether this CPU has VNNI.

Example::

    from tensorforge.core.host import host_fingerprint, isa_flags
    "avx512_vnni" in isa_flags(); host_fingerprint()["cpu_model"]
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from typing import Any

__all__ = ["ISA_FLAGS", "cpu_model", "fingerprint_differences", "host_fingerprint", "is_x86", "isa_flags",
           "library_versions"]

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


def _gpus() -> list[str]:
    """NVIDIA GPUs by name via nvidia-smi, when present; [] otherwise (never raises)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


@lru_cache(maxsize=1)
def host_fingerprint() -> dict[str, Any]:
    import psutil

    model, flags = cpu_model(), isa_flags()
    return {
        "cpu_model": model,
        "isa_flags": flags,
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_bytes": psutil.virtual_memory().total,
        "machine": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "gpus": _gpus(),
    }


def library_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for dist in ("tensorforge", "numpy", "onnx", "onnx-ir", "onnxruntime"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


def fingerprint_differences(recorded: dict[str, Any], current: dict[str, Any] | None = None) -> list[str]:
    """Human-readable differences between a recorded fingerprint and this host ([] when the same)."""
    current = current or host_fingerprint()
    diffs = []
    for key in ("cpu_model", "isa_flags", "logical_cores", "gpus"):
        if recorded.get(key) != current.get(key):
            diffs.append(f"{key}: built on {recorded.get(key)!r}, running on {current.get(key)!r}")
    return diffs
