"""A small helper for the sequence-model zoo builders (BERT, OpenNMT-style LSTM).

Unlike :class:`~tensorforge.models._builder.GraphBuilder`, which assembles one-input
image networks channel by channel, :class:`SeqGraph` only collects nodes, seeded
Gaussian initializers and graph IO: transformer and RNN graphs have several inputs and
outputs, integer token inputs and dynamic sequence axes, and their builders state every
shape themselves. The same ``(network, seed, opset)`` always produces the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

#: LayerNormalization is an ONNX op from opset 17 on.
SEQ_MIN_OPSET = 17


class SeqGraph:
    """Nodes, initializers and IO of one graph (also usable for a Loop body)."""

    def __init__(self, name: str, rng: np.random.Generator, *, prefix: str = "") -> None:
        self.name = name
        self.rng = rng
        self.prefix = prefix  # keeps a subgraph's tensor names apart from the outer graph's
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._count = 0
        self._scalars: dict[tuple[str, float], str] = {}

    # -- tensors --------------------------------------------------------------------
    def const(self, name: str, array: np.ndarray) -> str:
        t = helper.make_tensor(self.prefix + name, helper.np_dtype_to_tensor_dtype(array.dtype),
                               array.shape, np.ascontiguousarray(array).tobytes(), raw=True)
        self.inits.append(t)
        return t.name

    def gauss(self, name: str, shape: Sequence[int], std: float) -> str:
        a = self.rng.standard_normal(tuple(shape), dtype=np.float32)
        a *= np.float32(std)  # in place: a 94 MB embedding table is not copied twice
        return self.const(name, a)

    def uniform(self, name: str, shape: Sequence[int], lo: float, hi: float) -> str:
        return self.const(name, self.rng.uniform(lo, hi, size=tuple(shape)).astype(np.float32))

    def scalar(self, value: float, dtype: str = "float32") -> str:
        """A shared 0-d constant (one per value): scalars are not parameters worth a name each."""
        key = (dtype, float(value))
        if key not in self._scalars:
            self._scalars[key] = self.const(f"c_{dtype}_{value:g}".replace("-", "m"),
                                            np.array(value, dtype=dtype))
        return self._scalars[key]

    def ints(self, name: str, values: Sequence[int]) -> str:
        return self.const(name, np.array(list(values), dtype=np.int64))

    # -- nodes ----------------------------------------------------------------------
    def op(self, op: str, inputs: Sequence[str], *, name: str | None = None, outputs: int = 1,
           **attrs: Any) -> Any:
        """Append one node; returns its output name (or a list when ``outputs > 1``)."""
        if name is None:
            self._count += 1
            name = f"{op.lower()}_{self._count}"
        name = self.prefix + name
        outs = [name] if outputs == 1 else [f"{name}:{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op, list(inputs), outs, name=name, **attrs))
        return outs[0] if outputs == 1 else outs

    def linear(self, x: str, cin: int, cout: int, *, name: str, std: float) -> str:
        """x @ W[in, out] + b: the MatMul+Add pair exporters emit for a Linear layer."""
        w = self.gauss(f"{name}.weight", (cin, cout), std)
        b = self.gauss(f"{name}.bias", (cout,), std)
        return self.op("Add", [self.op("MatMul", [x, w], name=f"{name}.matmul"), b], name=name)

    def layernorm(self, x: str, width: int, *, name: str, eps: float = 1e-12) -> str:
        """LayerNormalization over the last axis, with non-identity gamma/beta (fusions get work)."""
        g = self.uniform(f"{name}.weight", (width,), 0.9, 1.1)
        b = self.gauss(f"{name}.bias", (width,), 0.02)
        return self.op("LayerNormalization", [x, g, b], name=name, axis=-1, epsilon=eps)

    # -- IO and result --------------------------------------------------------------
    def input(self, name: str, elem: int, shape: Sequence[int | str]) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, elem, list(shape)))
        return name

    def output(self, tensor: str, name: str, elem: int, shape: Sequence[int | str]) -> None:
        """Expose ``tensor`` as graph output ``name`` (an Identity keeps the producer's name)."""
        self.nodes.append(helper.make_node("Identity", [tensor], [name], name=f"{self.prefix}{name}.out"))
        self.outputs.append(helper.make_tensor_value_info(name, elem, list(shape)))

    def graph(self) -> onnx.GraphProto:
        return helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.inits)

    def model(self, *, opset: int, doc: str, metadata: dict[str, str] | None = None) -> onnx.ModelProto:
        opsets = [helper.make_opsetid("", opset)]
        m = helper.make_model(self.graph(), opset_imports=opsets,
                              producer_name="tensorforge.zoo", doc_string=doc)
        m.ir_version = helper.find_min_ir_version_for(opsets)
        for k, v in (metadata or {}).items():
            m.metadata_props.add(key=k, value=v)
        onnx.checker.check_model(m)
        return m


FLOAT = TensorProto.FLOAT
INT64 = TensorProto.INT64
