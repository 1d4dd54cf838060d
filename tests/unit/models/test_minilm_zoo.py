"""all-MiniLM-L6-v2 by name: a zoo entry with the real shipped weights, exported once and cached,
built into an engine whose embeddings match sentence-transformers on real sentences."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from tensorforge.core.tolerances import TOLERANCES
from tensorforge.errors import ModelError
from tensorforge.models import minilm, sentences, zoo

pytestmark = pytest.mark.skipif(not minilm.available(), reason=f"needs the text extra: {minilm.unavailable_reason()}")


def test_entry_is_marked_trained_and_answers_to_aliases():
    e = zoo.entry("all-MiniLM-L6-v2")
    assert e.trained and not e.tiny and e.inputs == minilm.INPUTS and e.outputs == ("embedding",)
    assert minilm.NAME in zoo.names(include_tiny=False)
    assert zoo.entry("MiniLM") is e and zoo.entry("all-minilm-l6-v2") is e
    assert not zoo.entry("bert_tiny").trained
    with pytest.raises(ModelError, match="unknown zoo model"):
        zoo.entry("minilm-l12")


def test_cached_export_has_dynamic_batch_and_sequence():
    model = zoo.build("minilm")
    assert minilm.cache_path(17).is_file()
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    assert dims == {name: ["N", "S"] for name in minilm.INPUTS}
    from tensorforge.graph.analysis import count_params

    assert count_params(model) == pytest.approx(minilm.PARAMS, abs=64)   # + the export's scalar constants


@pytest.mark.parametrize("pipeline", ["transformer-ort", "transformer-portable"])
def test_engine_by_name_matches_sentence_transformers(pipeline):
    from tensorforge.engine.build import BuildOptions, build

    engine, report = build("all-minilm-l6-v2", options=BuildOptions(pipeline=pipeline, max_batch=16))
    assert report.verification is not None and report.verification.passed
    assert report.after.ops.get("Attention", 0) == (minilm.LAYERS if pipeline == "transformer-ort" else 0)
    session = engine.session()
    feeds = sentences.tokenize(sentences.SENTENCES[:16])
    got = session.run(feeds)["embedding"]
    assert got.shape == (16, minilm.HIDDEN)
    short = sentences.tokenize(sentences.SENTENCES[:3], length=40)     # another batch and sequence length
    assert session.run(short)["embedding"].shape == (3, minilm.HIDDEN)
    if pipeline == "transformer-portable" and importlib.util.find_spec("openvino") is not None:
        on_openvino = engine.session(backend="openvino").run(feeds)["embedding"]     # standard ops only
        assert np.max(np.abs(on_openvino - got)) <= TOLERANCES["fp32-kernels"]
    if importlib.util.find_spec("sentence_transformers") is None:
        pytest.skip("sentence-transformers is not installed: the engine was checked against ORT FP32 only")
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(sentences.model_dir()), device="cpu")
    want = st.encode(list(sentences.SENTENCES[:16]), convert_to_numpy=True, normalize_embeddings=True)
    assert np.max(np.abs(got - want)) / np.max(np.abs(want)) <= TOLERANCES["fp32-kernels"]
    assert float(np.min(np.sum(got * want, axis=1))) >= 0.9999
