"""The reference check (core/reference.py): the max normalized error and its one NaN/Inf policy,
used alike by the build's verification, the tuner and the fidelity metrics."""

from __future__ import annotations

import numpy as np
import pytest

from tensorforge.backends.reference import reference_session
from tensorforge.core.reference import compare, compare_output, pair
from tensorforge.errors import VerificationError
from tensorforge.precision.metrics import cosine_rows, fidelity, relative_error_rows

NAN, INF = float("nan"), float("inf")


def test_error_is_normalized_by_the_largest_reference_value():
    got, want = np.array([1.0, 2.5, -4.0], np.float32), np.array([1.0, 2.0, -4.0], np.float32)
    c = compare_output(got, want, "y")
    assert c.max_abs == pytest.approx(0.5) and c.max_norm == pytest.approx(0.5 / 4.0) and c.nonfinite == 0


def test_a_zero_reference_makes_the_error_absolute():
    assert compare_output(np.array([0.0, 1e-3]), np.zeros(2)).max_norm == pytest.approx(1e-3)


def test_nan_in_the_output_only_is_an_infinite_error():
    c = compare([np.array([1.0, NAN])], [np.array([1.0, 2.0])])
    assert c.max_norm == INF and c.max_abs == INF and not c.within(1e9)


def test_nan_in_the_reference_only_is_an_infinite_error():
    c = compare([np.array([1.0, 2.0])], [np.array([1.0, NAN])])
    assert c.max_norm == INF and c.nonfinite() == {"output 0": "1 of 2 values NaN/Inf in the reference "
                                                                 "(compared where finite)"}


def test_nan_in_both_at_the_same_places_is_compared_where_finite_and_said():
    c = compare([np.array([1.5, NAN, 4.0])], [np.array([1.0, NAN, 4.0])], names=["y"])
    assert c.max_abs == pytest.approx(0.5) and c.max_norm == pytest.approx(0.5 / 4.0)
    assert c.nonfinite("the original") == {"y": "1 of 3 values NaN/Inf in the original (compared where finite)"}
    assert "1 of 3 values NaN/Inf" in c.describe()


def test_an_all_nan_reference_never_reads_as_a_bare_error_zero():
    c = compare([np.full(8, NAN)], [np.full(8, NAN)], names=["y"])
    assert c.within(1e-5)                    # nothing contradicts it ...
    assert c.nonfinite()["y"].startswith("8 of 8 values NaN/Inf")      # ... and the report says why
    assert "8 of 8 values NaN/Inf" in c.describe()


def test_infinities_must_match_in_sign():
    assert compare_output(np.array([INF, 1.0]), np.array([INF, 1.0])).max_norm == 0.0
    assert compare_output(np.array([-INF, 1.0]), np.array([INF, 1.0])).max_norm == INF
    assert compare_output(np.array([NAN, 1.0]), np.array([INF, 1.0])).max_norm == INF
    assert compare_output(np.array([INF, 1.0]), np.array([3.0, 1.0])).max_norm == INF


def test_an_infinity_in_the_reference_does_not_scale_the_error():
    c = compare_output(np.array([INF, 1.0, 2.2]), np.array([INF, 1.0, 2.0]))
    assert c.scale == 2.0 and c.max_norm == pytest.approx(0.1)


def test_zero_size_outputs_compare_as_equal():
    c = compare([np.zeros((0, 4), np.float32), np.zeros(0, np.int64)], [np.zeros((0, 4), np.float32),
                                                                       np.zeros(0, np.int64)])
    assert c.max_abs == c.max_norm == 0.0 and c.nonfinite() == {}


def test_integer_outputs_must_be_equal():
    assert compare_output(np.array([1, 2]), np.array([1, 2])).max_norm == 0.0
    assert compare_output(np.array([1, 3]), np.array([1, 2])).max_norm == INF


def test_the_worst_output_is_the_comparisons_error():
    c = compare([np.array([1.0]), np.array([2.0])], [np.array([1.0]), np.array([1.0])], names=["a", "b"])
    assert c.max_norm == pytest.approx(1.0) and [o.name for o in c.outputs] == ["a", "b"]


def test_a_shape_mismatch_is_a_typed_error():
    with pytest.raises(VerificationError, match=r"output 'y' has shape \(2, 3\) but the reference's is \(3, 2\)"):
        compare([np.zeros((2, 3))], [np.zeros((3, 2))], names=["y"])


def test_another_number_of_outputs_is_a_typed_error():
    with pytest.raises(VerificationError, match="1 outputs but the reference has 2"):
        compare([np.zeros(2)], [np.zeros(2), np.zeros(2)])


def test_pair_zeroes_the_matched_places_and_marks_the_broken_ones():
    p = pair(np.array([NAN, 1.0, NAN]), np.array([NAN, 1.0, 2.0]))
    assert p.got.tolist() == [0.0, 1.0, 0.0] and p.want.tolist() == [0.0, 1.0, 0.0]
    assert p.broken.tolist() == [False, False, True] and p.nonfinite == 1


def test_fidelity_follows_the_same_policy():
    ref = np.array([[1.0, NAN, 2.0], [1.0, 2.0, 3.0]])
    got = np.array([[1.0, NAN, 2.0], [1.0, NAN, 3.0]])      # row 0 matches, row 1 has a NaN the reference lacks
    np.testing.assert_allclose(cosine_rows(got, ref), [1.0, -1.0])
    np.testing.assert_allclose(relative_error_rows(got, ref), [0.0, INF])
    f = fidelity(got, ref)
    assert f.nonfinite == 1 and f.max_abs_err == INF and f.rel_err_max == INF


def test_fidelity_shape_mismatch_is_the_same_typed_error():
    with pytest.raises(VerificationError):
        fidelity(np.zeros((2, 3)), np.zeros((2, 4)))


def test_the_reference_session_runs_the_model_as_written(conv_bn_model):
    from tensorforge.core.specs import io_specs, random_inputs

    session = reference_session(conv_bn_model.SerializeToString(), threads=1)
    feeds = random_inputs(io_specs(conv_bn_model)[0], 2, seed=0)
    out = session.run(feeds)
    assert compare(session.run(feeds), out).max_norm == 0.0
