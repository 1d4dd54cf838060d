"""INT8 post-training quantization in the QDQ ONNX format, from calibrated ranges.

The rewrite itself is ONNX Runtime's ``QDQQuantizer`` (onnxruntime.quantization): it
inserts QuantizeLinear/DequantizeLinear pairs, so any backend that reads QDQ (ORT,
OpenVINO, TensorRT) can run the result with INT8 kernels. TensorForge owns the rest —
the ranges (:mod:`.collect`, :mod:`.methods`, our own calibration), the choice of
layers, and the accuracy search (:mod:`.guard`).

* weights: signed INT8, symmetric, per output channel (``per_channel=True``) or per tensor;
* activations: ``"uint8"`` (asymmetric, ORT's fastest on x86) or ``"int8"`` (signed,
  symmetric — TensorRT's convention);
* which ops: ``op_types``, or by default everything ONNX Runtime quantizes for CNN-like
  graphs and only Conv/Gemm/MatMul for transformer-like ones (:func:`default_op_types`);
* ``keep_first_last``: the first and last compute layers (Conv/Gemm/MatMul nearest the
  graph input and output) stay FP32 — a classic remedy for accuracy;
* ``keep_nodes``: further nodes to leave in FP32 (the guard's fallbacks);
* ``reduce_range``: 7-bit weights; by default on x86 CPUs without VNNI, whose u8×s8 kernels
  saturate 16-bit intermediate sums (ONNX Runtime's own remedy);
* nodes touching a tensor whose range reaches ±1e9 (attention-mask sentinels such as
  float32's minimum) stay FP32 by themselves: no INT8 scale can represent them.

Example::

    qdq, kept = quantize_qdq(model, ranges, Int8Options(activations="int8"))
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import onnx

from ..errors import BuildError
from .fp16 import ensure_node_names

__all__ = ["Int8Options", "COMPUTE_OPS", "compute_layers", "layer_groups", "first_last_layers", "quantize_qdq",
           "wide_range_nodes"]

COMPUTE_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
# single-input ops that belong to the compute layer before them (TensorRT fuses them into it)
_TRAILING = ("Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Elu", "Gelu",
             "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Flatten", "Reshape", "Transpose",
             "Squeeze", "Unsqueeze", "BatchNormalization", "Dropout", "Identity")


@dataclass(frozen=True)
class Int8Options:
    per_channel: bool = True
    activations: str = "uint8"           # "uint8" (asymmetric) or "int8" (signed, symmetric)
    keep_first_last: bool = False
    keep_nodes: tuple[str, ...] = ()
    op_types: tuple[str, ...] | None = None   # None: see default_op_types
    reduce_range: bool | None = None          # 7-bit weights; None: where this host's u8×s8 kernels saturate

    def __post_init__(self) -> None:
        if self.activations not in ("uint8", "int8"):
            raise BuildError(f"activations must be 'uint8' or 'int8', got {self.activations!r}")

    @property
    def unsigned(self) -> bool:
        return self.activations == "uint8"

    def weights_7bit(self) -> bool:
        """Whether weights are quantized to 7 bits: as asked, else on a CPU whose INT8 kernels saturate
        (:func:`tensorforge.backends.onnxruntime.int8_saturates`; signed activations are shifted to
        unsigned there and meet the same u8×s8 instruction)."""
        if self.reduce_range is not None:
            return self.reduce_range
        from ..backends.onnxruntime import int8_saturates

        return int8_saturates()


_TRANSFORMER_MARKS = ("LayerNormalization", "Softmax", "SkipLayerNormalization", "Attention")


def default_op_types(model: onnx.ModelProto) -> list[str] | None:
    """Op types to quantize when none are given: only the compute ops for transformer-like
    graphs (LayerNormalization/Softmax present) — their residual adds, norms and softmax carry
    outliers one per-tensor INT8 scale cannot hold; None (= everything ONNX Runtime can
    quantize: convs, pools, activations, adds, concats …) otherwise."""
    ops = {n.op_type for n in model.graph.node}
    return list(COMPUTE_OPS) if ops & set(_TRANSFORMER_MARKS) else None


def compute_layers(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes that carry the arithmetic (Conv/ConvTranspose/Gemm/MatMul), in graph order."""
    return [n.name for n in model.graph.node if n.op_type in COMPUTE_OPS]


def layer_groups(model: onnx.ModelProto) -> dict[str, list[str]]:
    """Each compute layer with the activation/pooling/reshape nodes that follow it alone.

    A "layer" as TensorRT fuses it (Conv+ReLU+MaxPool): keeping it in FP32 keeps its
    trailing ops' outputs unquantized too, so a clipped activation range inside it goes.
    """
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in model.graph.output}
    groups = {}
    for node in model.graph.node:
        if node.op_type not in COMPUTE_OPS:
            continue
        group, tail = [node.name], node
        while len(tail.output) == 1 and tail.output[0] not in outputs:
            users = consumers.get(tail.output[0], [])
            if len(users) != 1 or users[0].op_type not in _TRAILING:
                break
            tail = users[0]
            group.append(tail.name)
        groups[node.name] = group
    return groups


def first_last_layers(model: onnx.ModelProto) -> list[str]:
    """The first compute layer fed by a graph input, and the last one feeding a graph output."""
    layers = compute_layers(model)
    return list(dict.fromkeys([layers[0], layers[-1]])) if layers else []


def _constants_to_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy with tensor-valued Constant nodes turned into initializers (the quantizer wants those)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    keep = []
    for node in m.graph.node:
        attr = node.attribute[0] if node.op_type == "Constant" and len(node.attribute) == 1 else None
        if attr is not None and attr.name == "value" and node.domain in ("", "ai.onnx"):
            tensor = onnx.TensorProto()
            tensor.CopyFrom(attr.t)
            tensor.name = node.output[0]
            m.graph.initializer.append(tensor)
        else:
            keep.append(node)
    if len(keep) != len(m.graph.node):
        m.graph.ClearField("node")
        m.graph.node.extend(keep)
    return m


SENTINEL = 1e9     # a range reaching this holds masking sentinels (e.g. float32 min in attention masks)


def wide_range_nodes(model: onnx.ModelProto, ranges: dict[str, tuple[float, float]]) -> dict[str, str]:
    """Nodes touching a tensor whose range reaches ±1e9: INT8 cannot hold it (one step would swallow
    every real value), so they — producers and consumers alike — stay FP32."""
    wide = {k for k, (lo, hi) in ranges.items() if max(abs(lo), abs(hi)) >= SENTINEL}
    out = {}
    for node in model.graph.node:
        hit = next((t for t in list(node.input) + list(node.output) if t in wide), None)
        if hit is not None:
            out[node.name] = f"tensor {hit!r} spans {ranges[hit][0]:.3g}..{ranges[hit][1]:.3g} (a masking " \
                             "sentinel?): too wide for INT8"
    return out


def quantize_qdq(model: onnx.ModelProto, ranges: dict[str, tuple[float, float]],
                 options: Int8Options = Int8Options()) -> tuple[onnx.ModelProto, dict[str, str]]:
    """(QDQ model, {node left in FP32: why}). Node names are made unique first."""
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData
    from onnxruntime.quantization.qdq_quantizer import QDQQuantizer
    from onnxruntime.quantization.quant_utils import QuantType, save_and_reload_model_with_shape_infer
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    m = _constants_to_initializers(model)
    ensure_node_names(m)
    reasons = {n: "kept by request" for n in options.keep_nodes}
    if options.keep_first_last:
        reasons.update({n: "first/last layer kept FP32" for n in first_last_layers(m)})
    reasons.update(wide_range_nodes(m, ranges))
    exclude = list(reasons)
    known = {n.name for n in m.graph.node}
    unknown = [n for n in exclude if n not in known]
    if unknown:
        raise BuildError(f"cannot keep {unknown} in FP32: no such node(s) in the model")
    data = {k: TensorData(lowest=np.float32(lo), highest=np.float32(hi)) for k, (lo, hi) in ranges.items()}
    tensors = TensorsData(CalibrationMethod.MinMax, data)
    signed = options.activations == "int8"
    op_types = list(options.op_types) if options.op_types else default_op_types(m) or \
        sorted(set(QDQRegistry) | set(QLinearOpsRegistry))
    logger = logging.getLogger()        # ORT's quantizer logs through the root logger
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        shaped = save_and_reload_model_with_shape_infer(m)
        quantizer = QDQQuantizer(shaped, options.per_channel, options.weights_7bit(), QuantType.QInt8,
                                 QuantType.QInt8 if signed else QuantType.QUInt8, tensors, [], exclude, op_types,
                                 {"ActivationSymmetric": signed, "WeightSymmetric": True})
        quantizer.quantize_model()
        quantizer.model.topological_sort()
        out = quantizer.model.model
    except Exception as exc:
        raise BuildError(f"INT8 quantization failed: {type(exc).__name__}: {exc}") from exc
    finally:
        logger.setLevel(level)
    return out, reasons
