"""Verification inputs: what the build feeds the original and the optimized model to compare them.

The inputs must be ones the model accepts, so they are chosen in this order:

1. sample inputs the user gives (``BuildOptions.verify_data``: an ``.npz`` file or a mapping of
   arrays named after the inputs);
2. test data shipped beside the model file (``test_data_set_0/input_*.pb`` next to ``model.onnx``,
   the layout of the ONNX backend tests and the ONNX model zoo);
3. random data shaped by the model: fixed dimensions as they are; the batch dimension — dim 0 of
   the inputs that share it (:func:`~tensorforge.graph.batch.batch_inputs`) — at the profile's
   batch (``batch``, else ``verify_batch`` capped by ``max_batch``); every other symbolic dimension
   at 1, the same value wherever the same symbol appears — or, when the build verifies a shape
   profile, every dynamic input at the profile point's shape (``shapes``).

Random integers are only used where any small value is valid. An integer input that feeds an index
position (Gather indices, ScatterND indices …) gets values in ``[0, size of the indexed axis)``; one
that feeds a shape, size, split, axes or repeat position (Expand shape, Reshape shape, Split split,
Slice starts/ends/axes/steps, Tile repeats …) cannot be guessed, and the build asks for sample data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import onnx
from onnx import numpy_helper

from ..core.specs import TensorSpec, io_specs
from ..errors import BuildError
from ..graph.batch import batch_inputs

__all__ = ["VerifyFeeds", "choose_feeds", "shipped_test_data"]

# (op type, input position) whose values must fit the model: a shape, sizes, axes, repeats, counts
_SHAPE_LIKE: dict[str, tuple[tuple[int, ...], str]] = {
    "Expand": ((1,), "shape"), "Reshape": ((1,), "shape"), "Split": ((1,), "split"),
    "SplitToSequence": ((1,), "split"), "Tile": ((1,), "repeats"), "Slice": ((1, 2, 3, 4), "starts/ends/axes/steps"),
    "ConstantOfShape": ((0,), "shape"), "Resize": ((1, 2, 3), "roi/scales/sizes"), "Upsample": ((1,), "scales"),
    "TopK": ((1,), "k"), "Range": ((0, 1, 2), "start/limit/delta"), "OneHot": ((1,), "depth"),
    "Pad": ((1, 3), "pads/axes"), "Unsqueeze": ((1,), "axes"), "Squeeze": ((1,), "axes"), "CumSum": ((1,), "axis"),
    "Trilu": ((1,), "k"), "NonMaxSuppression": ((2,), "max_output_boxes_per_class"),
    "CenterCropPad": ((1, 2), "shape/axes"), "DFT": ((1, 2), "dft_length/axis"),
}
# (op type) -> (indices position, data position, axis attribute or None for "every leading axis")
_INDEX_LIKE: dict[str, tuple[int, int, str | None]] = {
    "Gather": (1, 0, "axis"), "GatherElements": (1, 0, "axis"), "ScatterElements": (1, 0, "axis"),
    "Scatter": (1, 0, "axis"), "GatherND": (1, 0, None), "ScatterND": (1, 0, None),
    "SequenceAt": (1, 0, None), "SequenceErase": (1, 0, None), "SequenceInsert": (2, 0, None),
}
# ops that hand an integer input on unchanged in value (tracing continues through their outputs)
_PASS_THROUGH = {"Cast", "Identity", "Concat", "Unsqueeze", "Squeeze", "Flatten", "Transpose", "Reshape"}


@dataclass(frozen=True)
class VerifyFeeds:
    """The verification feeds, the batch they carry (dim 0 of the batch inputs, 1 when none),
    the inputs that carry it, and where the data came from (for the report)."""

    feeds: dict[str, np.ndarray]
    batch: int
    batch_names: tuple[str, ...]
    data: str


def shipped_test_data(model_path: Path, names: list[str]) -> dict[str, np.ndarray] | None:
    """``test_data_set_0/input_*.pb`` beside ``model_path``, by input name; None when absent or
    when it does not hold one tensor per input."""
    folder = model_path.parent / "test_data_set_0"
    files = sorted(folder.glob("input_*.pb"), key=lambda p: int(p.stem.split("_")[-1]) if
                   p.stem.split("_")[-1].isdigit() else -1)
    if not files or len(files) != len(names):
        return None
    out: dict[str, np.ndarray] = {}
    for i, f in enumerate(files):
        tensor = onnx.TensorProto()
        try:
            tensor.ParseFromString(f.read_bytes())
            array = numpy_helper.to_array(tensor)
        except Exception:  # noqa: BLE001 - a sequence/map proto or a broken file: not usable data
            return None
        out[tensor.name if tensor.name in names else names[i]] = array
    return out if set(out) == set(names) else None


def _user_data(verify_data: Any) -> dict[str, np.ndarray]:
    if isinstance(verify_data, Mapping):
        return {str(k): np.asarray(v) for k, v in verify_data.items()}
    path = Path(os.fspath(verify_data))
    if not path.is_file() or path.suffix != ".npz":
        raise BuildError(f"verify_data {str(path)!r} is not an .npz file; save sample inputs with "
                         "numpy.savez('inputs.npz', **{input_name: array}) and pass its path")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise BuildError(f"verify_data {str(path)!r} cannot be read as an .npz file ({exc}); write it "
                         "with numpy.savez") from exc


def _fits(spec: TensorSpec, array: np.ndarray) -> str | None:
    """Why ``array`` does not fit ``spec`` (fixed dims and rank), or None."""
    if array.ndim != len(spec.shape):
        return f"has rank {array.ndim}, the model's input {spec.name!r} has shape {spec.shape_str()}"
    for axis, (d, n) in enumerate(zip(spec.shape, array.shape)):
        if isinstance(d, int) and d != n:
            return f"has shape {array.shape}, the model's input {spec.name!r} has {d} on axis {axis}"
    return None


def _typed(spec: TensorSpec, array: np.ndarray) -> np.ndarray:
    want = np.dtype(spec.dtype)
    return array if want.kind == "O" or array.dtype == want else array.astype(want)


def _batch_of(feeds: Mapping[str, np.ndarray], names: tuple[str, ...]) -> int:
    return int(feeds[names[0]].shape[0]) if names and feeds[names[0]].ndim else 1


def _consumers(graph: onnx.GraphProto) -> dict[str, list[tuple[onnx.NodeProto, int]]]:
    out: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for node in graph.node:
        for i, name in enumerate(node.input):
            out.setdefault(name, []).append((node, i))
    return out


def _axis_sizes(model: onnx.ModelProto) -> dict[str, tuple[int | None, ...]]:
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - shapes are a help here, not a requirement
        inferred = model
    sizes: dict[str, tuple[int | None, ...]] = {}
    for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
            sizes[vi.name] = tuple(int(d.dim_value) if d.HasField("dim_value") else None
                                   for d in vi.type.tensor_type.shape.dim)
    for t in model.graph.initializer:
        sizes[t.name] = tuple(int(d) for d in t.dims)
    return sizes


def _integer_role(name: str, sizes: dict[str, tuple[int | None, ...]],
                  consumers: dict[str, list[tuple[onnx.NodeProto, int]]]) -> int:
    """The exclusive upper bound for an integer input's random values, by tracing its consumers:
    2 when free, the indexed axis' size (or 1: always index 0) for indices; raises BuildError naming
    the node when it feeds a shape-like position."""
    bound, seen, todo = 2, set(), [name]
    while todo:
        value = todo.pop()
        if value in seen:
            continue
        seen.add(value)
        for node, pos in consumers.get(value, []):
            op = node.op_type
            if op in _SHAPE_LIKE and pos in _SHAPE_LIKE[op][0]:
                role = _SHAPE_LIKE[op][1]
                raise _needs_sample_data(name, f"{op} node {node.name or node.output[0]!r} as its {role}")
            if op in _INDEX_LIKE and pos == _INDEX_LIKE[op][0]:
                _, data_pos, axis_attr = _INDEX_LIKE[op]
                data = sizes.get(node.input[data_pos]) if data_pos < len(node.input) else None
                axis = next((a.i for a in node.attribute if a.name == axis_attr), 0) if axis_attr else None
                if data and axis is not None and -len(data) <= axis < len(data):
                    known = [data[axis]]
                else:
                    known = list(data or ())
                dims = [d for d in known if d is not None]
                bound = min([bound, *dims]) if dims else 1     # unknown size: 0 is always a valid index
                continue
            if op in _PASS_THROUGH and (pos == 0 or op == "Concat"):
                todo.extend(node.output)
    return bound


def _needs_sample_data(name: str, where: str) -> BuildError:
    return BuildError(
        f"cannot verify the build on made-up inputs: integer input {name!r} feeds {where}, whose values must "
        "fit the model and cannot be guessed; pass sample inputs with verify_data='inputs.npz' (arrays named "
        "after the model's inputs), put test_data_set_0/input_*.pb beside the model, or build with verify=False")


def _generated(model: onnx.ModelProto, specs: list[TensorSpec], batch_names: tuple[str, ...], batch: int,
               seed: int, shapes: Mapping[str, tuple[int, ...]] | None = None) -> dict[str, np.ndarray]:
    symbols: dict[str, int] = {}
    for spec in specs:          # the batch symbol first, so every input carrying it agrees
        if spec.name in batch_names and spec.shape and isinstance(spec.shape[0], str):
            symbols[spec.shape[0]] = batch
    rng = np.random.default_rng(seed)
    sizes = consumers = None
    feeds: dict[str, np.ndarray] = {}
    for spec in specs:
        shape: list[int] = list(shapes[spec.name]) if shapes and spec.name in shapes else []
        for axis, d in enumerate(spec.shape if not shape else ()):
            if isinstance(d, int):
                shape.append(d)
            elif axis == 0 and spec.name in batch_names:
                shape.append(batch)
            else:
                shape.append(symbols.setdefault(d, 1) if isinstance(d, str) else 1)
        dtype = np.dtype(spec.dtype)
        if dtype.kind == "f":
            feeds[spec.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu":
            if sizes is None or consumers is None:
                sizes, consumers = _axis_sizes(model), _consumers(model.graph)
            bound = _integer_role(spec.name, sizes, consumers)
            feeds[spec.name] = rng.integers(0, max(bound, 1), size=shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[spec.name] = rng.integers(0, 2, size=shape).astype(bool)
        else:
            raise BuildError(f"cannot make verification data for input {spec.name!r} of dtype {dtype}; pass "
                             "sample inputs with verify_data='inputs.npz', or build with verify=False")
    return feeds


def choose_feeds(reference: onnx.ModelProto, optimized: onnx.ModelProto, *, verify_data: Any = None,
                 model_path: Path | None = None, batch: int | None = None, verify_batch: int = 2,
                 max_batch: int | None = None, seed: int = 0,
                 shapes: Mapping[str, tuple[int, ...]] | None = None) -> VerifyFeeds:
    """The verification feeds for ``optimized`` (see the module docstring for the order).

    >>> choose_feeds(model, model).data                  # doctest: +SKIP
    'random inputs, shapes from the model'
    """
    specs, _ = io_specs(optimized)
    names = [s.name for s in specs]
    batch_names = tuple(batch_inputs(optimized))
    if verify_data is not None:
        given = _user_data(verify_data)
        missing = [n for n in names if n not in given]
        if missing:
            raise BuildError(f"verify_data has no array for input(s) {missing}; it holds {sorted(given)}, the "
                             f"model's inputs are {names}")
        for spec in specs:
            why = _fits(spec, given[spec.name])
            if why:
                raise BuildError(f"verify_data's array {spec.name!r} {why}; give arrays in the model's shapes"
                                 + (" at the build's batch" if spec.name in batch_names else ""))
        feeds = {s.name: _typed(s, given[s.name]) for s in specs}
        origin = "given" if isinstance(verify_data, Mapping) else repr(os.fspath(verify_data))
        return VerifyFeeds(feeds, _batch_of(feeds, batch_names), batch_names, f"sample inputs ({origin})")
    if shapes:          # a shape profile's point: its shapes, whatever the batch options say
        feeds = _generated(reference, specs, batch_names, 1, seed, shapes)
        where = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in shapes.items())
        return VerifyFeeds(feeds, _batch_of(feeds, batch_names) if batch_names else 1, batch_names,
                           f"random inputs at {where}")
    if model_path is not None and model_path.is_file():
        shipped = shipped_test_data(model_path, names)
        if shipped is not None and all(_fits(s, shipped[s.name]) is None for s in specs):
            feeds = {s.name: _typed(s, shipped[s.name]) for s in specs}
            return VerifyFeeds(feeds, _batch_of(feeds, batch_names), batch_names,
                               "test data beside the model (test_data_set_0/input_*.pb)")
    n = batch or verify_batch
    if max_batch:
        n = min(n, max_batch)
    fixed = next((s.shape[0] for s in specs if s.name in batch_names and isinstance(s.shape[0], int)), None)
    if isinstance(fixed, int):
        n = fixed
    feeds = _generated(reference, specs, batch_names, n, seed)
    return VerifyFeeds(feeds, n if batch_names else 1, batch_names, "random inputs, shapes from the model")
