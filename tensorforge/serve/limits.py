"""What a request may declare before the server allocates anything for it: shapes, JSON nesting, parameters.

Checked in the codec (protocol.py for HTTP, grpc_codec.py for gRPC) so both protocols answer the same
InputError (400 / INVALID_ARGUMENT) naming the bad value, and no declared number reaches an allocation,
a reshape or a timer unchecked:

* a shape has at most ``MAX_RANK`` dimensions (NumPy's own limit) and, its zero dimensions left out,
  at most ``MAX_ELEMENTS`` elements — so ``[0, 2**70]`` is refused, not a 500 from NumPy;
* a request's JSON (outside tensor ``data``) nests at most ``MAX_JSON_DEPTH`` deep; deeper than the
  JSON parser can go is refused the same way;
* ``timeout`` (µs) is at most ``MAX_TIMEOUT_US``, ``priority`` at most ``MAX_PRIORITY``.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from ..errors import InputError

MAX_RANK = 64                        # NumPy refuses more dimensions
MAX_ELEMENTS = 2**40                 # product of the non-zero dimensions; far above any body the server accepts
MAX_JSON_DEPTH = 64                  # nesting of the request JSON outside tensor data
MAX_TIMEOUT_US = 86_400 * 10**6      # one day
MAX_PRIORITY = 2**31 - 1
_INT_PARAMS = {"timeout": MAX_TIMEOUT_US, "priority": MAX_PRIORITY}


def check_shape(shape: Any, tensor: str) -> list[int]:
    """``shape`` as a list of dimensions, or InputError naming what is wrong with it."""
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise InputError(f"tensor {tensor!r}: shape must be a list of non-negative integers, got {str(shape)[:200]}")
    if len(shape) > MAX_RANK:
        raise InputError(f"tensor {tensor!r}: shape has {len(shape)} dimensions; at most {MAX_RANK} are supported")
    nonzero = 1
    for d in shape:
        nonzero *= d or 1
        if nonzero > MAX_ELEMENTS:
            raise InputError(f"tensor {tensor!r}: shape {str(shape)[:200]} declares more than {MAX_ELEMENTS} "
                             "elements; send the tensor's real shape")
    return shape


def element_count(shape: Sequence[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def loads_json(text: bytes | str, what: str = "request body") -> Any:
    """``json.loads`` with nesting past the parser's recursion limit refused as InputError, not a crash."""
    try:
        return json.loads(text)
    except RecursionError:
        raise InputError(f"{what} nests JSON too deeply; at most {MAX_JSON_DEPTH} levels are accepted") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{what} is not valid JSON ({exc})") from None


def check_json_depth(value: Any, what: str, skip: str = "data") -> None:
    """InputError when ``value`` nests deeper than MAX_JSON_DEPTH; values under a ``skip`` key (tensor data,
    whose nesting the shape check bounds) are not walked. Iterative: no recursion to exhaust."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise InputError(f"{what} nests JSON {depth} levels deep; at most {MAX_JSON_DEPTH} are accepted")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for k, v in item.items() if k != skip)
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def param_int(params: Mapping[str, Any], key: str, maximum: int | None = None) -> int | None:
    """A non-negative integer request parameter within its range, None when absent; InputError otherwise."""
    value = params.get(key)
    if value is None:
        return None
    top = maximum if maximum is not None else _INT_PARAMS.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or (top is not None and value > top):
        bound = f" at most {top}" if top is not None else ""
        unit = " (microseconds)" if key == "timeout" else ""
        raise InputError(f"parameter {key!r} must be a non-negative integer{bound}{unit}, got {str(value)[:40]}")
    return value
