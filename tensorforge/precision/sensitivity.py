"""Layer sensitivity: convert one layer alone, measure what it costs, rank the layers.

For each candidate layer, ``convert(all_layers - {layer})`` builds the model with only that
layer reduced (INT8, FP16 …; every other candidate kept FP32 — nodes outside every layer
group, e.g. a lone residual Add, are converted in each trial as in the full model). It runs
on held-out data next to FP32, and each layer gets:

* ``top1_drop_pts`` — FP32 top-1 minus this model's top-1 on the same samples, in points
  (None without labels);
* ``cosine_loss`` — ``1 − mean cosine`` of the scored model output against FP32;
* ``output_rel_err`` — ``‖y − y_ref‖ / ‖y_ref‖`` of the **layer's own output tensor**,
  summed over every element of every sample, and ``output_sqnr_db = −20·log10(rel_err)``
  (its signal-to-quantization-noise ratio; ``inf`` when bit-identical).

**Ranking** (:func:`ranking_key`), most sensitive first: with labels by top-1 drop (a
negative drop — conversion happened to fix a few samples — counts as 0: it is noise, not a
gain), ties broken by cosine loss, then by output error, then graph order; without labels
by cosine loss, then output error, then graph order. The accuracy guard (:mod:`.guard`)
falls back layers to FP32 in exactly this order.

**The layer's output tensor** (:func:`layer_output`). In the FP32 model it is the compute
node's output — or, when that feeds a single Relu/Clip alone, the activation's output:
ONNX Runtime's quantizer folds such an activation into the layer (the pre-activation
tensor no longer exists in the QDQ model), so only the activated value exists in both.
In the converted model the same name is looked up; when a QuantizeLinear reads it, the
output of the DequantizeLinear after that QuantizeLinear is taken instead — the value the
rest of the network actually reads, INT8 rounding included. Both tensors are added as
extra graph outputs (the converted one through a Cast to float32, so FP16/BF16 work too)
and computed on ONNX Runtime batch by batch, so memory stays at one batch. A tensor the
converted model no longer holds gives ``output_tensor=None`` and no output error.

Example::

    convert = int8_converter(fp32, ranges)
    result = layer_sensitivity(fp32, convert, compute_layers(fp32), held_out)
    result.rows[0].layer, result.rows[0].top1_drop_pts, result.order
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import onnx
from onnx import TensorProto, helper

from ..backends.base import SessionConfig
from ..backends.reference import reference_session
from ..backends.registry import get_backend
from ..core.reference import pair
from ..errors import InputError
from ..models.accuracy_data import EvalData
from .evaluate import Score, check_disjoint, reference_outputs, run_model, score
from .fp16 import ensure_node_names
from .int8 import Int8Options, compute_layers, layer_groups, quantize_qdq

if TYPE_CHECKING:
    from .api import CalibrationSpec

__all__ = ["Convert", "LayerSensitivity", "SensitivityResult", "layer_sensitivity", "ranking_key", "layer_output",
           "int8_converter", "int8_sensitivity"]

Convert = Callable[[frozenset[str]], onnx.ModelProto]
Progress = Callable[[int, int, str], None]       # (layers done, layers in all, layer starting now)
_FOLDED_ACTIVATIONS = ("Relu", "Clip")           # ORT's QDQ quantizer removes these into the layer before them
RANKED_BY = {True: "top-1 drop (negative counts as 0), then cosine loss, then output error, then graph order",
             False: "cosine loss, then output error, then graph order"}


@dataclass(frozen=True)
class LayerSensitivity:
    """One layer converted alone (all other candidate layers FP32), against FP32 on the same samples."""

    layer: str
    op_type: str
    rank: int                           # 1 = most sensitive
    top1_pct: float | None              # of the model with only this layer converted
    top1_drop_pts: float | None         # FP32 top-1 minus top1_pct (None without labels)
    cosine_loss: float                  # 1 - mean cosine of the scored output vs FP32
    output_tensor: str | None           # the FP32 tensor compared (None: the converted model lost it)
    output_rel_err: float | None        # ||y - y_ref|| / ||y_ref|| over all elements of the layer's output
    output_sqnr_db: float | None        # -20 log10(output_rel_err); inf when bit-identical

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["output_sqnr_db"] is not None and not math.isfinite(d["output_sqnr_db"]):
            d["output_sqnr_db"] = None      # strict JSON has no inf: rel_err 0.0 says "identical"
        return d


@dataclass(frozen=True)
class SensitivityResult:
    rows: list[LayerSensitivity]        # ranked, most sensitive first
    fp32: Score                         # FP32 against itself on the same samples
    samples: int
    data: str
    ranked_by: str
    converted: Score | None = None      # every candidate layer converted (e.g. all-INT8), same samples
    calibration: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    schema: str = "tensorforge.sensitivity/1"

    @property
    def order(self) -> list[str]:
        """Layer names, most sensitive first."""
        return [r.layer for r in self.rows]

    @property
    def cosine_loss(self) -> dict[str, float]:
        """layer -> 1 - mean cosine (the guard's ``sensitivity`` in the build report)."""
        return {r.layer: r.cosine_loss for r in self.rows}

    def top(self, k: int) -> list[LayerSensitivity]:
        return self.rows[:max(k, 0)]

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.schema, "data": self.data, "samples": self.samples, "ranked_by": self.ranked_by,
                "fp32": self.fp32.to_dict(), "converted": self.converted.to_dict() if self.converted else None,
                "calibration": self.calibration, "warnings": list(self.warnings),
                "layers": [r.to_dict() for r in self.rows]}


def ranking_key(row: LayerSensitivity, position: int = 0) -> tuple[float, float, float, int]:
    """Sort key, most sensitive first (see the module doc); ``position`` is the layer's graph order."""
    drop = 0.0 if row.top1_drop_pts is None else max(row.top1_drop_pts, 0.0)
    return -drop, -row.cosine_loss, -(row.output_rel_err or 0.0), position


def layer_output(fp32_model: onnx.ModelProto, layer: str) -> str:
    """The FP32 tensor that holds ``layer``'s output (the rule is in the module doc)."""
    node = next((n for n in fp32_model.graph.node if n.name == layer), None)
    if node is None or not node.output:
        raise InputError(f"layer {layer!r} is not a node of the model; give names from compute_layers(model)")
    out = node.output[0]
    if out in {o.name for o in fp32_model.graph.output}:
        return out
    users = [n for n in fp32_model.graph.node if out in n.input]
    if len(users) == 1 and users[0].op_type in _FOLDED_ACTIVATIONS and users[0].output:
        return str(users[0].output[0])
    return str(out)


def _converted_tensor(model: onnx.ModelProto, name: str) -> str | None:
    """Where ``name``'s value lives in a converted model: the DequantizeLinear after its QuantizeLinear, or itself."""
    produced = {o for n in model.graph.node for o in n.output} | {i.name for i in model.graph.input}
    if name not in produced:
        return None
    for q in model.graph.node:
        if q.op_type == "QuantizeLinear" and q.input and q.input[0] == name:
            dq = next((n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input
                       and n.input[0] == q.output[0]), None)
            if dq is not None:
                return str(dq.output[0])
    return name


def _with_output(model: onnx.ModelProto, name: str, cast: bool) -> onnx.ModelProto:
    """A copy that also outputs ``name`` (through a Cast to float32 when ``cast``), as the last output."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    out = name
    if cast:
        out = f"{name}__tensorforge_probe"
        m.graph.node.append(helper.make_node("Cast", [name], [out], name=f"{out}_cast", to=TensorProto.FLOAT))
    elif name in {o.name for o in m.graph.output}:
        return m
    m.graph.output.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, None))
    return m


def _measure(fp32_model: onnx.ModelProto, converted: onnx.ModelProto, tensor: str | None, data: EvalData,
             threads: int | None) -> tuple[np.ndarray, float | None]:
    """(the converted model's scored output over ``data``, the layer output's relative error or None)."""
    where = None if tensor is None else _converted_tensor(converted, tensor)
    if tensor is None or where is None:
        return run_model(converted.SerializeToString(), data, threads=threads), None
    ort, cfg = get_backend("onnxruntime"), SessionConfig("cpu", threads)
    got_s = ort.create_session(_with_output(converted, where, cast=True).SerializeToString(), cfg)
    ref_s = reference_session(_with_output(fp32_model, tensor, cast=False).SerializeToString(), threads)
    names = list(got_s.output_names)
    index = 0 if data.output is None else names.index(data.output) if data.output in names else -1
    if index < 0:
        raise InputError(f"the model has no output {data.output!r}; its outputs are {names[:-1]}")
    ref_at = list(ref_s.output_names).index(tensor)
    scored, err2, ref2 = [], 0.0, 0.0
    for feeds in data.batches:
        outs = got_s.run(feeds)
        scored.append(np.asarray(outs[index]))
        got, ref = np.asarray(outs[-1], np.float64), np.asarray(ref_s.run(feeds)[ref_at], np.float64)
        if got.shape != ref.shape:
            raise InputError(f"tensor {tensor!r} has shape {ref.shape} in FP32 but {got.shape} after conversion; "
                             "this layer's output cannot be compared")
        p = pair(got, ref, tensor)          # the reference check's NaN/Inf policy
        err2 += math.inf if p.broken.any() else float(np.sum((p.got - p.want) ** 2))
        ref2 += float(np.sum(p.want * p.want))
    rel = 0.0 if err2 == 0.0 else math.sqrt(err2 / ref2) if ref2 > 0.0 else math.inf
    return np.concatenate(scored, axis=0).astype(np.float32, copy=False), rel


def layer_sensitivity(fp32_model: onnx.ModelProto, convert: Convert, layers: list[str], data: EvalData, *,
                      probe_samples: int | None = None, threads: int | None = None,
                      reference: np.ndarray | None = None, progress: Progress | None = None) -> SensitivityResult:
    """Convert each of ``layers`` alone and rank them (see the module doc).

    ``probe_samples``: judge on the first N samples of ``data`` only (None: all of it);
    ``reference``: the FP32 model's scored output on ``data`` (or at least its first
    ``probe_samples`` rows) when the caller has it already; ``progress(done, total, layer)``
    is called before each layer.
    """
    if probe_samples is not None and probe_samples < 1:
        raise InputError(f"probe_samples must be >= 1 (or None for all samples), got {probe_samples}")
    probe = data if probe_samples is None else data.head(probe_samples)
    if reference is None:
        reference = reference_outputs(fp32_model.SerializeToString(), probe, threads=threads)
    if len(reference) < probe.samples:
        raise InputError(f"reference holds {len(reference)} rows; the probe has {probe.samples} samples")
    ref = np.asarray(reference)[:probe.samples]
    fp32_score = score(ref, ref, probe.labels)
    ops = {n.name: n.op_type for n in fp32_model.graph.node}
    unknown = [n for n in layers if n not in ops]
    if unknown:
        raise InputError(f"layers {unknown} are not nodes of the model; give names from compute_layers(model)")
    everything = frozenset(layers)
    rows = []
    for i, layer in enumerate(layers):
        if progress is not None:
            progress(i, len(layers), layer)
        tensor = layer_output(fp32_model, layer)
        out, rel = _measure(fp32_model, convert(everything - {layer}), tensor, probe, threads)
        got = score(out, ref, probe.labels)
        drop = None if got.top1_pct is None or fp32_score.top1_pct is None else fp32_score.top1_pct - got.top1_pct
        rows.append(LayerSensitivity(
            layer=layer, op_type=ops[layer], rank=0, top1_pct=got.top1_pct, top1_drop_pts=drop,
            cosine_loss=float(1.0 - got.cosine_mean), output_tensor=tensor if rel is not None else None,
            output_rel_err=rel, output_sqnr_db=None if rel is None else (math.inf if rel == 0.0 else
                                                                         -20.0 * math.log10(rel))))
    if progress is not None:
        progress(len(layers), len(layers), "")
    position = {n: i for i, n in enumerate(layers)}
    ranked = sorted(rows, key=lambda r: ranking_key(r, position[r.layer]))
    return SensitivityResult(rows=[replace(r, rank=i + 1) for i, r in enumerate(ranked)], fp32=fp32_score,
                             samples=probe.samples, data=data.name, ranked_by=RANKED_BY[probe.labels is not None])


def int8_converter(fp32_model: onnx.ModelProto, ranges: dict[str, tuple[float, float]],
                   options: Int8Options = Int8Options()) -> Convert:
    """``convert(keep_fp32)`` for INT8: each kept layer keeps its whole group (Conv+Relu+Pool …) in FP32,
    on top of ``options.keep_nodes`` — the same partial quantization the accuracy guard builds."""
    groups = layer_groups(fp32_model)

    def convert(keep: frozenset[str]) -> onnx.ModelProto:
        nodes = {n for layer in keep for n in groups.get(layer, [layer])} | set(options.keep_nodes)
        return quantize_qdq(fp32_model, ranges, replace(options, keep_nodes=tuple(sorted(nodes))))[0]

    return convert


def int8_sensitivity(fp32_model: onnx.ModelProto, calibration: CalibrationSpec, data: EvalData, *,
                     activations: str = "uint8", per_channel: bool = True, probe_samples: int | None = None,
                     threads: int | None = None, progress: Progress | None = None) -> SensitivityResult:
    """Calibrate ``fp32_model`` (as the build does), then rank its compute layers by INT8 sensitivity on
    ``data`` (held out: sharing samples with the calibration data is refused), with the all-INT8 score.

    Example::

        result = int8_sensitivity(model, CalibrationSpec(data=calib_batches), EvalData(batches, labels))
    """
    from .api import calibrate  # api imports the guard, which imports this module

    quantized = sorted({n.op_type for n in fp32_model.graph.node} & {"QuantizeLinear", "DequantizeLinear",
                                                                    "QLinearConv", "QLinearMatMul"})
    if quantized:
        raise InputError(f"fp32_model already holds {', '.join(quantized)} nodes (it is quantized); give the FP32 "
                         "model it was built from")
    model = onnx.ModelProto()
    model.CopyFrom(fp32_model)
    ensure_node_names(model)
    layers = compute_layers(model)
    if not layers:
        raise InputError("the model has no Conv/ConvTranspose/Gemm/MatMul layer to quantize")
    ranges, info, batches = calibrate(model, calibration, activations, threads=threads)
    probe = data if probe_samples is None else data.head(probe_samples)
    if batches:
        check_disjoint(batches, probe)
    convert = int8_converter(model, ranges, Int8Options(per_channel=per_channel, activations=activations))
    ref = reference_outputs(model.SerializeToString(), probe, threads=threads)
    result = layer_sensitivity(model, convert, layers, probe, threads=threads, reference=ref, progress=progress)
    everything = score(run_model(convert(frozenset()).SerializeToString(), probe, threads=threads), ref,
                       probe.labels)
    return replace(result, converted=everything, calibration=info)
