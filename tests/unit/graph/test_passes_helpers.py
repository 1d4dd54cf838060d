"""Shared helpers for the graph-pass tests (no tests here).

``check_equivalent`` is the oracle every pass test uses: the rewritten model must give
the original's outputs under both ONNX Runtime and ``onnx.reference``.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import onnx.parser
import onnx.reference
import onnx_ir as ir
import onnxruntime as ort

from tensorforge.graph.passes import CountedPassResult, GraphPass

_NP = {1: np.float32, 7: np.int64, 6: np.int32, 9: np.bool_, 11: np.float64}


def parse(text: str) -> onnx.ModelProto:
    model = onnx.parser.parse_model(text)
    onnx.checker.check_model(model, full_check=True)
    return model


def op_types(model: onnx.ModelProto) -> Counter[str]:
    return Counter(n.op_type for n in model.graph.node)


def apply(pass_cls: type[GraphPass], model: onnx.ModelProto, *, infer: bool = True) -> tuple[onnx.ModelProto, CountedPassResult]:
    """Run one pass (after shape inference, as the pipeline does) and return the proto."""
    m = ir.from_proto(model)
    if infer:
        ir.passes.common.ShapeInferencePass()(m)
    result = pass_cls()(m)
    assert isinstance(result, CountedPassResult)
    out = ir.to_proto(m)
    onnx.checker.check_model(out, full_check=True)
    return out, result


def random_feeds(model: onnx.ModelProto, seed: int = 0, batch: int | None = None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    inits = {t.name for t in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        shape = []
        for i, d in enumerate(tt.shape.dim):
            if d.HasField("dim_value"):
                shape.append(d.dim_value)
            else:
                shape.append(batch if (i == 0 and batch) else 2)
        dtype = _NP[tt.elem_type]
        feeds[vi.name] = rng.standard_normal(shape).astype(dtype)
    return feeds


def run_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    opts = ort.SessionOptions()
    # Run the graph as written: we compare our rewrite, not ORT's.
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def run_ref(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return list(onnx.reference.ReferenceEvaluator(model).run(None, feeds))


def check_equivalent(
    original: onnx.ModelProto,
    rewritten: onnx.ModelProto,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    seeds: tuple[int, ...] = (0, 1),
    use_ref: bool = True,
) -> None:
    """Outputs agree under ORT and onnx.reference; interface names are unchanged."""
    assert [i.name for i in original.graph.output] == [o.name for o in rewritten.graph.output]
    for seed in seeds:
        feeds = random_feeds(original, seed)
        runners = [run_ort, run_ref] if use_ref else [run_ort]
        for run in runners:
            want, got = run(original, feeds), run(rewritten, feeds)
            assert len(want) == len(got)
            for w, g in zip(want, got):
                assert w.shape == g.shape and w.dtype == g.dtype
                np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=run.__name__)
