"""Content digests shared by the engine file format and the tuner's cache keys."""

from __future__ import annotations

import hashlib

__all__ = ["sha256"]


def sha256(data: bytes) -> str:
    """Hex SHA-256 of ``data``.

    >>> sha256(b"")[:12]
    'e3b0c44298fc'
    """
    return hashlib.sha256(data).hexdigest()
