"""Named pass pipelines (data) and the runner that applies them.

A pipeline is a tuple of pass names from :data:`tensorforge.graph.passes.PASSES`. The
runner converts the ``ModelProto`` to onnx-ir once, repeats the list until no pass
rewrites anything (at most ``MAX_ROUNDS`` rounds — each round is cheap, and a fold can
open a fusion: Dropout gone → Conv+BN adjacent), converts back, restores the graph
interface exactly (input/output names, order, dtypes, shapes — shape inference must not
"refine" a symbolic ``N``), and checks the result with ``onnx.checker``.

The passes emit portable ONNX, except ``transformer-ort``'s ``transformer_ort_fusion`` (ONNX Runtime
contrib ops such as ``com.microsoft.Attention``: only the onnxruntime backend runs that pipeline's
output; :mod:`tensorforge.graph.transformer` picks a transformer pipeline per backend).
Activation fusion (Conv+Relu, Conv+Add+Relu,
Gemm+Relu …) has no standard ONNX op, so it is deliberately *not* done here: ONNX
Runtime fuses those itself at session creation (``ORT_ENABLE_EXTENDED`` and above), and
other backends do their own.

Example::

    optimized, reports = run_pipeline(onnx.load("resnet.onnx"))
    for r in reports:
        print(r.name, r.changes)      # bn_folding {'bn_folded': 53} ...
"""

from __future__ import annotations

import dataclasses
from typing import Any

import onnx
import onnx_ir as ir
import onnx_ir.passes.common

from tensorforge.errors import BuildError
from tensorforge.graph.passes import PASSES, CountedPassResult

__all__ = ["PIPELINES", "PassReport", "run_pipeline"]

MAX_ROUNDS = 4

PIPELINES: dict[str, tuple[str, ...]] = {
    "none": (),
    "cleanup": (
        "shape_inference",
        "dropout_removal",
        "identity_elimination",
        "dead_code_elimination",
    ),
    "default": (
        "shape_inference",
        "dropout_removal",
        "constant_folding",
        "noop_elimination",
        "identity_elimination",
        "matmul_add_fusion",
        "bn_folding",
        "conv_bias_fusion",
        "dead_code_elimination",
    ),
    # transformers (graph/transformer.py picks one per backend). ONNX Runtime's fusions run before any
    # folding: they match the exporter's own mask and shape subgraphs, which folding rewrites
    "transformer-ort": (
        "shape_inference",
        "dropout_removal",
        "identity_elimination",
        "transformer_ort_fusion",
        "constant_folding",
        "noop_elimination",
        "dead_code_elimination",
    ),
    "transformer-portable": (
        "shape_inference",
        "dropout_removal",
        "constant_folding",
        "noop_elimination",
        "identity_elimination",
        "transformer_portable_fusion",
        "matmul_add_fusion",
        "dead_code_elimination",
    ),
}


@dataclasses.dataclass(frozen=True)
class PassReport:
    """What one pass did over the whole pipeline run (counts summed over rounds)."""

    name: str
    modified: bool
    changes: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "modified": self.modified, "changes": dict(self.changes)}


def _interface(graph: onnx.GraphProto) -> tuple[list[onnx.ValueInfoProto], list[onnx.ValueInfoProto]]:
    def copy(vis: Any) -> list[onnx.ValueInfoProto]:
        out = []
        for vi in vis:
            c = onnx.ValueInfoProto()
            c.CopyFrom(vi)
            out.append(c)
        return out

    return copy(graph.input), copy(graph.output)


def _restore_interface(
    model: onnx.ModelProto, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto]
) -> None:
    for field, want in ((model.graph.input, inputs), (model.graph.output, outputs)):
        got = [vi.name for vi in field]
        if got != [vi.name for vi in want]:
            raise BuildError(
                f"graph interface changed: expected {[vi.name for vi in want]}, got {got}; "
                "this is a bug in a pass — rerun with pipeline='none' to skip graph passes"
            )
        del field[:]
        field.extend(want)


def run_pipeline(
    model: onnx.ModelProto, pipeline: str = "default"
) -> tuple[onnx.ModelProto, list[PassReport]]:
    """Apply the named pipeline to a copy of ``model``; return it and one report per pass."""
    if pipeline not in PIPELINES:
        raise BuildError(
            f"unknown graph pipeline {pipeline!r}; choose one of {sorted(PIPELINES)}"
        )
    names = PIPELINES[pipeline]
    inputs, outputs = _interface(model.graph)
    ir_model = ir.from_proto(model)
    changes: dict[str, dict[str, int]] = {n: {} for n in names}
    modified = {n: False for n in names}
    for _ in range(MAX_ROUNDS if names else 0):
        round_modified = False
        for name in names:
            try:
                result = PASSES[name]()(ir_model)
            except Exception as e:  # a pass bug must name the pass
                raise BuildError(f"graph pass {name!r} failed: {type(e).__name__}: {e}") from e
            if isinstance(result, CountedPassResult):
                for k, v in result.changes.items():
                    changes[name][k] = changes[name].get(k, 0) + v
            modified[name] |= result.modified
            round_modified |= result.modified
        if not round_modified:
            break
    if names:
        ir.passes.common.TopologicalSortPass()(ir_model)
    out = ir.to_proto(ir_model)
    if names:
        del out.graph.value_info[:]  # stale after rewrites; consumers re-infer
    _restore_interface(out, inputs, outputs)
    try:
        onnx.checker.check_model(out)
    except onnx.checker.ValidationError as e:
        raise BuildError(f"pipeline {pipeline!r} produced an invalid model: {e}") from e
    reports = [PassReport(n, modified[n], changes[n]) for n in names]
    return out, reports
