"""Fuzzing models through ``tensorforge.build`` (issue 13): every failure is a typed TensorForge error.

Hypothesis takes small valid ONNX models and breaks them the ways exporters and hand edits do:
missing or misshapen initializers, zero/negative/huge dimensions, unknown ops and domains, dangling
node inputs, outputs nobody produces, type mismatches, NaN/Inf weights, odd opsets and IR versions,
bad attributes. Each mutant is built from a file (as a user would) or from the in-memory proto.
The rule: ``build`` returns an engine that loads, or raises a :class:`TensorForgeError` subclass
(ModelError, BuildError, VerificationError, ...) — never a bare TypeError/KeyError/onnxruntime error
— and never hangs (``faulthandler`` ends the run with a traceback if one build passes the guard).
Bounded: a few dozen examples, derandomized, so the file runs in well under a minute.
"""

from __future__ import annotations

import faulthandler
import os

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from tensorforge.engine.build import build
from tensorforge.engine.runtime import Engine
from tensorforge.errors import ModelError, TensorForgeError

from conftest import make_conv_bn_model

HANG_GUARD_S = 300          # one build of these tiny models takes well under a second
# TF_FUZZ_EXAMPLES=500 TF_FUZZ_RANDOM=1 explores further by hand; the suite runs the fixed, bounded default
FUZZ = settings(max_examples=int(os.environ.get("TF_FUZZ_EXAMPLES", 48)), deadline=None,
                derandomize=not os.environ.get("TF_FUZZ_RANDOM"), database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
OUTCOMES: dict[str, int] = {}


def mlp_model() -> onnx.ModelProto:
    """x[N,6] → MatMul → Add → Relu → Gemm → Softmax."""
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(rng.standard_normal((6, 5)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.standard_normal(5).astype(np.float32), "b1"),
             numpy_helper.from_array(rng.standard_normal((5, 3)).astype(np.float32), "w2"),
             numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "b2")]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["m"]), helper.make_node("Add", ["m", "b1"], ["a"]),
             helper.make_node("Relu", ["a"], ["r"]), helper.make_node("Gemm", ["r", "w2", "b2"], ["g"]),
             helper.make_node("Softmax", ["g"], ["y"], axis=-1)]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def gather_model() -> onnx.ModelProto:
    """Two inputs, one of them an integer index: g = GatherElements(x, idx), y = x * 2 reshaped."""
    graph = helper.make_graph(
        [helper.make_node("GatherElements", ["x", "idx"], ["g"], axis=1),
         helper.make_node("Mul", ["x", "two"], ["m"]), helper.make_node("Reshape", ["m", "shape"], ["y"])],
        "gather", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4]),
                   helper.make_tensor_value_info("idx", TensorProto.INT64, ["N", 1])],
        [helper.make_tensor_value_info("g", TensorProto.FLOAT, ["N", 1]),
         helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 2])],
        initializer=[numpy_helper.from_array(np.array(2.0, np.float32), "two"),
                     numpy_helper.from_array(np.array([-1, 2, 2], np.int64), "shape")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


BASES = {"conv_bn": make_conv_bn_model, "mlp": mlp_model, "gather": gather_model}
DTYPES = [TensorProto.DOUBLE, TensorProto.INT64, TensorProto.INT32, TensorProto.FLOAT16, TensorProto.BOOL,
          TensorProto.STRING, TensorProto.UINT8]


# -- mutations: each takes (model, draw) and edits the model in place ----------------------------------
def _pick(draw, items):
    return items[draw(st.integers(0, len(items) - 1))] if len(items) else None


def _array(t):
    """The initializer's values, or None when an earlier mutation already broke it."""
    try:
        return numpy_helper.to_array(t)
    except Exception:  # noqa: BLE001 - a retyped tensor's bytes no longer parse: nothing to mutate further
        return None


def drop_initializer(m, draw):
    if m.graph.initializer:
        del m.graph.initializer[draw(st.integers(0, len(m.graph.initializer) - 1))]


def reshape_initializer(m, draw):
    t = _pick(draw, m.graph.initializer)
    arr = None if t is None else _array(t)
    if arr is None:
        return
    shape = draw(st.lists(st.integers(0, 7), min_size=0, max_size=4))
    size = int(np.prod(shape)) if shape else 1
    new = np.resize(arr.reshape(-1), size).reshape(shape).astype(arr.dtype) if arr.size else np.zeros(shape, arr.dtype)
    t.CopyFrom(numpy_helper.from_array(new, t.name))


def poison_initializer(m, draw):
    t = _pick(draw, [t for t in m.graph.initializer if t.data_type == TensorProto.FLOAT])
    arr = None if t is None else _array(t)
    if arr is None:
        return
    arr = arr.copy()
    arr.reshape(-1)[: max(1, arr.size // draw(st.integers(1, 4)))] = draw(st.sampled_from([np.nan, np.inf, -np.inf,
                                                                                           3e38]))
    t.CopyFrom(numpy_helper.from_array(arr, t.name))


def retype_initializer(m, draw):
    t = _pick(draw, m.graph.initializer)
    if t is not None:
        t.data_type = draw(st.sampled_from(DTYPES + [0, 999]))      # the raw bytes stay: sizes no longer match either


def odd_input_dims(m, draw):
    vi = _pick(draw, m.graph.input)
    if vi is None:
        return
    dims = vi.type.tensor_type.shape.dim
    if draw(st.booleans()) or not dims:
        del dims[:]
        for d in draw(st.lists(st.one_of(st.integers(-3, 9), st.sampled_from([2**31, 2**40]), st.just("N")),
                               min_size=0, max_size=6)):
            dim = dims.add()
            if isinstance(d, str):
                dim.dim_param = d
            else:
                dim.dim_value = d
    else:
        dims[draw(st.integers(0, len(dims) - 1))].dim_value = draw(st.sampled_from([0, -1, -7, 1, 2**40]))


def retype_input(m, draw):
    vi = _pick(draw, list(m.graph.input) + list(m.graph.output))
    if vi is not None:
        vi.type.tensor_type.elem_type = draw(st.sampled_from(DTYPES + [0, 999]))


def unknown_op(m, draw):
    node = _pick(draw, m.graph.node)
    if node is not None:
        node.op_type = draw(st.sampled_from(["FooBar", "Conv3000", "", "conv", "LSTM"]))
        if draw(st.booleans()):
            node.domain = draw(st.sampled_from(["com.example", "ai.onnx.ml", "com.microsoft"]))


def dangling_input(m, draw):
    node = _pick(draw, m.graph.node)
    if node is not None and node.input:
        node.input[draw(st.integers(0, len(node.input) - 1))] = draw(st.sampled_from(["ghost", "", "y", "x"]))


def orphan_output(m, draw):
    if m.graph.output:
        m.graph.output[0].name = draw(st.sampled_from(["nobody_makes_this", "x", ""]))


def duplicate_output(m, draw):
    if len(m.graph.node) >= 2:
        m.graph.node[-1].output[0] = m.graph.node[0].output[0]


def opset_oddity(m, draw):
    choice = draw(st.integers(0, 4))
    if not m.opset_import:
        m.opset_import.append(helper.make_opsetid("", draw(st.sampled_from([1, 13, 17, 99]))))
    elif choice == 0:
        m.opset_import[0].version = draw(st.sampled_from([1, 5, 6, 9, 12, 23, 99, 0, -1]))
    elif choice == 1:
        del m.opset_import[:]
    elif choice == 2:
        m.opset_import.append(helper.make_opsetid("", 11))
    elif choice == 3:
        m.ir_version = draw(st.sampled_from([0, 1, 3, 99]))
    else:
        m.opset_import[0].domain = "ai.onnx.ml"


def bad_attribute(m, draw):
    node = _pick(draw, m.graph.node)
    if node is None:
        return
    name = draw(st.sampled_from(["pads", "axis", "transB", "epsilon", "kernel_shape", "strides"]))
    value = draw(st.sampled_from([[1], [0, 0, 0, 0, 0], -9, 5, 1e30, "text", [-1, -1]]))
    for a in list(node.attribute):
        if a.name == name:
            node.attribute.remove(a)
    node.attribute.append(helper.make_attribute(name, value))


def remove_node(m, draw):
    if m.graph.node:
        del m.graph.node[draw(st.integers(0, len(m.graph.node) - 1))]


MUTATIONS = [drop_initializer, reshape_initializer, poison_initializer, retype_initializer, odd_input_dims,
             retype_input, unknown_op, dangling_input, orphan_output, duplicate_output, opset_oddity,
             bad_attribute, remove_node]


@st.composite
def mutants(draw):
    base = draw(st.sampled_from(sorted(BASES)))
    model = BASES[base]()
    applied = []
    for mutation in draw(st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=3)):
        mutation(model, draw)
        applied.append(mutation.__name__)
    return base, applied, model, draw(st.booleans())


def build_must_be_typed(model: onnx.ModelProto, tmp_path, from_file: bool) -> str:
    """Build ``model``; return "ok" or the typed error's class name; anything else fails the test."""
    out = tmp_path / "fuzz.tfe"
    out.unlink(missing_ok=True)
    faulthandler.dump_traceback_later(HANG_GUARD_S, exit=True)      # a hung build ends the run, loudly
    try:
        if from_file:
            src = tmp_path / "fuzz.onnx"
            src.write_bytes(model.SerializeToString())
            build(src, out)
        else:
            build(model, out)
    except TensorForgeError as exc:
        assert str(exc).strip(), f"{type(exc).__name__} without a message"
        assert not out.exists(), "a failed build left an engine file behind"
        return type(exc).__name__
    finally:
        faulthandler.cancel_dump_traceback_later()
    Engine.load(out)                                   # what a successful build wrote loads
    return "ok"


@FUZZ
@given(case=mutants())
def test_mutated_models_fail_with_typed_errors(case, tmp_path):
    base, applied, model, from_file = case
    try:
        outcome = build_must_be_typed(model, tmp_path, from_file)
    except TensorForgeError:
        raise
    except Exception as exc:
        pytest.fail(f"{base} + {applied} ({'file' if from_file else 'proto'}): build escaped with "
                    f"{type(exc).__name__}: {str(exc)[:300]}")
    OUTCOMES[outcome] = OUTCOMES.get(outcome, 0) + 1


def test_fuzz_outcomes_printed():
    """The spread of outcomes over the fuzz run (visible with -s): most mutants fail, some still build."""
    print(f"build fuzz outcomes: {OUTCOMES}")


# -- regressions: each escaped the build as a bare exception before engine/build.py's _check_graph ------
def _typed(model: onnx.ModelProto, tmp_path, from_file: bool, match: str) -> None:
    source: object = model
    if from_file:
        source = tmp_path / "model.onnx"
        onnx.save(model, source)
    with pytest.raises(ModelError, match=match):
        build(source, tmp_path / "out.tfe")
    assert not (tmp_path / "out.tfe").exists()


@pytest.mark.parametrize("from_file", [False, True])
def test_regression_negative_input_dim_is_a_model_error(tmp_path, from_file):
    """Was ValueError "negative dimensions are not allowed" from making verification data."""
    model = make_conv_bn_model()
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = -3
    _typed(model, tmp_path, from_file, "negative dimension")


@pytest.mark.parametrize("dims", [[2**40, 16, 16], [0, 2**40, 2**40]])
def test_regression_huge_input_dims_are_a_model_error(tmp_path, dims):
    """Was MemoryError (6 PiB of verification data), or ValueError "array is too big" when a 0 hid the size."""
    model = make_conv_bn_model()
    for dim, value in zip(model.graph.input[0].type.tensor_type.shape.dim[1:], dims):
        dim.dim_value = value
    _typed(model, tmp_path, False, "elements per sample")


def test_regression_in_memory_model_gets_the_checker(tmp_path):
    """Two nodes writing one value: a file failed the checker (ModelError), a ModelProto reached onnx_ir's
    SerdeError in the pass pipeline."""
    model = make_conv_bn_model()
    model.graph.node[-1].output[0] = model.graph.node[0].output[0]
    _typed(model, tmp_path, False, "ONNX checker.*single static assignment")


@pytest.mark.parametrize("where", ["input", "output", "initializer"])
def test_regression_undefined_element_type_is_a_model_error(tmp_path, where):
    """elem_type 999 passes the ONNX checker, then onnx_ir raised SerdeError in the pass pipeline."""
    model = make_conv_bn_model()
    if where == "initializer":
        model.graph.initializer[0].data_type = 999
    else:
        getattr(model.graph, where)[0].type.tensor_type.elem_type = 999
    _typed(model, tmp_path, True, "element type 999")
