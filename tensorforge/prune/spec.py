"""The pruning spec a user writes, parsed once: ``channels:30%``, ``2:4``, ``unstructured:70%``.

Forms (case-insensitive, ratios as ``30%`` or ``0.3``, in [0, 1)):

- ``channels:R[:criterion]`` — structured: remove the fraction R of the output channels of every
  prunable channel group (see groups.py), ranked by ``l1`` (default), ``l2`` (norm of each filter)
  or ``bn`` (|gamma| of the BatchNormalization after the layer, l1 where there is none).
- ``2:4`` — semi-structured: in every group of 4 weights along the input-channel axis keep the 2
  of largest magnitude (NVIDIA Ampere sparse tensor cores' pattern).
- ``unstructured:R`` — zero the fraction R of smallest-magnitude weights of each layer.

Example::

    parse_prune("channels:30%")     # PruneSpec(kind='channels', ratio=0.3, criterion='l1')
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["CRITERIA", "KINDS", "PruneSpec", "parse_prune"]

KINDS = ("channels", "2:4", "unstructured")
CRITERIA = ("l1", "l2", "bn")
_HELP = "use channels:30% (optionally channels:30%:l1|l2|bn), 2:4 or unstructured:70%"


@dataclass(frozen=True)
class PruneSpec:
    """What to prune: ``kind`` (channels | 2:4 | unstructured), ``ratio`` (fraction removed; 0.5 for
    2:4) and, for channels, the ranking ``criterion``."""

    kind: str
    ratio: float
    criterion: str = "l1"

    def __str__(self) -> str:
        if self.kind == "2:4":
            return "2:4"
        tail = f":{self.criterion}" if self.kind == "channels" and self.criterion != "l1" else ""
        return f"{self.kind}:{self.ratio:.4g}{tail}"


def _ratio(text: str, spec: str) -> float:
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ConfigError(f"prune={spec!r}: {text!r} is not a ratio; {_HELP}") from None
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"prune={spec!r}: the ratio must be in [0, 1) (0%..99%), got {value:g}; {_HELP}")
    return value


def parse_prune(spec: "str | PruneSpec | None") -> PruneSpec | None:
    """The :class:`PruneSpec` of ``spec`` (None stays None); raises ConfigError for a bad spec."""
    if spec is None or isinstance(spec, PruneSpec):
        return spec
    if not isinstance(spec, str):
        raise ConfigError(f"prune must be a string such as 'channels:30%', got {type(spec).__name__}")
    text = spec.strip().lower()
    if text in ("2:4", "nm:2:4", "semi:2:4"):
        return PruneSpec("2:4", 0.5)
    kind, _, rest = text.partition(":")
    if kind == "channels" and rest:
        ratio_text, _, criterion = rest.partition(":")
        criterion = criterion or "l1"
        if criterion not in CRITERIA:
            raise ConfigError(f"prune={spec!r}: unknown criterion {criterion!r}; use one of {', '.join(CRITERIA)}")
        return PruneSpec("channels", _ratio(ratio_text, spec), criterion)
    if kind == "unstructured" and rest:
        return PruneSpec("unstructured", _ratio(rest, spec))
    raise ConfigError(f"unknown prune spec {spec!r}; {_HELP}")
