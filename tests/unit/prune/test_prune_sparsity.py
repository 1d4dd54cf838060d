"""2:4 and unstructured sparsity, and the prune spec parser (bad specs raise ConfigError)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import numpy_helper

from tensorforge.errors import ConfigError
from tensorforge.models import zoo
from tensorforge.prune import PruneSpec, is_2_4, parse_prune, prune_model, sparsify
from tensorforge.prune.sparsity import _two_of_four, sparsity_targets


def _weights(model):
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def test_2_4_masks_are_2_4_and_keep_the_largest() -> None:
    m = zoo.build("tiny_mobilenet")
    sparse, stats = sparsify(m, "2:4")
    before, after = _weights(m), _weights(sparse)
    targets = sparsity_targets(m)
    assert stats.layers > 0 and stats.sparsity == pytest.approx(0.5)
    skipped = {w for w, _ in stats.skipped}
    for name, axis in targets.items():
        if name in skipped:
            assert (after[name] == before[name]).all()   # not a multiple of 4: dense
            continue
        assert is_2_4(after[name], axis)
        old = np.moveaxis(before[name], axis, -1).reshape(-1, 4)
        new = np.moveaxis(after[name], axis, -1).reshape(-1, 4)
        assert ((new != 0).sum(axis=1) == 2).all()      # random weights: exactly 2 of 4 stay
        kept = np.where(new != 0, np.abs(old), np.inf).min(axis=1)
        dropped = np.where(new == 0, np.abs(old), -np.inf).max(axis=1)
        assert (kept >= dropped).all()                   # the 2 largest |w| stay
    # structure untouched
    assert [n.op_type for n in sparse.graph.node] == [n.op_type for n in m.graph.node]


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 4), st.integers(1, 3), st.integers(0, 2**31 - 1))
def test_two_of_four_property(rows: int, quads: int, seed: int) -> None:
    w = np.random.default_rng(seed).standard_normal((rows, 4 * quads, 2)).astype(np.float32)
    out = _two_of_four(w, 1)
    assert is_2_4(out, 1) and out.dtype == w.dtype
    assert ((out == 0) | (out == w)).all()


def test_is_2_4_rejects_dense() -> None:
    assert not is_2_4(np.ones((2, 8), np.float32), 1)
    assert not is_2_4(np.ones((2, 6), np.float32), 1)


@pytest.mark.parametrize("ratio", [0.3, 0.7, 0.9])
def test_unstructured_reaches_the_ratio_per_layer(ratio: float) -> None:
    m = zoo.build("tiny_cnn")
    sparse, stats = sparsify(m, "unstructured", ratio)
    after = _weights(sparse)
    for name in sparsity_targets(m):
        w = after[name]
        assert (w == 0).mean() == pytest.approx(ratio, abs=1.0 / w.size + 1e-9)
    assert stats.sparsity == pytest.approx(ratio, abs=0.01)


def test_prune_model_reference_holds_the_same_weights() -> None:
    m = zoo.build("tiny_mlp")
    result = prune_model(m, "unstructured:50%")
    ref = _weights(result.reference(m))
    for name, w in _weights(result.model).items():
        assert (ref[name] == w).all()
    assert result.summary["sparsity"] == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("text, want", [
    ("channels:30%", PruneSpec("channels", 0.3)), ("channels:0.5:l2", PruneSpec("channels", 0.5, "l2")),
    ("Channels:25%:BN", PruneSpec("channels", 0.25, "bn")), ("2:4", PruneSpec("2:4", 0.5)),
    ("unstructured:70%", PruneSpec("unstructured", 0.7)), (None, None),
])
def test_parse_good_specs(text, want) -> None:
    got = parse_prune(text)
    if want is None:
        assert got is None
    else:
        assert (got.kind, got.criterion) == (want.kind, want.criterion) and got.ratio == pytest.approx(want.ratio)
        assert parse_prune(got) is got                  # a parsed spec passes through unchanged


@pytest.mark.parametrize("text", ["channels", "channels:", "channels:abc", "channels:100%", "channels:-0.1",
                                  "channels:30%:l3", "3:4", "unstructured", "unstructured:1.5", "blocks:30%", 5])
def test_parse_bad_specs_raise_config_error(text) -> None:
    with pytest.raises(ConfigError):
        parse_prune(text)


def test_build_options_parse_once() -> None:
    from tensorforge.engine.build import BuildOptions

    assert BuildOptions(prune="channels:0.3").prune == PruneSpec("channels", 0.3)
    with pytest.raises(ConfigError, match="prune"):
        BuildOptions(prune="channels:300%")
