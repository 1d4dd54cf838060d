"""A known-length body buffer of serve/wire.py grows as bytes arrive (issue #13): what was read survives each
growth, and the byte where the binary tensors start stays 64-byte aligned."""

import asyncio

import numpy as np
import pytest

pytest.importorskip("httptools")     # serve/wire.py parses HTTP/1.1 with it (the serve extra)

from tensorforge.serve.wire import _FIRST_BODY, WireServer, _Connection
from tensorforge.serve.wire_cycle import Cycle


def connection():
    loop = asyncio.new_event_loop()
    conn = _Connection(WireServer(lambda *a: None, max_body_bytes=64 << 20), loop)
    loop.close()
    return conn


def test_growth_keeps_the_bytes_and_the_alignment():
    conn = connection()
    request = Cycle(conn, {"method": "POST"}, keep_alive=True, expect_continue=False)
    length, align_at = 10 * _FIRST_BODY + 123, 77
    request.length, request.align_at = length, align_at
    conn._give_buffer(request, min(length, _FIRST_BODY), align_at)
    payload = np.random.default_rng(0).integers(0, 256, length, dtype=np.uint8).tobytes()
    sizes = []
    conn.sink = request
    while request.filled < length:                # what the event loop does: get_buffer, write, buffer_updated
        view = conn.get_buffer(-1)
        n = min(len(view), 300_000, length - request.filled)
        view[:n] = payload[request.filled:request.filled + n]
        request.filled += n
        sizes.append(len(request.body))
        assert (np.frombuffer(request.body, np.uint8, count=1).ctypes.data + align_at) % 64 == 0
    assert bytes(request.body) == payload and len(request.body) == length
    assert sizes[0] == _FIRST_BODY and len(set(sizes)) <= 4   # ×4 steps up to the declared length
