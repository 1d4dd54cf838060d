"""Batch merge/split: every request gets back exactly its own rows (property-based)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tensorforge.errors import InputError
from tensorforge.serve.merge import merge, request_rows, signature, split

dtypes = st.sampled_from([np.float32, np.float16, np.int64, np.int32, np.uint8, np.bool_])


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.integers(1, 5), min_size=1, max_size=8), dtype=dtypes, width=st.integers(1, 4),
       seed=st.integers(0, 2**16))
def test_merge_then_split_gives_each_request_its_rows(rows, dtype, width, seed):
    rng = np.random.default_rng(seed)
    requests = [{"a": rng.integers(0, 100, size=(n, width)).astype(dtype),
                 "b": rng.integers(0, 100, size=(n, 2, 3)).astype(np.float32)} for n in rows]
    merged = merge(requests)
    assert merged["a"].shape == (sum(rows), width) and merged["b"].shape == (sum(rows), 2, 3)
    # a row-wise model: each output row depends on its input row only
    outputs = {"y": merged["b"].sum(axis=(1, 2)), "z": merged["a"]}
    parts = split(outputs, rows)
    assert len(parts) == len(requests)
    for req, part in zip(requests, parts):
        np.testing.assert_array_equal(part["z"], req["a"])
        np.testing.assert_array_equal(part["y"], req["b"].sum(axis=(1, 2)))


def test_single_request_passes_through_without_copy():
    x = np.zeros((3, 2), np.float32)
    assert merge([{"x": x}])["x"] is x
    y = np.ones((3, 4))
    assert split({"y": y}, [3])[0]["y"] is y


def test_split_refuses_outputs_without_batch_axis():
    with pytest.raises(ValueError, match="batch axis"):
        split({"y": np.zeros((4,))}, [2, 3])
    with pytest.raises(ValueError, match="batch axis"):
        split({"s": np.float32(1.0)}, [1, 1])


def test_request_rows_checks_agreement():
    assert request_rows({"a": np.zeros((3, 2)), "b": np.zeros((3,))}) == 3
    with pytest.raises(InputError, match="same number of samples"):
        request_rows({"a": np.zeros((3, 2)), "b": np.zeros((2,))})
    with pytest.raises(InputError, match="scalar"):
        request_rows({"a": np.array(1.0, np.float32)})
    with pytest.raises(InputError, match="at least one sample"):
        request_rows({"a": np.zeros((0, 2))})
    with pytest.raises(InputError, match="NumPy array"):
        request_rows({"a": [1, 2]})


def test_signature_ignores_rows_only():
    a = signature({"x": np.zeros((1, 3), np.float32)})
    assert a == signature({"x": np.zeros((5, 3), np.float32)})
    assert a != signature({"x": np.zeros((1, 4), np.float32)})
    assert a != signature({"x": np.zeros((1, 3), np.float64)})
