"""Tensor specs — name, dtype, shape with symbolic axes — read off an ONNX graph, and random
inputs shaped by them. Every layer shares them: the engine manifest records them, the build
verifies, the tuner and calibration feed, bench and the load generator send with them.

Example::

    inputs, outputs = io_specs(model)
    feeds = random_inputs(inputs, batch=8, seed=0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import onnx
from onnx import helper

from ..errors import ModelError

__all__ = ["TensorSpec", "concrete_shape", "io_specs", "random_inputs"]


@dataclass(frozen=True)
class TensorSpec:
    """Name, dtype (NumPy name, e.g. ``float32``) and shape; a str dim is symbolic (``"N"``)."""

    name: str
    dtype: str
    shape: tuple[int | str | None, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TensorSpec":
        return cls(name=str(d["name"]), dtype=str(d["dtype"]), shape=tuple(d["shape"]))

    def shape_str(self) -> str:
        return "(" + ", ".join("?" if d is None else str(d) for d in self.shape) + ")"


def _spec(value: onnx.ValueInfoProto) -> TensorSpec:
    tensor_type = value.type.tensor_type
    if not value.type.HasField("tensor_type"):
        raise ModelError(f"graph value {value.name!r} is not a tensor (sequences/maps are not supported)")
    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)).name
    except (KeyError, TypeError) as exc:
        raise ModelError(f"graph value {value.name!r} has unsupported element type {tensor_type.elem_type}") from exc
    dims: list[int | str | None] = []
    for d in tensor_type.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return TensorSpec(value.name, dtype, tuple(dims))


def io_specs(model: onnx.ModelProto) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """(inputs, outputs) of the graph; initializers listed as inputs are not inputs."""
    inits = {t.name for t in model.graph.initializer}
    inputs = [_spec(v) for v in model.graph.input if v.name not in inits]
    outputs = [_spec(v) for v in model.graph.output]
    return inputs, outputs


def concrete_shape(spec: TensorSpec, batch: int, opt: Mapping[str, Sequence[int]] | None = None) -> tuple[int, ...]:
    """Axis 0 symbolic/unknown → ``batch``; other symbolic axes → the engine's shape profile "opt"
    shape (``opt``: ``{input: shape}``, :meth:`~tensorforge.core.profiles.ShapeProfile.shapes`), else 1
    (stated in bench output)."""
    given = opt.get(spec.name) if opt else None
    shape = []
    for axis, d in enumerate(spec.shape):
        if isinstance(d, int):
            shape.append(d)
        elif axis == 0:
            shape.append(batch)
        else:
            shape.append(int(given[axis]) if given is not None and len(given) == len(spec.shape) else 1)
    return tuple(shape)


def random_inputs(specs: Sequence[TensorSpec], batch: int, seed: int = 0,
                  opt: Mapping[str, Sequence[int]] | None = None) -> dict[str, np.ndarray]:
    """Random data in each input's dtype: N(0,1) floats, small non-negative ints, random bools;
    non-batch dynamic axes at the profile's ``opt`` shapes when given (see :func:`concrete_shape`).

    Integer inputs get values in [0, 2) so they stay valid as indices (token ids, gathers).
    """
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in specs:
        shape = concrete_shape(spec, batch, opt)
        dtype = np.dtype(spec.dtype)
        if dtype.kind == "f":
            feeds[spec.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu":
            feeds[spec.name] = rng.integers(0, 2, size=shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[spec.name] = rng.integers(0, 2, size=shape).astype(bool)
        else:
            raise ModelError(f"cannot make random data for input {spec.name!r} of dtype {dtype}")
    return feeds
