"""Streaming calibration data: the same batches and fingerprint as loading it all, any item sizes,
read once, and memory that stays flat as the number of samples grows (measured with tracemalloc)."""

import tracemalloc

import numpy as np
import pytest

from tensorforge.core.specs import TensorSpec, io_specs
from tensorforge.errors import CalibrationError
from tensorforge.precision import (
    CalibrationSpec,
    Preprocess,
    calibration_histograms,
    iter_calibration_batches,
    load_calibration_data,
)
from tensorforge.precision.collect import collect_histograms

from conftest import make_conv_bn_model

RGB = [TensorSpec("input", "float32", ("N", 3, 8, 8))]


def rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 8, 8)).astype(np.float32)


def naive_batches(x: np.ndarray, batch: int) -> list[np.ndarray]:
    """What loading everything does: concatenate, then cut every ``batch`` rows."""
    return [x[i:i + batch] for i in range(0, len(x), batch)]


@pytest.mark.parametrize("batch", [1, 4, 7, 32])
def test_streamed_batches_are_the_loaded_ones_whatever_the_item_sizes(tmp_path, batch):
    x = rows(23)
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "x.npz", input=x, labels=np.arange(23))
    ragged = [x[:5], x[5:6], x[6], x[7:20], x[20:]]              # batches, a single sample, one sample row
    sources = [tmp_path / "x.npy", tmp_path / "x.npz", x, ragged, iter(ragged), (s for s in x),
               [{"input": a} for a in ragged]]
    want = naive_batches(x, batch)
    fingerprints = set()
    for source in sources:
        stream = iter_calibration_batches(source, RGB, batch_size=batch, max_samples=1000)
        got = [b["input"] for b in stream]
        assert len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
            assert g.flags.c_contiguous and g.dtype == np.float32
        assert stream.samples == 23
        fingerprints.add(stream.fingerprint)
    assert len(fingerprints) == 1                  # the rows decide it: not the container, nor the batch size
    data = load_calibration_data(ragged, RGB, batch_size=batch)
    assert data.fingerprint in fingerprints and data.samples == 23


def test_max_samples_cuts_inside_an_item_and_layout_applies_per_slice(tmp_path):
    x = rows(10)
    np.save(tmp_path / "nhwc.npy", x.transpose(0, 2, 3, 1))
    stream = iter_calibration_batches(tmp_path / "nhwc.npy", RGB, Preprocess(layout="NHWC"), batch_size=4,
                                      max_samples=6)
    got = np.concatenate([b["input"] for b in stream])
    np.testing.assert_array_equal(got, x[:6])
    assert stream.samples == 6
    assert stream.fingerprint == load_calibration_data(x[:6], RGB).fingerprint


def test_a_stream_is_read_once_and_its_fingerprint_known_at_the_end():
    stream = iter_calibration_batches(rows(3), RGB, batch_size=2)
    with pytest.raises(CalibrationError, match="known once the stream has been read"):
        stream.fingerprint
    it = iter(stream)
    next(it)
    with pytest.raises(CalibrationError, match="already read"):
        iter(stream)
    list(it)
    assert len(stream.fingerprint) == 64


def test_errors_name_the_item_and_the_fix():
    with pytest.raises(CalibrationError, match=r"item 1 .* samples of shape \(3, 8, 9\), earlier items had \(3, 8, 8\)"):
        list(iter_calibration_batches([rows(2), np.zeros((2, 3, 8, 9), np.float32)],
                                      [TensorSpec("input", "float32", ("N", 3, 8, "W"))]))
    with pytest.raises(CalibrationError, match="no calibration samples"):
        list(iter_calibration_batches(iter([]), RGB))
    with pytest.raises(CalibrationError, match="batch_size=0"):
        iter_calibration_batches(rows(1), RGB, batch_size=0)
    two = [TensorSpec("a", "float32", ("N", 2)), TensorSpec("b", "float32", ("N", 2))]
    with pytest.raises(CalibrationError, match="disagree on the batch size"):
        list(iter_calibration_batches([{"a": np.zeros((2, 2)), "b": np.zeros((3, 2))}], two))


def _samples(n: int):
    rng = np.random.default_rng(0)
    for _ in range(n):
        yield rng.standard_normal((1, 3, 16, 16), dtype=np.float32)


def _peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_flat_as_calibration_samples_grow():
    """Peak traced memory (NumPy's buffers included) of one calibration pass over N = 64 and 1024
    generated samples of a small conv model: streamed, the peak stays flat; loading everything first, it
    grows with the data (the 1024 samples are 3 MiB), which shows the measurement sees data held."""
    model = make_conv_bn_model()
    specs = io_specs(model)[0]

    def streamed(n):
        return lambda: calibration_histograms(model, CalibrationSpec(data=_samples(n), batch_size=8, max_samples=n,
                                                                     num_bins=256))

    def loaded(n):
        return lambda: collect_histograms(model, load_calibration_data(_samples(n), specs, batch_size=8,
                                                                       max_samples=n).batches, num_bins=256)

    _peak_bytes(streamed(8))            # first-call costs (lazy imports, caches) are not the data's
    _peak_bytes(loaded(8))
    small, large = _peak_bytes(streamed(64)), _peak_bytes(streamed(1024))
    small_all, large_all = _peak_bytes(loaded(64)), _peak_bytes(loaded(1024))
    assert large < 1.5 * small, (small, large)
    assert large_all > 3 * small_all, (small_all, large_all)      # the measurement does see data held in memory
