"""The one feed check: every rule, its message, and the same words from the Python session and the server."""

from types import SimpleNamespace

import numpy as np
import pytest

from tensorforge.core.feeds import check_feeds, shape_text
from tensorforge.core.specs import TensorSpec
from tensorforge.errors import InputError

IMAGE = TensorSpec("x", "float32", ("N", 3, 4, 4))
MASK = TensorSpec("m", "int64", ("N", "T"))
TOKENS = TensorSpec("t", "int64", ("N", "T"))


def _x(n=1, dtype=np.float32):
    return np.zeros((n, 3, 4, 4), dtype)


def test_valid_feeds_come_back_as_a_dict():
    x = _x(2)
    assert check_feeds(x, [IMAGE])["x"] is x
    feeds = check_feeds({"m": np.ones((2, 5), np.int64), "t": np.ones((2, 5), np.int64)}, [MASK, TOKENS])
    assert set(feeds) == {"m", "t"}


@pytest.mark.parametrize("inputs, specs, kwargs, message", [
    ([1.0], [IMAGE], {}, "inputs must be a NumPy array or a dict of them, got list"),
    (np.ones((1, 5), np.int64), [MASK, TOKENS], {}, "the model has 2 inputs ['m', 't']; pass a dict {name: array}, not a single array"),
    ({"y": _x()}, [IMAGE], {}, "missing input(s) ['x']; unexpected input(s) ['y']; the inputs of the model are ['x']"),
    ({"x": [[0.0]]}, [IMAGE], {}, "input 'x' is a list; pass a NumPy array of float32"),
    ({"x": _x(dtype=np.float64)}, [IMAGE], {"model": "m"},
     "input 'x' has dtype float64; model 'm' expects float32 — cast the data to float32"),
    ({"x": np.zeros((3, 4, 4), np.float32)}, [IMAGE], {},
     "input 'x' has shape [3, 4, 4] (rank 3); the model expects [N, 3, 4, 4] (rank 4)"),
    ({"x": np.zeros((1, 2, 4, 4), np.float32)}, [IMAGE], {},
     "input 'x' has shape [1, 2, 4, 4]; the model expects [N, 3, 4, 4] (axis 1 must be 3)"),
    ({"x": _x(0)}, [IMAGE], {}, "input 'x' has shape [0, 3, 4, 4]; axis 0 (N) is empty"),
    ({"m": np.ones((2, 5), np.int64), "t": np.ones((2, 6), np.int64)}, [MASK, TOKENS], {},
     "input 't' has T=6 on axis 1, but another input has T=5; all inputs must agree on T"),
    ({"x": _x(5)}, [IMAGE], {"max_batch": 4, "model": "m"},
     "input 'x' has batch 5, more than the max batch 4 of model 'm'; split it into batches of at most 4"),
])
def test_each_rule_and_its_words(inputs, specs, kwargs, message):
    with pytest.raises(InputError) as info:
        check_feeds(inputs, specs, **kwargs)
    assert str(info.value) == message


def test_non_finite_values_counted_unless_the_check_is_off():
    x = _x(2)
    x[0, 0, 0, :2] = [np.nan, np.inf]
    with pytest.raises(InputError, match=r"input 'x' holds 2 NaN/Inf value\(s\); clean the data, or turn "
                                         r"check_finite off"):
        check_feeds(x, [IMAGE])
    assert check_feeds(x, [IMAGE], check_finite=False)["x"] is x
    check_feeds(np.full((1, 3, 4, 4), 3e38, np.float32), [IMAGE])     # large but finite


def test_max_batch_applies_to_a_symbolic_batch_only():
    fixed = TensorSpec("x", "float32", (8, 3))
    check_feeds(np.zeros((8, 3), np.float32), [fixed], max_batch=4)


def test_shape_text():
    assert shape_text(("N", 3, None)) == "[N, 3, ?]"


def test_the_session_and_the_server_refuse_with_the_same_words(engine_path):
    """One rule set: a Python session and the server's request check give the identical message."""
    import tensorforge
    from tensorforge.serve.core import ServingCore
    from tensorforge.serve.protocol import InferRequest

    session = tensorforge.load(engine_path, warn_host=False)
    name = session.name
    mv = SimpleNamespace(name=name, inputs=session.inputs, outputs=session.outputs, batchable=True, profiles=(),
                         config=SimpleNamespace(check_finite=True, batcher=SimpleNamespace(max_batch_size=4)))
    core = ServingCore.__new__(ServingCore)            # validate reads only the model version
    bad_cases = [np.zeros((1, 3, 15, 16), np.float32), np.zeros((1, 3, 16, 16), np.float64),
                 np.full((1, 3, 16, 16), np.nan, np.float32)]
    for bad in bad_cases:
        with pytest.raises(InputError) as from_session:
            session.run({"x": bad})
        with pytest.raises(InputError) as from_server:
            core.validate(mv, InferRequest(inputs={"x": bad}, datatypes={}))
        assert str(from_session.value) == str(from_server.value)
    with pytest.raises(InputError, match="more than the max batch 4"):   # the server's batch limit
        core.validate(mv, InferRequest(inputs={"x": np.zeros((5, 3, 16, 16), np.float32)}, datatypes={}))
