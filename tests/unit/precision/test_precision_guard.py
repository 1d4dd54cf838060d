"""The accuracy guard keeps a deliberately fragile layer in FP32; never ships outside the budget; and
``best`` picks the fastest precision within budget, never one slower than FP32."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tensorforge.errors import BuildError, CalibrationError, InputError
from tensorforge.precision import AccuracyBudget, CalibrationSpec, EvalData, PrecisionOptions, apply_precision
from tensorforge.precision.guard import fallback_schedule


def fragile_mlp() -> onnx.ModelProto:
    """x[16] -> fc1+Relu -> fc2+Relu -> fc3 -> logits[10].

    fc2 is fragile in INT8: every output column also has a weight of 1000 on input feature 0, which
    fc1 always zeroes (so FP32 never feels it), but a weight scale fitted to 1000 rounds every
    real weight of fc2 to 0.
    """
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((16, 32)).astype(np.float32) * 0.5
    w1[:, 0] = 0.0
    w2 = rng.standard_normal((32, 32)).astype(np.float32) * 0.3
    w2[0, :] = 1000.0
    w3 = rng.standard_normal((32, 10)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h1"], name="fc1"),
             helper.make_node("Relu", ["h1"], ["r1"], name="relu1"),
             helper.make_node("MatMul", ["r1", "w2"], ["h2"], name="fc2"),
             helper.make_node("Relu", ["h2"], ["r2"], name="relu2"),
             helper.make_node("MatMul", ["r2", "w3"], ["logits"], name="fc3")]
    g = helper.make_graph(nodes, "fragile", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
                          [numpy_helper.from_array(w, n) for w, n in ((w1, "w1"), (w2, "w2"), (w3, "w3"))])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def data(seed: int, n: int = 256) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 16)).astype(np.float32)


@pytest.fixture(scope="module")
def setup():
    import onnxruntime as ort

    model = fragile_mlp()
    held = data(1)
    labels = ort.InferenceSession(model.SerializeToString()).run(None, {"x": held})[0].argmax(1)
    cal = CalibrationSpec(data=[{"x": data(2)}], method="minmax")
    return model, cal, EvalData([{"x": held[:128]}, {"x": held[128:]}], labels, name="validation")


def test_the_guard_keeps_the_fragile_layer_in_fp32(setup):
    model, cal, held = setup
    unguarded, rep0 = apply_precision(model, PrecisionOptions("int8", calibration=cal), eval_data=held)
    assert rep0.accuracy["final"]["top1_pct"] < 60          # INT8 everywhere wrecks it
    # labels are FP32's own argmax on random inputs, with near-ties that INT8 rounding elsewhere flips
    # (~3 %): the budget is 3 points of top-1
    guarded, rep = apply_precision(model, PrecisionOptions("int8", calibration=cal, accuracy_budget="3.0"),
                                   eval_data=held)
    assert rep.precision == "int8" and rep.met_budget is True
    assert rep.kept_fp32_layers == ["fc2"]                   # exactly the fragile one
    assert max(rep.guard["sensitivity"], key=rep.guard["sensitivity"].get) == "fc2"
    assert rep.accuracy["fp32"]["top1_pct"] - rep.accuracy["final"]["top1_pct"] <= 3.0
    ops_on = {n.name: n for n in guarded.graph.node}
    producers = {o: n.op_type for n in guarded.graph.node for o in n.output}
    assert producers.get(ops_on["fc2"].input[1]) != "DequantizeLinear"   # fc2's weights stay FP32
    assert producers.get(ops_on["fc3"].input[1]) == "DequantizeLinear"   # the others are INT8


def test_an_impossible_budget_keeps_fp32_and_says_so(setup):
    model, cal, held = setup
    out, rep = apply_precision(model, PrecisionOptions("int8", calibration=cal, accuracy_budget="cosine:1.0"),
                               eval_data=held)
    assert rep.precision == "fp32" and rep.met_budget is False
    assert "cannot be met" in rep.warnings[0]
    assert not any(n.op_type == "QuantizeLinear" for n in out.graph.node)


def test_the_guard_refuses_to_judge_on_calibration_samples(setup):
    model, cal, _ = setup
    seen = EvalData([{"x": data(2)[:64]}], None)
    with pytest.raises(CalibrationError, match="shares 64 sample"):
        apply_precision(model, PrecisionOptions("int8", calibration=cal, accuracy_budget="cosine:0.9"), eval_data=seen)


def fake_measure(model_bytes: bytes) -> float:
    """Seconds by content: a QDQ model 'runs' in 0.5, a 16-bit one in 2.0, FP32 in 1.0 — to test the choice."""
    ops = {n.op_type for n in onnx.load_from_string(model_bytes).graph.node}
    return 0.5 if "QuantizeLinear" in ops else 2.0 if "Cast" in ops else 1.0


def test_best_picks_the_fastest_within_budget_and_never_a_slower_one(setup):
    model, cal, held = setup
    opts = PrecisionOptions("best", calibration=cal, accuracy_budget="3.0")
    _, rep = apply_precision(model, opts, eval_data=held, measure=fake_measure)
    assert rep.requested == "best" and rep.precision == "int8" and rep.kept_fp32_layers == ["fc2"]
    assert rep.speed["speedup"] == pytest.approx(2.0)
    assert {c.precision for c in rep.candidates} == {"fp32", "int8", "fp16", "bf16"}
    # without INT8 only the (slower) 16-bit candidates remain: FP32 is kept
    out, rep2 = apply_precision(model, PrecisionOptions("best", candidates=("fp16", "bf16")), eval_data=held,
                                measure=fake_measure)
    assert rep2.precision == "fp32" and "keeping FP32" in rep2.notes[0]
    assert all("not faster" in c.note for c in rep2.candidates if c.precision != "fp32")


def test_options_that_cannot_work_are_refused(setup):
    model, cal, held = setup
    with pytest.raises(BuildError, match="held-out evaluation data"):
        apply_precision(model, PrecisionOptions("int8", calibration=cal, accuracy_budget="1.0"))
    with pytest.raises(BuildError, match="needs held-out evaluation data"):
        apply_precision(model, PrecisionOptions("best"))
    with pytest.raises(CalibrationError, match="INT8 needs calibration"):
        apply_precision(model, PrecisionOptions("int8"))
    with pytest.raises(BuildError, match="unknown precision"):
        PrecisionOptions("int4")
    with pytest.raises(InputError, match="unknown kind"):
        AccuracyBudget.parse("banana:1")


def test_budget_parsing_and_fallback_schedule():
    assert AccuracyBudget.parse("1.0") == AccuracyBudget(max_top1_drop_pts=1.0)
    assert AccuracyBudget.parse("top1:0.5") == AccuracyBudget(max_top1_drop_pts=0.5)
    assert AccuracyBudget.parse("cosine:0.99") == AccuracyBudget(min_cosine=0.99)
    assert fallback_schedule(10) == [1, 2, 3, 4, 6, 9, 10]
    assert fallback_schedule(1) == [1] and fallback_schedule(0) == []
