"""Typed errors cross the instance pipe: a TensorForge error raised in a child process is raised again
as the same class in the parent (rebuilt by name, not unpickled), so the server answers 400, not 500."""

import io

import numpy as np
import pytest

from tensorforge import errors
from tensorforge.errors import InputError
from tensorforge.serve.batching import BatcherConfig, DynamicBatcher
from tensorforge.serve.core import error_status
from tensorforge.serve.worker import ProcessInstance, read_message, write_message


def _round_trip(error):
    buf = io.BytesIO()
    write_message(buf, error=error)
    buf.seek(0)
    with pytest.raises(Exception) as info:
        read_message(buf)
    return info.value


@pytest.mark.parametrize("cls", [errors.InputError, errors.ModelError, errors.EngineFileError,
                                 errors.ConfigError, errors.QueueFullError])
def test_tensorforge_errors_keep_their_class_and_message(cls):
    back = _round_trip(cls("input 'x' has dtype float64"))
    assert type(back) is cls
    assert str(back) == "input 'x' has dtype float64"


def test_other_errors_arrive_as_runtime_error_naming_their_type():
    back = _round_trip(ZeroDivisionError("division by zero"))
    assert type(back) is RuntimeError and str(back) == "ZeroDivisionError: division by zero"
    assert str(_round_trip("plain text")) == "plain text"


def test_only_error_classes_of_tensorforge_errors_are_rebuilt():
    """A type name naming something else in that module (here its ``annotations`` future import) is text."""
    buf = io.BytesIO()
    write_message(buf, error=RuntimeError("x"))
    raw = buf.getvalue().replace(b'"RuntimeError"', b'"annotations"')
    forged = io.BytesIO((len(raw) - 4).to_bytes(4, "little") + raw[4:])
    with pytest.raises(RuntimeError, match="annotations: x"):
        read_message(forged)


def test_input_error_in_a_process_instance_is_a_400(engine_path):
    """The regression: a real child process refuses a batch with InputError; the batcher's future raises
    InputError too, which the server maps to 400 / INVALID_ARGUMENT as it does for thread instances."""
    proc = ProcessInstance(engine_path, threads=1)
    batcher = DynamicBatcher([proc.run], BatcherConfig(max_batch_size=4, max_queue_delay_ms=0.0), name="m")
    try:
        bad = np.zeros((1, 2, 16, 16), np.float32)                     # the engine expects 3 channels
        with pytest.raises(InputError, match=r"axis 1 must be 3") as info:
            batcher.submit({"x": bad}).result(timeout=60)
        assert error_status(info.value) == (400, "INVALID_ARGUMENT")
        good = batcher.submit({"x": np.zeros((1, 3, 16, 16), np.float32)}).result(timeout=60)
        assert good["y"].shape == (1, 5)                               # the child kept serving
    finally:
        batcher.close(drain=True, timeout_s=30.0)
        proc.close()
