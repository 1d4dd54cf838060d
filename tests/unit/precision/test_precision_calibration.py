"""Calibration data sources (image folder, .npy, .npz, iterables), declared preprocessing, and clear errors."""

import numpy as np
import pytest
from PIL import Image

from tensorforge.core.specs import TensorSpec
from tensorforge.errors import CalibrationError
from tensorforge.precision.calibration import Preprocess, load_calibration_data

RGB = [TensorSpec("input", "float32", ("N", 3, 8, 8))]
GREY_NHWC = [TensorSpec("input", "float32", ("N", 8, 8, 1))]


def write_images(folder, n=5, size=(12, 10), mode="RGB"):
    folder.mkdir()
    for i in range(n):
        arr = np.full((size[1], size[0], 3), 10 * i, np.uint8)
        arr[:, :, 1] = 200
        Image.fromarray(arr, "RGB").convert(mode).save(folder / f"img{i}.png")
    return folder


def test_image_folder_with_resize_crop_mean_std(tmp_path):
    folder = write_images(tmp_path / "imgs", size=(20, 16))
    pre = Preprocess(resize=10, center_crop=8, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    data = load_calibration_data(folder, RGB, pre, batch_size=2)
    assert data.samples == 5 and [b["input"].shape for b in data.batches] == [(2, 3, 8, 8)] * 2 + [(1, 3, 8, 8)]
    x = np.concatenate([b["input"] for b in data.batches])
    # image i: R = 10*i, G = 200, B = 10*i -> (v/255 - 0.5) / 0.25, constant per channel
    np.testing.assert_allclose(x[3, 1], (200 / 255 - 0.5) / 0.25, rtol=1e-5)
    np.testing.assert_allclose(x[2, 0], (20 / 255 - 0.5) / 0.25, rtol=1e-5)
    assert data.fingerprint == load_calibration_data(folder, RGB, pre, batch_size=2).fingerprint


def test_images_are_resized_to_the_model_and_laid_out_nhwc_grey(tmp_path):
    folder = write_images(tmp_path / "imgs", n=3, size=(30, 20))
    data = load_calibration_data(folder, GREY_NHWC, Preprocess(), max_samples=2)
    assert data.samples == 2
    assert data.batches[0]["input"].shape == (2, 8, 8, 1)
    assert 0.0 <= data.batches[0]["input"].min() and data.batches[0]["input"].max() <= 1.0


def test_npy_npz_and_iterables(tmp_path):
    x = np.random.default_rng(0).standard_normal((6, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "x.npz", input=x, labels=np.arange(6))
    for source in (tmp_path / "x.npy", tmp_path / "x.npz", [x[:3], x[3:]], [{"input": s} for s in x], x):
        data = load_calibration_data(source, RGB, batch_size=4)
        np.testing.assert_array_equal(np.concatenate([b["input"] for b in data.batches]), x)
    # NHWC arrays declared as such are transposed to the model's NCHW
    data = load_calibration_data(x.transpose(0, 2, 3, 1).copy(), RGB, Preprocess(layout="NHWC"))
    np.testing.assert_array_equal(data.batches[0]["input"], x)


@pytest.mark.parametrize("source, message", [
    (np.zeros((2, 8, 8, 3), np.float32), r"axis 1 must be 3.*layout='NHWC'"),
    (np.zeros((2, 3, 16, 16), np.float32), r"axis 2 must be 8.*resize/center_crop"),
    ([{"image": np.zeros((1, 3, 8, 8), np.float32)}], r"missing model input\(s\) \['input'\]"),
    (np.zeros((2, 3, 8), np.float32), r"expects \(N, 3, 8, 8\)"),
    (np.full((1, 3, 8, 8), np.nan, np.float32), "NaN or Inf"),
    (np.array(["a"] * 192).reshape(1, 3, 8, 8), "dtype"),
    (42, "must be a folder"),
])
def test_data_that_does_not_fit_the_model_is_refused(source, message):
    with pytest.raises(CalibrationError, match=message):
        load_calibration_data(source, RGB)


def test_bad_paths_and_files(tmp_path):
    with pytest.raises(CalibrationError, match="does not exist"):
        load_calibration_data(tmp_path / "nope", RGB)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CalibrationError, match="no images"):
        load_calibration_data(tmp_path / "empty", RGB)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(CalibrationError, match="without pickle"):
        load_calibration_data(tmp_path / "obj.npy", RGB)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(CalibrationError, match="cannot read calibration image"):
        load_calibration_data(tmp_path / "broken.png", RGB)
    np.savez(tmp_path / "two.npz", a=np.zeros((1, 3, 8, 8)), b=np.zeros((1, 3, 8, 8)))
    with pytest.raises(CalibrationError, match="name them after the model's inputs"):
        load_calibration_data(tmp_path / "two.npz", RGB)
    with pytest.raises(CalibrationError, match="crop"):
        load_calibration_data(write_images(tmp_path / "small", n=1, size=(6, 6)), RGB, Preprocess(center_crop=8))
