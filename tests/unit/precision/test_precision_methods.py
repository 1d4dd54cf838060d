"""Each calibration method on a tiny model, against ranges computed by hand (or by a brute-force
re-derivation written out here, independent of the implementation)."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tensorforge.precision.collect import activation_tensors, collect_histograms, ranges_from_histograms
from tensorforge.precision.histogram import AbsHistogram
from tensorforge.precision.methods import tensor_range, threshold


def relu_model() -> onnx.ModelProto:
    """x -> Relu -> r ;  x -> Neg -> n   (so ranges of a signed, a ReLU'd and a negated tensor)."""
    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Neg", ["x"], ["n"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("r", TensorProto.FLOAT, ["N", 4]),
         helper.make_tensor_value_info("n", TensorProto.FLOAT, ["N", 4])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def feeds(values: np.ndarray, batch: int = 25) -> list[dict]:
    x = values.astype(np.float32).reshape(-1, 4)
    return [{"x": x[i:i + batch]} for i in range(0, len(x), batch)]


def test_minmax_is_the_exact_min_and_max():
    values = np.linspace(-3.0, 5.0, 400)
    hists = collect_histograms(relu_model(), feeds(values))
    r = ranges_from_histograms(hists, "minmax")
    assert r["x"] == pytest.approx((-3.0, 5.0))
    assert r["r"] == pytest.approx((0.0, 5.0))
    assert r["n"] == pytest.approx((-5.0, 3.0))
    assert set(activation_tensors(relu_model())) == {"x", "r", "n"}


def test_percentile_of_one_to_a_thousand():
    # |x| takes the values 1..1000 once each: the 99th percentile is 990, the 50th is 500
    values = np.arange(1, 1001, dtype=np.float64) * np.where(np.arange(1000) % 2, 1, -1)
    h = collect_histograms(relu_model(), feeds(values))["x"]
    width = h.width
    assert threshold(h, "percentile", percentile=99.0) == pytest.approx(990.0, abs=width)
    assert threshold(h, "percentile", percentile=50.0) == pytest.approx(500.0, abs=width)
    lo, hi = tensor_range(h, "percentile", percentile=99.0)
    assert lo == pytest.approx(-990.0, abs=width) and hi == pytest.approx(990.0, abs=width)
    assert threshold(h, "percentile", percentile=100.0) == pytest.approx(1000.0)


def test_mse_matches_the_closed_form_optimum():
    # N values in [0, 1) and one outlier at 1000. With step T/127 the error is N·(T/127)²/12 for the kept
    # values plus (c − T)² for the clipped outlier (c = its bin centre), minimized at T* = c / (1 + N/(12·127²)).
    rng = np.random.default_rng(0)
    n = 99_999
    values = np.concatenate([rng.uniform(0, 1, n), [1000.0]])
    h = AbsHistogram(2048)
    h.update(values)
    c = (2047 + 0.5) * h.width
    expected = c / (1 + n / (12 * 127 ** 2))
    assert threshold(h, "mse") == pytest.approx(expected, abs=h.width)
    # unsigned (nonnegative tensor, uint8 activations): 255 steps
    expected_u = c / (1 + n / (12 * 255 ** 2))
    assert threshold(h, "mse", unsigned=True) == pytest.approx(expected_u, abs=h.width)


def _kl_reference(counts: np.ndarray, width: float, levels: int) -> float:
    """TensorRT's entropy calibration written out with plain loops (zero bin given its neighbour's count)."""
    c = [float(v) for v in counts]
    last = max(i for i, v in enumerate(c) if v > 0) + 1
    c = c[:last]
    c[0] = c[1]
    best, best_i = None, last
    for i in range(levels, last + 1):
        p = c[:i]
        p = p[:-1] + [p[-1] + sum(c[i:])]
        q = [0.0] * i
        bounds = [(j * i) // levels for j in range(levels + 1)]
        for j in range(levels):
            chunk = range(bounds[j], bounds[j + 1])
            nonzero = [k for k in chunk if c[k] > 0]
            for k in nonzero:
                q[k] = sum(c[k2] for k2 in chunk) / len(nonzero)
        sp, sq = sum(p), sum(q)
        kl = sum((pk / sp) * np.log((pk / sp) / max(qk / sq, 1e-12)) for pk, qk in zip(p, q) if pk > 0)
        if best is None or kl <= best + 1e-12:
            best, best_i = kl, i
    return best_i * width


def test_entropy_matches_a_loop_by_loop_rederivation():
    rng = np.random.default_rng(3)
    h = AbsHistogram(512)
    h.update(np.concatenate([rng.laplace(0, 1.0, 20_000), [25.0, -30.0]]))
    levels = 128
    want = _kl_reference(h.counts, h.width, levels)
    got = threshold(h, "entropy")            # signed tensor: 127 + 1 = 128 levels
    assert got == pytest.approx(want)
    assert 128 * h.width <= got < h.abs_max   # clips the two outliers, keeps at least 128 bins


def test_entropy_without_clipping_when_data_fits_in_the_levels():
    # values on only 100 distinct bins (fewer than the 128 levels): nothing to gain, the range is the max
    h = AbsHistogram(2048)
    h.update(np.linspace(0.0, 1.0, 100))
    assert threshold(h, "entropy") == pytest.approx(1.0)


def test_unknown_method_and_empty_histogram():
    h = AbsHistogram(8)
    with pytest.raises(ValueError, match="empty"):
        threshold(h, "minmax")
    h.update(np.ones(3))
    with pytest.raises(ValueError, match="unknown calibration method"):
        threshold(h, "kl")


def test_histogram_growth_is_an_exact_rebinning():
    rng = np.random.default_rng(1)
    small, large = rng.uniform(-1, 1, 5000), rng.uniform(-7, 7, 5000)
    grown = AbsHistogram(64)
    grown.update(small)
    w0 = grown.width
    fine = grown.counts.copy()
    grown.update(large)                       # the range doubles three times (1 -> 8)
    assert grown.width == pytest.approx(8 * w0, rel=1e-15)
    # the first batch's counts are merged 8 bins to 1, exactly; nothing is smeared across bins
    merged = np.concatenate([fine.reshape(8, 8).sum(axis=1), np.zeros(56, dtype=np.int64)])
    large_counts = np.bincount(np.minimum((np.abs(large) / grown.width).astype(int), 63), minlength=64)
    np.testing.assert_array_equal(grown.counts, merged + large_counts)
    assert grown.total == 10_000 and grown.min == pytest.approx(min(small.min(), large.min()))


def test_nan_in_calibration_data_is_refused():
    h = AbsHistogram(8)
    with pytest.raises(ValueError, match="NaN"):
        h.update(np.array([1.0, np.nan]))
