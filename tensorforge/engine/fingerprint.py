"""Who built an engine and with what: the build-host fingerprint and library versions.

Recorded in every manifest so a user (and later the tuner) can tell when an engine is
loaded on a machine unlike the one it was built and timed on.
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

from ..core.host import cpu_model, isa_flags


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
