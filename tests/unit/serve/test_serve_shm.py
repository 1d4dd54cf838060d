"""Shared-memory arenas between the server and its instance processes: layouts are checked, arenas grow,
and process instances over shared memory give exactly the thread instances' results."""

import numpy as np
import pytest

import tensorforge
from tensorforge.engine.runtime import Engine
from tensorforge.errors import ConfigError, InputError, ModelError
from tensorforge.serve import shm
from tensorforge.serve.batching import BatcherConfig, DynamicBatcher
from tensorforge.serve.worker import ProcessInstance, ThreadInstance

pytestmark = pytest.mark.skipif(not shm.available(), reason="no os.memfd_create on this platform")


def test_arena_round_trip_between_two_mappings_of_one_file():
    writer = shm.SharedArena()
    reader = shm.SharedArena(fd=writer.fd)          # a second mapping of the same memory, as the child has
    tensors = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.array([[1], [2]], dtype=np.int64),
               "c": np.zeros((0, 5), dtype=np.float16), "d": np.arange(10, dtype=np.int32)[::3]}
    layout = writer.write(tensors)
    assert all(t["offset"] % shm.ALIGN == 0 for t in layout["tensors"])
    back = reader.read(layout, copy=True)
    for name, value in tensors.items():
        np.testing.assert_array_equal(back[name], value)
        assert back[name].dtype == value.dtype and back[name].shape == value.shape
    writer.close()


def test_arena_grows_and_the_reader_remaps():
    writer = shm.SharedArena()
    reader = shm.SharedArena(fd=writer.fd)
    small = writer.write({"x": np.ones(10, np.float32)})
    np.testing.assert_array_equal(reader.read(small, copy=True)["x"], 1)
    big = np.arange(3 * shm.MIN_SIZE // 4, dtype=np.float32)        # 3 MiB: past the first size
    layout = writer.write({"x": big})
    assert layout["size"] >= big.nbytes and layout["size"] > small["size"]
    np.testing.assert_array_equal(reader.read(layout, copy=True)["x"], big)
    writer.close()


@pytest.mark.parametrize("bad, match", [
    ({"offset": 1 << 30}, "out of range"),
    ({"offset": -64}, "out of range"),
    ({"nbytes": 4}, "out of range"),                     # does not match shape × itemsize
    ({"dtype": "|O"}, "object tensors"),
])
def test_a_wrong_layout_is_refused_not_read(bad, match):
    arena = shm.SharedArena()
    layout = arena.write({"x": np.ones((4, 4), np.float32)})
    layout["tensors"][0].update(bad)
    with pytest.raises(ModelError, match=match):
        arena.read(layout, copy=True)
    layout = arena.write({"x": np.ones((4, 4), np.float32)})
    layout["size"] = arena.size * 4
    with pytest.raises(ModelError, match="mapped"):
        arena.read(layout, copy=True)
    arena.close()


def test_object_tensors_are_refused_with_the_fix():
    arena = shm.SharedArena()
    with pytest.raises(ModelError, match="instance_kind 'thread'"):
        arena.write({"text": np.array([b"hi"], dtype=object)})
    arena.close()


def test_unknown_transport_names_the_parameter(engine_path):
    with pytest.raises(ConfigError, match="transport must be one of"):
        ProcessInstance(engine_path, threads=1, transport="carrier-pigeon")


@pytest.mark.parametrize("transport", ["shm", "pipe"])
def test_process_instances_equal_thread_instances_through_the_batcher(engine_path, transport):
    rng = np.random.default_rng(1)
    expected_session = tensorforge.load(engine_path, threads=1)
    thread = ThreadInstance(Engine.load(engine_path), threads=1)
    proc = ProcessInstance(engine_path, threads=1, transport=transport)
    assert proc.transport == transport
    config = BatcherConfig(max_batch_size=8, max_queue_delay_ms=5.0)
    try:
        with DynamicBatcher(thread.run, config) as by_thread, DynamicBatcher(proc.run, config) as by_process:
            for rows in (1, 3, 8, 2, 8):             # sizes up and down: the arenas are reused and regrown
                x = rng.standard_normal((rows, 3, 16, 16)).astype(np.float32)
                a = by_thread.submit({"x": x}).result(timeout=60)["y"]
                b = by_process.submit({"x": x}).result(timeout=60)["y"]
                np.testing.assert_array_equal(a, b)
                np.testing.assert_allclose(b, expected_session.run(x)["y"], rtol=1e-6)
        with pytest.raises(InputError, match="axis 1 must be 3"):     # a bad batch fails alone …
            proc.run({"x": np.zeros((1, 2, 16, 16), np.float32)})
        x = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)    # … and the child keeps serving
        np.testing.assert_allclose(proc.run({"x": x})["y"], expected_session.run(x)["y"], rtol=1e-6)
        proc._proc.kill()                                            # a crashed child restarts on the same arenas
        proc._proc.wait()
        np.testing.assert_allclose(proc.run({"x": x})["y"], expected_session.run(x)["y"], rtol=1e-6)
    finally:
        proc.close()
