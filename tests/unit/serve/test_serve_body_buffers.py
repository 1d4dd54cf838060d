"""The body buffers of serve/wire.py: aligned where the binary tensors start, reused only when nothing uses them."""

import asyncio

import numpy as np
import pytest

pytest.importorskip("httptools")     # serve/wire.py parses HTTP/1.1 with it (the serve extra)

from tensorforge.serve.wire import WireServer, _Connection
from tensorforge.serve.wire_cycle import Cycle


def connection():
    loop = asyncio.new_event_loop()
    conn = _Connection(WireServer(lambda *a: None, max_body_bytes=1 << 20), loop)
    loop.close()
    return conn


def cycle(conn):
    return Cycle(conn, {"method": "POST"}, keep_alive=True, expect_continue=False)


def address(view):
    return np.frombuffer(view, np.uint8, count=1).ctypes.data


def finish(conn, request):
    conn.server.give_back(request.buffer)
    request.buffer = request.body = None


def test_tensors_start_64_byte_aligned():
    conn = connection()
    for align_at in (0, 1, 37, 63, 64, 1000):
        r = cycle(conn)
        conn._give_buffer(r, 5000, align_at)
        assert len(r.body) == 5000 and (address(r.body) + align_at) % 64 == 0
        finish(conn, r)


def test_a_buffer_is_reused_only_when_no_tensor_refers_to_it():
    conn = connection()
    first = cycle(conn)
    conn._give_buffer(first, 4106, 10)
    tensor = np.frombuffer(first.body[10:], np.float32)     # what the adapter decodes: a view, no copy
    tensor[:] = 1.0
    held = first.buffer
    finish(conn, first)                                     # the response went out; the tensor lives on
    second = cycle(conn)
    conn._give_buffer(second, 4106, 10)
    assert second.buffer is not held
    np.frombuffer(second.body, np.uint8)[:] = 7             # writing the new body leaves the live tensor alone
    assert (tensor == 1.0).all()
    reused = second.buffer
    finish(conn, second)
    third = cycle(conn)
    conn._give_buffer(third, 1000, 3)                       # nothing refers to the second buffer: reused
    assert third.buffer is reused
    del tensor
    finish(conn, third)
    fourth, fifth = cycle(conn), cycle(conn)
    conn._give_buffer(fourth, 4000, 0)
    conn._give_buffer(fifth, 4000, 0)
    assert {id(fourth.buffer), id(fifth.buffer)} == {id(held), id(reused)}   # the tensor is gone: both free


def test_the_pool_is_bounded():
    server = WireServer(lambda *a: None, max_body_bytes=1 << 20)
    for _ in range(50):
        server.give_back(bytearray(100))
    assert len(server.pool) == 8
