"""Whether a backend's kernels can use the zeros of 2:4 / unstructured sparsity, and the settings that ask.

Sparsity zeroes weights in place (sparsity.py): the graph stays dense, so it only runs faster where
a runtime packs sparse weights itself. Today, on the backends here, that is OpenVINO's CPU plugin
with ``CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE`` (``ov.properties.intel_cpu.sparse_weights_decompression_rate``
in releases that name it in Python; this one takes the string key): a fully connected layer whose
weights are at least that sparse is stored compressed and decompressed on the fly. OpenVINO
documents it for INT8 fully connected layers on CPUs with AMX (4th-gen Xeon and later); on any
other CPU the plugin accepts the property and ignores it.

:func:`openvino_sparse_support` says, for a spec and this CPU's ISA flags, whether it applies and
the properties to compile with — ``{}`` and the reason ("unsupported here: …") when it does not,
so a report says why instead of claiming a speed-up.

Example::

    support = openvino_sparse_support("2:4")
    support.supported, support.properties, support.reason
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..core.host import isa_flags
from .spec import PruneSpec, parse_prune

__all__ = ["OPENVINO_SPARSE_PROPERTY", "SparseSupport", "openvino_sparse_support"]

OPENVINO_SPARSE_PROPERTY = "CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE"
_AMX = ("amx_int8", "amx_bf16", "amx_tile")


@dataclass(frozen=True)
class SparseSupport:
    """``supported``: the backend packs these sparse weights on this CPU; ``properties``: what to compile
    with (empty when not supported); ``reason``: why, in a sentence for the report."""

    backend: str
    supported: bool
    reason: str
    properties: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "supported": self.supported, "reason": self.reason,
                "properties": dict(self.properties)}


def decompression_rate(spec: PruneSpec) -> float:
    """The threshold to set: a hair under the sparsity every layer gets (2:4: 0.5), so each qualifies."""
    return round(max(spec.ratio - 0.01, 0.0), 4)


def openvino_sparse_support(spec: "str | PruneSpec", flags: list[str] | None = None) -> SparseSupport:
    """Whether OpenVINO's CPU plugin can run ``spec``'s sparse weights compressed on a CPU with ``flags``
    (default: this one's ISA flags, core/host.py)."""
    parsed = parse_prune(spec) or PruneSpec("channels", 0.0)
    if parsed.kind == "channels":
        return SparseSupport("openvino", False, "channel pruning leaves a smaller dense graph: no sparse weights to "
                                                "pack (every backend runs it faster as is)")
    have = flags if flags is not None else isa_flags()
    amx = [f for f in _AMX if f in have]
    if not amx:
        return SparseSupport("openvino", False,
                             f"unsupported here: OpenVINO decompresses sparse weights ({OPENVINO_SPARSE_PROPERTY}) "
                             "only on CPUs with AMX, and this CPU has none (its best is "
                             f"{_best(have)}): no speed-up from {parsed} on this backend")
    rate = decompression_rate(parsed)
    return SparseSupport("openvino", True,
                         f"this CPU has {', '.join(amx)}: OpenVINO packs fully connected weights at least {rate:g} "
                         f"sparse ({OPENVINO_SPARSE_PROPERTY}={rate:g}); documented for INT8 layers, so pair "
                         f"{parsed} with --precision int8 and measure it (benchmarks/prune_speed.py)",
                         {OPENVINO_SPARSE_PROPERTY: rate})


def _best(flags: list[str]) -> str:
    for f in ("avx512_vnni", "avx512f", "avx2", "avx"):
        if f in flags:
            return f
    return "no AVX"
