"""A small helper that assembles zoo networks as ONNX graphs with ``onnx.helper``.

:class:`GraphBuilder` appends nodes layer by layer (``conv``, ``bn``, ``relu``,
``maxpool``, ``concat``, ``gemm`` ...) and draws every weight from one seeded
``numpy.random.Generator``, so a given (network, seed, opset) always produces the same
bytes. Weights are Gaussian with He-style standard deviations (``sqrt(2 / fan_in)``
before a ReLU, ``sqrt(1 / fan_in)`` for the classifier) and BatchNormalization gets
plausible, non-identity statistics, so activations stay O(1) through deep networks:
the graphs are random but numerically meaningful (useful for speed, fusion and
precision tests; useless for predictions).

The builder tracks the channel count of every tensor it produces, so a network file
only states what the paper states (output channels, kernel, stride, padding).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

#: Oldest opset the builders can emit (BatchNormalization-9, Flatten-9).
MIN_OPSET = 9


class GraphBuilder:
    """Assemble one NCHW (or N x features) float32 ONNX graph with a dynamic batch ``N``.

    Example::

        b = GraphBuilder("tiny", seed=0, input_name="input", input_shape=(3, 32, 32))
        x = b.relu(b.bn(b.conv(b.input, 16, 3)))
        logits = b.gemm(b.flatten(b.global_avgpool(x)), 10)
        model = b.finish(logits, output_name="logits", doc="...")
    """

    def __init__(
        self,
        name: str,
        *,
        seed: int,
        input_name: str,
        input_shape: Sequence[int],
        opset: int = 17,
    ) -> None:
        self.name = name
        self.opset = opset
        self.rng = np.random.default_rng(seed)
        # Weights go straight into the final proto: a 500 MB VGG is copied once, not four
        # times (numpy -> TensorProto -> GraphProto -> ModelProto).
        self.model = onnx.ModelProto()
        self.nodes: list[onnx.NodeProto] = []
        self._init_names: set[str] = set()
        self._channels: dict[str, int] = {input_name: int(input_shape[0])}
        self._used: set[str] = {input_name}
        self._counter: dict[str, int] = {}
        self._input = helper.make_tensor_value_info(
            input_name, TensorProto.FLOAT, ["N", *input_shape]
        )
        self.input = input_name

    # -- naming and weights -------------------------------------------------------
    def _name(self, hint: str | None, op: str) -> str:
        if hint is None:
            n = self._counter.get(op, 0)
            self._counter[op] = n + 1
            hint = f"{op.lower()}{n}"
        if hint in self._used:
            raise ValueError(f"duplicate layer name {hint!r}")  # builder bug, not user input
        self._used.add(hint)
        return hint

    def _const(self, name: str, array: np.ndarray) -> str:
        assert array.dtype == np.float32 and name not in self._init_names, name
        t = self.model.graph.initializer.add()
        t.name = name
        t.data_type = TensorProto.FLOAT
        t.dims.extend(array.shape)
        t.raw_data = np.ascontiguousarray(array).astype("<f4", copy=False).tobytes()
        self._init_names.add(name)
        return name

    def _gauss(self, name: str, shape: Sequence[int], std: float) -> str:
        a = self.rng.standard_normal(tuple(shape), dtype=np.float32)
        a *= np.float32(std)  # in place: no second copy of a large weight
        return self._const(name, a)

    def _uniform(self, name: str, shape: Sequence[int], lo: float, hi: float) -> str:
        a = self.rng.uniform(lo, hi, size=tuple(shape)).astype(np.float32)
        return self._const(name, a)

    def channels(self, x: str) -> int:
        """Channel (or feature) count of tensor ``x``."""
        return self._channels[x]

    def _emit(self, op: str, inputs: list[str], out: str, channels: int, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        self._channels[out] = channels
        return out

    # -- layers -------------------------------------------------------------------
    def conv(
        self,
        x: str,
        cout: int,
        k: int,
        *,
        stride: int = 1,
        pad: int | None = None,
        group: int = 1,
        bias: bool = True,
        gain: float = 2.0,
        name: str | None = None,
    ) -> str:
        """Square ``k x k`` convolution; ``pad`` defaults to ``k // 2`` ("same" at stride 1)."""
        name = self._name(name, "Conv")
        cin = self._channels[x]
        assert cin % group == 0 and cout % group == 0, (name, cin, cout, group)
        fan_in = cin // group * k * k
        inputs = [x, self._gauss(f"{name}.weight", (cout, cin // group, k, k), math.sqrt(gain / fan_in))]
        if bias:
            inputs.append(self._gauss(f"{name}.bias", (cout,), 0.05))
        p = k // 2 if pad is None else pad
        return self._emit(
            "Conv", inputs, name, cout,
            kernel_shape=[k, k], strides=[stride, stride], pads=[p, p, p, p], group=group,
        )

    def bn(self, x: str, *, gamma_scale: float = 1.0, name: str | None = None) -> str:
        """BatchNormalization with random, non-identity inference statistics.

        ``gamma_scale`` shrinks gamma (e.g. on the last BN of a residual branch, as
        trained ResNets do) so that sums of many branches keep a sane scale.
        """
        name = self._name(name, "BatchNormalization")
        c = self._channels[x]
        inputs = [
            x,
            self._uniform(f"{name}.weight", (c,), 0.7 * gamma_scale, 1.3 * gamma_scale),
            self._gauss(f"{name}.bias", (c,), 0.1),
            self._gauss(f"{name}.running_mean", (c,), 0.1),
            self._uniform(f"{name}.running_var", (c,), 0.5, 1.5),
        ]
        return self._emit("BatchNormalization", inputs, name, c, epsilon=1e-5)

    def relu(self, x: str, name: str | None = None) -> str:
        return self._emit("Relu", [x], self._name(name, "Relu"), self._channels[x])

    def clip(self, x: str, lo: float, hi: float, name: str | None = None) -> str:
        """Clip(lo, hi); ReLU6 is ``clip(x, 0, 6)``. Bounds are inputs from opset 11 on."""
        name = self._name(name, "Clip")
        if self.opset < 11:
            return self._emit("Clip", [x], name, self._channels[x], min=lo, max=hi)
        lo_name, hi_name = f"clip_min_{lo:g}", f"clip_max_{hi:g}"
        if lo_name not in self._init_names:  # shared scalar bounds, one pair per value
            self._const(lo_name, np.array(lo, dtype=np.float32))
        if hi_name not in self._init_names:
            self._const(hi_name, np.array(hi, dtype=np.float32))
        return self._emit("Clip", [x, lo_name, hi_name], name, self._channels[x])

    def relu6(self, x: str, name: str | None = None) -> str:
        return self.clip(x, 0.0, 6.0, name)

    def lrn(
        self, x: str, size: int = 5, alpha: float = 1e-4, beta: float = 0.75,
        bias: float = 1.0, name: str | None = None,
    ) -> str:
        """Local response normalization across channels (AlexNet/GoogLeNet, Caffe's k=1)."""
        return self._emit(
            "LRN", [x], self._name(name, "LRN"), self._channels[x],
            size=size, alpha=alpha, beta=beta, bias=bias,
        )

    def _pads(self, pad: int, extra_end: int) -> list[int]:
        return [pad, pad, pad + extra_end, pad + extra_end]

    def maxpool(
        self, x: str, k: int, stride: int, pad: int = 0, *, ceil_pad: int = 0,
        name: str | None = None,
    ) -> str:
        """Max pooling; ``ceil_pad=1`` pads the end by one, which reproduces Caffe's
        ceil-mode output size on every opset (padding is ignored by MaxPool)."""
        return self._emit(
            "MaxPool", [x], self._name(name, "MaxPool"), self._channels[x],
            kernel_shape=[k, k], strides=[stride, stride], pads=self._pads(pad, ceil_pad),
        )

    def avgpool(self, x: str, k: int, stride: int, pad: int = 0, name: str | None = None) -> str:
        return self._emit(
            "AveragePool", [x], self._name(name, "AveragePool"), self._channels[x],
            kernel_shape=[k, k], strides=[stride, stride], pads=self._pads(pad, 0),
        )

    def global_avgpool(self, x: str, name: str | None = None) -> str:
        return self._emit(
            "GlobalAveragePool", [x], self._name(name, "GlobalAveragePool"), self._channels[x]
        )

    def concat(self, xs: Sequence[str], name: str | None = None) -> str:
        c = sum(self._channels[x] for x in xs)
        return self._emit("Concat", list(xs), self._name(name, "Concat"), c, axis=1)

    def add(self, a: str, b: str, name: str | None = None) -> str:
        assert self._channels[a] == self._channels[b], (a, b)
        return self._emit("Add", [a, b], self._name(name, "Add"), self._channels[a])

    def flatten(self, x: str, features: int | None = None, name: str | None = None) -> str:
        """Flatten to [N, features]; pass ``features`` when spatial dims remain (C*H*W)."""
        f = self._channels[x] if features is None else features
        return self._emit("Flatten", [x], self._name(name, "Flatten"), f, axis=1)

    def gemm(self, x: str, cout: int, *, gain: float = 2.0, name: str | None = None) -> str:
        """Fully connected layer as Gemm(transB=1), torch's Linear layout [out, in]."""
        name = self._name(name, "Gemm")
        cin = self._channels[x]
        w = self._gauss(f"{name}.weight", (cout, cin), math.sqrt(gain / cin))
        b = self._gauss(f"{name}.bias", (cout,), 0.05)
        return self._emit("Gemm", [x, w, b], name, cout, transB=1)

    def matmul_add(self, x: str, cout: int, *, gain: float = 2.0, name: str | None = None) -> str:
        """Fully connected layer as MatMul([in, out]) followed by Add(bias)."""
        name = self._name(name, "MatMul")
        cin = self._channels[x]
        w = self._gauss(f"{name}.weight", (cin, cout), math.sqrt(gain / cin))
        mm = self._emit("MatMul", [x, w], name, cout)
        b = self._gauss(f"{name}.bias", (cout,), 0.05)
        return self._emit("Add", [mm, b], f"{name}.add", cout)

    # -- composites ---------------------------------------------------------------
    def conv_bn(
        self, x: str, cout: int, k: int, *, stride: int = 1, group: int = 1,
        act: str | None = "relu", gamma_scale: float = 1.0, name: str,
    ) -> str:
        """Conv (no bias) + BN + optional activation ("relu" or "relu6")."""
        y = self.conv(x, cout, k, stride=stride, group=group, bias=False, name=name)
        y = self.bn(y, gamma_scale=gamma_scale, name=f"{name}.bn")
        if act == "relu":
            y = self.relu(y, name=f"{name}.relu")
        elif act == "relu6":
            y = self.relu6(y, name=f"{name}.relu6")
        else:
            assert act is None, act
        return y

    # -- result -------------------------------------------------------------------
    def finish(self, y: str, *, output_name: str, doc: str) -> onnx.ModelProto:
        """Rename ``y`` to ``output_name`` ([N, classes]) and return a checked model."""
        # Rewire the producing node's output to the public name.
        for node in self.nodes:
            for i, o in enumerate(node.output):
                if o == y:
                    node.output[i] = output_name
        output = helper.make_tensor_value_info(
            output_name, TensorProto.FLOAT, ["N", self._channels[y]]
        )
        model = self.model
        model.graph.name = self.name
        model.graph.node.extend(self.nodes)
        model.graph.input.append(self._input)
        model.graph.output.append(output)
        opsets = [helper.make_opsetid("", self.opset)]
        model.opset_import.extend(opsets)
        model.ir_version = helper.find_min_ir_version_for(opsets)
        model.producer_name = "tensorforge.zoo"
        model.doc_string = doc
        onnx.checker.check_model(model)
        return model
