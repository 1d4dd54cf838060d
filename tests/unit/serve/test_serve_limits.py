"""What a request may declare (serve/limits.py), checked before anything is allocated for it (issue #13):
BYTES element counts against the data, shapes (rank, zero-and-huge), JSON nesting, parameter ranges —
each an InputError naming the problem, never a MemoryError, RecursionError or NumPy ValueError."""

from __future__ import annotations

import json
import threading
import tracemalloc

import numpy as np
import pytest

from tensorforge.errors import InputError, RequestTimeout
from tensorforge.serve.batching import BatcherConfig, DynamicBatcher
from tensorforge.serve.grpc_codec import decode_grpc_request
from tensorforge.serve.protocol import decode_http_request


def pb2():
    """KServe v2 gRPC messages (tritonclient, in the serve extra): a test that needs them skips without it."""
    return pytest.importorskip("tritonclient.grpc").service_pb2


def body(shape, datatype="FP32", data=None, binary=None, parameters=None, extra=None):
    tensor = {"name": "t", "shape": shape, "datatype": datatype, **(extra or {})}
    if binary is not None:
        tensor["parameters"] = {"binary_data_size": len(binary)}
    else:
        tensor["data"] = data if data is not None else []
    head = json.dumps({"inputs": [tensor], "parameters": parameters or {}}).encode()
    return head + (binary or b""), len(head) if binary is not None else None


def peak_bytes_of(call):
    tracemalloc.start()
    try:
        with pytest.raises(InputError) as info:
            call()
        return tracemalloc.get_traced_memory()[1], str(info.value)
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("count", [2**27, 2**40])
def test_bytes_shape_is_checked_against_the_data_before_allocating(count):
    raw, n = body([count], "BYTES", binary=b"\x01\x00\x00\x00a")      # one element of data
    peak, message = peak_bytes_of(lambda: decode_http_request(raw, n))
    assert peak < 1 << 20 and f"{count} BYTES elements" in message


def test_bytes_shape_over_grpc_is_checked_before_allocating():
    request = pb2().ModelInferRequest(model_name="m")
    request.inputs.add(name="t", datatype="BYTES", shape=[2**27])
    request.raw_input_contents.append(b"")
    peak, message = peak_bytes_of(lambda: decode_grpc_request(request))
    assert peak < 1 << 20 and "BYTES elements" in message


@pytest.mark.parametrize("shape, data, message", [
    ([0, 2**70], [], "more than"),
    ([0, 2**40, 2**40], [], "more than"),
    ([1] * 65, [1.0], "65 dimensions"),
])
def test_impossible_shapes_are_input_errors(shape, data, message):
    raw, n = body(shape, data=data)
    with pytest.raises(InputError, match=message):
        decode_http_request(raw, n)
    if max(shape) >= 2**63:
        return                                                # gRPC shapes are int64: it cannot even be sent
    request = pb2().ModelInferRequest(model_name="m")
    request.inputs.add(name="t", datatype="FP32", shape=shape)
    request.raw_input_contents.append(np.asarray(data, np.float32).tobytes())
    with pytest.raises(InputError, match=message):
        decode_grpc_request(request)


def test_a_zero_sized_tensor_with_a_large_dimension_still_decodes():
    raw, n = body([0, 2**30], data=[])
    assert decode_http_request(raw, n).inputs["t"].shape == (0, 2**30)


@pytest.mark.parametrize("where", ["parameters", "data", "extra"])
def test_deeply_nested_json_is_an_input_error(where):
    deep = json.loads("[" * 100 + "]" * 100)
    if where == "parameters":
        raw, n = body([1], data=[1.0], parameters={"x": deep})
    elif where == "extra":
        raw, n = body([1], data=[1.0], extra={"x": deep})
    else:
        raw = (b'{"inputs":[{"name":"t","shape":[1],"datatype":"FP32","data":' + b"[" * 1000 + b"1" + b"]" * 1000
               + b"}]}")
        n = None
    with pytest.raises(InputError, match="nests JSON|ragged|malformed"):
        decode_http_request(raw, n)


def test_json_nested_past_the_parser_limit_is_an_input_error():
    raw = b'{"inputs":[],"parameters":{"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    with pytest.raises(InputError, match="nests JSON too deeply"):
        decode_http_request(raw, None)


@pytest.mark.parametrize("key, value", [("timeout", 2**63), ("priority", 2**63), ("timeout", -1),
                                        ("timeout", 1.5), ("priority", "high")])
def test_parameters_are_range_checked_by_name(key, value):
    raw, n = body([1], data=[1.0], parameters={key: value})
    with pytest.raises(InputError, match=f"parameter '{key}'"):
        decode_http_request(raw, n)
    request = pb2().ModelInferRequest(model_name="m")
    request.inputs.add(name="t", datatype="FP32", shape=[1]).contents.fp32_contents.append(1.0)
    if isinstance(value, int) and value >= 0:
        request.parameters[key].uint64_param = value
    elif isinstance(value, int):
        request.parameters[key].int64_param = value
    elif isinstance(value, float):
        request.parameters[key].double_param = value
    else:
        request.parameters[key].string_param = value
    with pytest.raises(InputError, match=f"parameter '{key}'"):
        decode_grpc_request(request)


def test_a_huge_timeout_is_refused_and_later_timeouts_still_fire():
    started, release = threading.Event(), threading.Event()

    def held(inputs):                                         # an instance held busy until released
        started.set()
        assert release.wait(10)
        return {"y": inputs["x"]}

    x = {"x": np.zeros((1, 3), np.float32)}
    batcher = DynamicBatcher(held, BatcherConfig(max_batch_size=1, max_queue_delay_ms=0))
    try:
        batcher.submit(x)
        assert started.wait(5)
        with pytest.raises(InputError, match="timeout_ms"):
            batcher.submit(x, timeout_ms=2**63 / 1000)
        with pytest.raises(RequestTimeout, match="timed out"):
            batcher.submit(x, timeout_ms=30).result(5)      # failed by the reaper while the instance is busy
    finally:
        release.set()
        batcher.close()


def test_a_dead_queue_timeout_thread_is_restarted_counted_and_keeps_firing():
    """The supervisor restarts the reaper after an exception (once, from its first clock reading),
    counts it (``thread_restarts``, exported as ``tensorforge_restarts_total``), and timeouts still fire."""
    from tensorforge.serve.batching import MonotonicClock

    class FailsOnceInReaper(MonotonicClock):
        failed = False

        def now(self) -> float:
            if threading.current_thread().name.startswith("tf-reaper") and not self.failed:
                self.failed = True
                raise RuntimeError("injected: the reaper's clock broke")
            return super().now()

    started, release = threading.Event(), threading.Event()

    def held(inputs):
        started.set()
        assert release.wait(10)
        return {"y": inputs["x"]}

    x = {"x": np.zeros((1, 3), np.float32)}
    batcher = DynamicBatcher(held, BatcherConfig(max_batch_size=1, max_queue_delay_ms=0), clock=FailsOnceInReaper())
    try:
        batcher.submit(x)
        assert started.wait(5)
        with pytest.raises(RequestTimeout, match="timed out"):
            batcher.submit(x, timeout_ms=30).result(5)
        assert batcher.stats()["thread_restarts"] == 1
    finally:
        release.set()
        batcher.close()
