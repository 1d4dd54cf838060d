"""Model instances: in-process and child-process sessions give the same rows; the pipe carries data, not code."""

import io
import socket

import numpy as np
import pytest

import tensorforge
from tensorforge.engine.runtime import Engine
from tensorforge.errors import InputError, ServingError
from tensorforge.serve import InferenceServer, ServerConfig
from tensorforge.serve.worker import ProcessInstance, ThreadInstance, read_message, write_message


def test_pipe_messages_round_trip():
    buf = io.BytesIO()
    tensors = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([[True], [False]]),
               "c": np.arange(4, dtype=np.int64)[::2]}          # non-contiguous view
    write_message(buf, tensors)
    write_message(buf, error="boom")
    buf.seek(0)
    back = read_message(buf)
    for k, v in tensors.items():
        np.testing.assert_array_equal(back[k], v)
        assert back[k].dtype == v.dtype
    with pytest.raises(RuntimeError, match="boom"):
        read_message(buf)
    with pytest.raises(EOFError):
        read_message(buf)


def test_process_instance_matches_thread_instance(engine_path):
    x = np.random.default_rng(0).standard_normal((3, 3, 16, 16)).astype(np.float32)
    thread = ThreadInstance(Engine.load(engine_path), threads=1)
    proc = ProcessInstance(engine_path, threads=1)
    try:
        expected = tensorforge.load(engine_path, threads=1).run(x)["y"]
        np.testing.assert_allclose(thread.run({"x": x})["y"], expected, rtol=1e-6)
        np.testing.assert_allclose(proc.run({"x": x})["y"], expected, rtol=1e-6)
        with pytest.raises(InputError, match="axis 1 must be 3"):   # a failure in the child fails that call only
            proc.run({"x": x[:, :2]})
        np.testing.assert_allclose(proc.run({"x": x})["y"], expected, rtol=1e-6)
        proc._proc.kill()                                            # a crashed child is restarted
        proc._proc.wait()
        np.testing.assert_allclose(proc.run({"x": x})["y"], expected, rtol=1e-6)
    finally:
        proc.close()


def test_port_in_use_is_a_clear_error(engine_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        server = InferenceServer([engine_path], config=ServerConfig(http_port=port, grpc_port=None, metrics_port=None))
        with pytest.raises(ServingError, match="cannot listen for HTTP"):
            server.start()
