"""ONNX → ``torch.nn.Module`` for the operators TensorForge's zoo and common CNNs use.

Why our own: onnx2torch (the well-kept converter tried first) imports torchvision at
import time, and the only torchvision wheels on this project's package index are CUDA
builds that cannot load beside the CPU torch build (``torchvision::nms does not exist``).
So this module converts exactly the ops the zoo's optimized graphs need — Conv, Gemm,
MatMul, Relu, Clip, Sigmoid, Softmax, MaxPool, AveragePool, GlobalAveragePool, LRN,
BatchNormalization, Add/Sub/Mul/Div, Concat, Flatten, Reshape, Transpose, Identity,
Dropout — and refuses anything else with a :class:`ModelError` naming the op.

The module interprets the (topologically sorted) node list in ``forward``; TorchDynamo
traces through that loop, so ``torch.compile`` sees one straight-line graph.
Only imported by ``backends/torch.py``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import helper, numpy_helper

from ..errors import ModelError


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _pads(pads: list[int], dims: int) -> tuple[tuple[int, ...] | None, tuple[int, ...]]:
    """ONNX pads [x1_begin, x2_begin, …, x1_end, x2_end, …] → (symmetric padding or None, F.pad order)."""
    begin, end = pads[:dims], pads[dims:]
    if list(begin) == list(end):
        return tuple(begin), ()
    order: list[int] = []
    for b, e in zip(reversed(begin), reversed(end)):     # F.pad: last dim first
        order += [b, e]
    return None, tuple(order)


def _check_auto_pad(node: onnx.NodeProto, a: dict[str, Any]) -> None:
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto not in ("NOTSET", "VALID"):
        raise ModelError(f"the torch backend's converter supports auto_pad NOTSET/VALID, not {auto} "
                         f"(node {node.name!r}); run the model through `tensorforge build` first")


def _conv(node: onnx.NodeProto, a: dict[str, Any], consts: dict[str, torch.Tensor]) -> Callable[..., Any]:
    _check_auto_pad(node, a)
    w = consts.get(node.input[1])
    dims = len(w.shape) - 2 if w is not None else len(a.get("kernel_shape", [0, 0]))
    if dims != 2:
        raise ModelError(f"the torch backend's converter handles 2-D Conv only (node {node.name!r})")
    sym, asym = _pads(list(a.get("pads", [0] * 2 * dims)), dims)
    stride, dilation, groups = tuple(a.get("strides", [1] * dims)), tuple(a.get("dilations", [1] * dims)), \
        int(a.get("group", 1))

    def conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        if asym:
            x = F.pad(x, asym)
        return F.conv2d(x, weight, bias, stride, sym or 0, dilation, groups)
    return conv


def _pool(node: onnx.NodeProto, a: dict[str, Any], kind: str) -> Callable[..., Any]:
    _check_auto_pad(node, a)
    kernel = tuple(a["kernel_shape"])
    if len(kernel) != 2:
        raise ModelError(f"the torch backend's converter handles 2-D pooling only (node {node.name!r})")
    sym, asym = _pads(list(a.get("pads", [0, 0, 0, 0])), 2)
    stride, ceil = tuple(a.get("strides", [1, 1])), bool(a.get("ceil_mode", 0))
    if kind == "max":
        if a.get("dilations", [1, 1]) != [1, 1] and tuple(a.get("dilations", (1, 1))) != (1, 1):
            raise ModelError(f"dilated MaxPool is not supported by the torch converter (node {node.name!r})")

        def maxpool(x: torch.Tensor) -> torch.Tensor:
            if asym:
                x = F.pad(x, asym, value=float("-inf"))
            return F.max_pool2d(x, kernel, stride, sym or 0, ceil_mode=ceil)
        return maxpool
    include = bool(a.get("count_include_pad", 0))

    def avgpool(x: torch.Tensor) -> torch.Tensor:
        if asym:
            if not include:
                raise ModelError(f"asymmetric AveragePool padding without count_include_pad (node {node.name!r})")
            x = F.pad(x, asym)
        return F.avg_pool2d(x, kernel, stride, sym or 0, ceil_mode=ceil, count_include_pad=include)
    return avgpool


def _gemm(a: dict[str, Any]) -> Callable[..., Any]:
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
    ta, tb = bool(a.get("transA", 0)), bool(a.get("transB", 0))

    def gemm(x: torch.Tensor, w: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        y = (x.t() if ta else x) @ (w.t() if tb else w)
        if alpha != 1.0:
            y = y * alpha
        if c is not None:
            y = y + (c * beta if beta != 1.0 else c)
        return y
    return gemm


def _clip(node: onnx.NodeProto, a: dict[str, Any], consts: dict[str, torch.Tensor]) -> Callable[..., Any]:
    bounds: list[float | None] = [a.get("min"), a.get("max")]
    for k, name in enumerate(node.input[1:3]):       # opset 11+: bounds are inputs, constants in practice
        if name:
            if name not in consts:
                raise ModelError(f"Clip with run-time bounds is not supported by the torch converter "
                                 f"(node {node.name!r})")
            bounds[k] = float(consts[name])
    low, high = bounds

    def clip(x: torch.Tensor, *_bounds: Any) -> torch.Tensor:
        return torch.clamp(x, low, high)
    return clip


def _flatten(a: dict[str, Any]) -> Callable[..., Any]:
    axis = int(a.get("axis", 1))

    def flatten(x: torch.Tensor) -> torch.Tensor:
        ax = axis if axis >= 0 else x.dim() + axis
        if ax == 0:
            return x.reshape(1, -1)
        y = x.flatten(ax) if ax < x.dim() else x.unsqueeze(-1)
        return y.flatten(0, ax - 1) if ax > 1 else y
    return flatten


def _reshape(node: onnx.NodeProto, a: dict[str, Any], consts: dict[str, torch.Tensor]) -> Callable[..., Any]:
    if node.input[1] not in consts:
        raise ModelError(f"Reshape with a run-time shape is not supported by the torch converter (node {node.name!r})")
    target = [int(v) for v in consts[node.input[1]].tolist()]
    allowzero = bool(a.get("allowzero", 0))

    def reshape(x: torch.Tensor, _shape: Any = None) -> torch.Tensor:
        shape = [x.shape[i] if (v == 0 and not allowzero) else v for i, v in enumerate(target)]
        return x.reshape(shape)
    return reshape


def _batchnorm(a: dict[str, Any]) -> Callable[..., Any]:
    eps = float(a.get("epsilon", 1e-5))

    def bn(x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor, mean: torch.Tensor,
           var: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, mean, var, scale, bias, False, 0.0, eps)
    return bn


def _op(node: onnx.NodeProto, consts: dict[str, torch.Tensor]) -> Callable[..., Any]:
    a, op = _attrs(node), node.op_type
    simple: dict[str, Callable[..., Any]] = {
        "Relu": F.relu, "Sigmoid": torch.sigmoid, "Add": torch.add, "Sub": torch.sub, "Mul": torch.mul,
        "Div": torch.div, "MatMul": torch.matmul, "Identity": lambda x: x, "Dropout": lambda x, *_: x,
        "GlobalAveragePool": lambda x: x.mean(dim=tuple(range(2, x.dim())), keepdim=True),
    }
    if op in simple:
        return simple[op]
    if op == "Conv":
        return _conv(node, a, consts)
    if op in ("MaxPool", "AveragePool"):
        return _pool(node, a, "max" if op == "MaxPool" else "avg")
    if op == "Gemm":
        return _gemm(a)
    if op == "Clip":
        return _clip(node, a, consts)
    if op == "Flatten":
        return _flatten(a)
    if op == "Reshape":
        return _reshape(node, a, consts)
    if op == "BatchNormalization":
        return _batchnorm(a)
    if op == "Concat":
        axis = int(a["axis"])
        return lambda *xs: torch.cat(xs, dim=axis)
    if op == "Softmax":
        axis = int(a.get("axis", -1))
        return lambda x: torch.softmax(x, dim=axis)
    if op == "Transpose":
        perm = a.get("perm")
        return lambda x: x.permute(*perm) if perm else x.permute(*reversed(range(x.dim())))
    if op == "LRN":
        size, alpha, beta, bias = int(a["size"]), float(a.get("alpha", 1e-4)), float(a.get("beta", 0.75)), \
            float(a.get("bias", 1.0))
        return lambda x: F.local_response_norm(x, size, alpha, beta, bias)
    raise ModelError(f"the torch backend cannot convert op {op!r} (node {node.name!r}); it converts "
                     f"{', '.join(sorted(SUPPORTED))} — use the onnxruntime or openvino backend for this model")


SUPPORTED = ("Conv", "Gemm", "MatMul", "Relu", "Clip", "Sigmoid", "Softmax", "MaxPool", "AveragePool",
             "GlobalAveragePool", "LRN", "BatchNormalization", "Add", "Sub", "Mul", "Div", "Concat", "Flatten",
             "Reshape", "Transpose", "Identity", "Dropout")


class OnnxModule(torch.nn.Module):
    """An ONNX graph as a torch module: weights as buffers, the nodes interpreted in order."""

    def __init__(self, model: onnx.ModelProto) -> None:
        super().__init__()
        graph = model.graph
        init_names = {i.name for i in graph.initializer}
        self.input_names = [i.name for i in graph.input if i.name not in init_names]
        self.output_names = [o.name for o in graph.output]
        consts: dict[str, torch.Tensor] = {}
        self._slots: dict[str, str] = {}
        for i, init in enumerate(graph.initializer):
            array = numpy_helper.to_array(init)
            tensor = torch.from_numpy(np.array(array, copy=True))
            consts[init.name] = tensor
            slot = f"w{i}"
            self.register_buffer(slot, tensor)
            self._slots[init.name] = slot
        for node in graph.node:          # Constant nodes become buffers too
            if node.op_type == "Constant":
                value = numpy_helper.to_array(_attrs(node)["value"])
                slot = f"c{len(self._slots)}"
                tensor = torch.from_numpy(np.array(value, copy=True))
                self.register_buffer(slot, tensor)
                consts[node.output[0]] = tensor
                self._slots[node.output[0]] = slot
        self._nodes = [(node.op_type, list(node.input), list(node.output), _op(node, consts))
                       for node in graph.node if node.op_type != "Constant"]

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        env: dict[str, Any] = {name: getattr(self, slot) for name, slot in self._slots.items()}
        env.update(zip(self.input_names, inputs))
        env[""] = None
        for _op_type, ins, outs, fn in self._nodes:
            result = fn(*[env[i] for i in ins])
            env[outs[0]] = result
        return tuple(env[name] for name in self.output_names)


def convert(model_bytes: bytes) -> OnnxModule:
    """ONNX bytes → :class:`OnnxModule` (float32 weights as in the model); ModelError if unsupported."""
    try:
        model = onnx.load_from_string(model_bytes)
    except Exception as exc:       # onnx raises DecodeError and friends
        raise ModelError(f"not a readable ONNX model: {exc}") from exc
    if not model.graph.node:
        raise ModelError("the ONNX model has no nodes")
    return OnnxModule(model).eval()
