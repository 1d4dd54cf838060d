"""A tuned build of a transformer times its graph pipelines as candidate variants and ships the winner's.

Real parts throughout: real pipelines on the zoo's bert_tiny, real ONNX Runtime sessions; the budget's
clock is frozen so a busy machine never skips the candidates a test is about.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from tensorforge.core.specs import io_specs
from tensorforge.engine.build import BuildOptions, build
from tensorforge.engine.format import MODEL_PAYLOAD, read_engine
from tensorforge.graph.pipelines import run_pipeline
from tensorforge.models import zoo
from tensorforge.models.bert import bert_inputs
from tensorforge.tune import Candidate, TuneOptions, tune
from tensorforge.tune.variants import pipeline_search

FAST = dict(budget_s=3.0, rounds=2, cache=False, isolate=False)


def NO_BUDGET_SPENT() -> float:
    return 0.0


def _graph(model: onnx.ModelProto, made: list[str]):
    def graph(name: str) -> bytes:
        made.append(name)
        return run_pipeline(model, name)[0].SerializeToString()
    return graph


def test_a_transformer_gets_each_backends_pipelines_as_variants():
    model, made = zoo.build("bert_tiny"), []
    options = TuneOptions(objective="latency", backends=("onnxruntime", "openvino"), cache=False)
    search = pipeline_search(model, options, _graph(model, made))
    assert search is not None
    tuned, payloads = search
    assert tuned.candidates is not None
    got = [(c.backend, c.variant) for c in tuned.candidates]
    assert got == [("onnxruntime", "default"), ("onnxruntime", "transformer-ort"),
                   ("onnxruntime", "transformer-portable"),
                   ("openvino", "default"), ("openvino", "transformer-portable")]
    assert sorted(made) == sorted(payloads.models) == ["default", "transformer-ort", "transformer-portable"]
    assert payloads.reference == model.SerializeToString()        # every variant checked against the original
    assert set(payloads.tolerances.values()) == {options.tolerance}
    # the winner's backend then tries its other settings on the winning pipeline
    assert payloads.expand is not None
    more = payloads.expand(Candidate("onnxruntime", variant="transformer-ort"))
    assert more and all(c.backend == "onnxruntime" and c.variant == "transformer-ort" for c in more)
    assert all(c.label not in {t.label for t in tuned.candidates} for c in more)


def test_a_model_that_is_no_transformer_gets_no_variants():
    model, made = zoo.build("tiny_cnn"), []
    assert pipeline_search(model, TuneOptions(cache=False), _graph(model, made)) is None
    assert made == []


def test_each_variant_is_verified_against_the_original_graph():
    model = zoo.build("bert_tiny")
    broken = onnx.ModelProto()
    broken.CopyFrom(run_pipeline(model, "transformer-portable")[0])
    init = next(t for t in broken.graph.initializer if t.name == "pooler.dense.weight")
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 1.5, init.name))

    def graph(name: str) -> bytes:
        return broken.SerializeToString() if name == "transformer-portable" else \
            run_pipeline(model, name)[0].SerializeToString()

    search = pipeline_search(model, TuneOptions(objective="latency", candidates=(Candidate("onnxruntime"),),
                                                **FAST), graph)
    assert search is not None
    result = tune(model.SerializeToString(), io_specs(model)[0], search[0], payloads=search[1],
                  clock=NO_BUDGET_SPENT)
    rows = {r.candidate.variant: r for r in result.candidates}
    assert set(rows) == {"default", "transformer-ort", "transformer-portable"}
    assert rows["transformer-portable"].status == "rejected"          # its own outputs would have passed
    assert rows["default"].max_err is not None and rows["transformer-ort"].max_err is not None
    assert result.winner.variant in ("default", "transformer-ort")


def test_tuned_build_ships_the_winning_pipelines_graph(tmp_path):
    engine, report = build("bert_tiny", tmp_path / "bert.tfe", BuildOptions(
        tune="latency", tune_budget_s=4, tune_backends=("onnxruntime",), tune_cache=False))
    tuning = report.tuning
    assert tuning is not None
    variants = {r.candidate.variant for r in tuning.candidates if r.status not in ("skipped", "failed")}
    assert {"default", "transformer-ort", "transformer-portable"} <= variants
    assert not [r for r in tuning.candidates if r.status == "rejected"]
    shipped = tuning.winner.variant
    build_record = engine.manifest.build
    assert build_record.pipeline == shipped
    _, reports = run_pipeline(zoo.build("bert_tiny"), shipped)
    assert [p["name"] for p in build_record.passes] == [r.name for r in reports]
    assert [p["name"] for p in report.passes] == [r.name for r in reports]
    shipped_graph = onnx.load_from_string(read_engine(tmp_path / "bert.tfe")[1][MODEL_PAYLOAD])
    contrib = {n.op_type for n in shipped_graph.graph.node if n.domain == "com.microsoft"}
    assert ("Attention" in contrib) == (shipped == "transformer-ort")
    feeds = bert_inputs(2, 16, 1000, lengths=[16, 9])          # row 1 padded: the shipped graph masks it too
    ref = zoo.build("bert_tiny")
    import onnxruntime as ort

    want = ort.InferenceSession(ref.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    got = engine.session().run(feeds)
    np.testing.assert_allclose(got["last_hidden_state"], want[0], atol=1e-4, rtol=1e-4)
