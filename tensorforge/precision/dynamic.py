"""INT8 dynamic quantization for MatMul-heavy graphs (transformers), and which INT8 scheme a graph gets.

Two INT8 schemes share one guard (:mod:`.guard`):

* ``static`` — calibrated activation ranges baked into QuantizeLinear/DequantizeLinear pairs
  (:mod:`.int8`): needs calibration data; best for CNNs, whose activations are stable;
* ``dynamic`` — ONNX Runtime's ``quantize_dynamic``: weights INT8 ahead of time (symmetric,
  per output channel), activations quantized per call from their own min/max
  (``DynamicQuantizeLinear`` → ``MatMulInteger``/``DynamicQuantizeMatMul``). No calibration
  data; an outlier token in one call cannot spoil the range of the next — the usual choice for
  BERT-like encoders, whose residual stream carries outliers a fixed range clips.

``auto`` (the default) picks ``dynamic`` for a graph with no convolution whose inputs include
integer token ids and that has MatMul/Gemm weights to quantize, ``static`` otherwise
(:func:`pick_scheme`). Only MatMul/Gemm nodes with a constant weight are quantized
(``MatMulConstBOnly``, ORT's dynamic default): the attention score and context MatMuls
multiply two activations and stay FP32.

Example::

    scheme, why = pick_scheme(bert)                           # ("dynamic", "no Conv; int64 token inputs ...")
    q, kept = quantize_dynamic_int8(bert, Int8Options(per_channel=True))
"""

from __future__ import annotations

import logging
import os
import tempfile

import onnx

from ..errors import BuildError
from .fp16 import ensure_node_names
from .int8 import Int8Options

__all__ = ["INT8_SCHEMES", "DYNAMIC_OP_TYPES", "pick_scheme", "resolve_scheme", "weight_layers",
           "quantize_dynamic_int8"]

INT8_SCHEMES = ("auto", "static", "dynamic")
DYNAMIC_OP_TYPES = ("MatMul", "Gemm", "Attention")
_CONV = ("Conv", "ConvTranspose", "ConvInteger", "QLinearConv")
_TOKEN_TYPES = (onnx.TensorProto.INT64, onnx.TensorProto.INT32)


def weight_layers(model: onnx.ModelProto) -> list[str]:
    """MatMul/Gemm nodes whose second input is a constant (an initializer): what dynamic INT8 quantizes."""
    consts = {t.name for t in model.graph.initializer}
    consts |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    return [n.name for n in model.graph.node
            if n.op_type in ("MatMul", "Gemm") and len(n.input) > 1 and n.input[1] in consts]


def pick_scheme(model: onnx.ModelProto) -> tuple[str, str]:
    """(``"dynamic"`` or ``"static"``, why) for ``auto``."""
    ops = {n.op_type for n in model.graph.node}
    inits = {t.name for t in model.graph.initializer}
    tokens = [i.name for i in model.graph.input if i.name not in inits
              and i.type.tensor_type.elem_type in _TOKEN_TYPES]
    if ops & set(_CONV):
        return "static", "the graph has convolutions: calibrated static QDQ"
    if not tokens:
        return "static", "no integer token inputs: calibrated static QDQ"
    if not weight_layers(model):
        return "static", "no MatMul/Gemm with constant weights to quantize dynamically"
    return "dynamic", (f"no convolutions, integer token inputs ({', '.join(tokens)}): dynamic INT8 "
                       "(per-call activation ranges, per-channel weights)")


def resolve_scheme(model: onnx.ModelProto, scheme: str, calibration_method: str | None) -> tuple[str, str]:
    """The scheme to use given the asked one (auto/static/dynamic) and the calibration method
    (``"dynamic"`` there asks for dynamic too); raises :class:`BuildError` on a contradiction."""
    if scheme not in INT8_SCHEMES:
        raise BuildError(f"unknown int8_scheme {scheme!r}; use one of {', '.join(INT8_SCHEMES)}")
    if calibration_method == "dynamic":
        if scheme == "static":
            raise BuildError("int8_scheme 'static' contradicts calibration method 'dynamic'; pick one "
                             "(a static calibration method such as percentile, or int8_scheme='dynamic')")
        return "dynamic", "asked for (calibration method 'dynamic')"
    if scheme != "auto":
        return scheme, "asked for"
    return pick_scheme(model)


def quantize_dynamic_int8(model: onnx.ModelProto,
                          options: Int8Options = Int8Options()) -> tuple[onnx.ModelProto, dict[str, str]]:
    """(dynamically quantized model, {node left in FP32: why}). Weights are signed INT8, symmetric, per
    output channel with ``options.per_channel``, 7-bit where the host's u8×s8 kernels saturate
    (:meth:`Int8Options.weights_7bit`); ``options.op_types`` narrows :data:`DYNAMIC_OP_TYPES`."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    m = onnx.ModelProto()
    m.CopyFrom(model)
    ensure_node_names(m)
    reasons = {n: "kept by request" for n in options.keep_nodes}
    if options.keep_first_last:
        layers = weight_layers(m)
        reasons.update({n: "first/last layer kept FP32" for n in dict.fromkeys(layers[:1] + layers[-1:])})
    known = {n.name for n in m.graph.node}
    unknown = [n for n in reasons if n not in known]
    if unknown:
        raise BuildError(f"cannot keep {unknown} in FP32: no such node(s) in the model")
    op_types = list(options.op_types) if options.op_types else list(DYNAMIC_OP_TYPES)
    logger = logging.getLogger()        # ORT's quantizer logs (and warns about pre-processing) through root
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory(prefix="tf-dyn-") as tmp:
            out_path = os.path.join(tmp, "dynamic.onnx")
            big = m.ByteSize() > 1_900_000_000
            quantize_dynamic(m, out_path, op_types_to_quantize=op_types, per_channel=options.per_channel,
                             reduce_range=options.weights_7bit(), weight_type=QuantType.QInt8,
                             nodes_to_exclude=list(reasons), use_external_data_format=big,
                             extra_options={"MatMulConstBOnly": True, "WeightSymmetric": True})
            out = onnx.load(out_path)
    except Exception as exc:
        raise BuildError(f"INT8 dynamic quantization failed: {type(exc).__name__}: {exc}") from exc
    finally:
        logger.setLevel(level)
    return out, reasons
