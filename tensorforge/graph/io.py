"""Model import: load an ONNX file, make it uniform, hash it.

Example::

    model = load_model("resnet50.onnx")          # external data resolved next to the file
    model, notes = normalize(model)               # opset >= 13, no initializers-as-inputs
    key = model_hash(model)                       # sha256 hex, stable across runs
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from tensorforge.errors import ModelError

__all__ = ["load_model", "model_hash", "normalize"]


def _has_external_data(model: onnx.ModelProto) -> bool:
    return any(
        t.data_location == onnx.TensorProto.EXTERNAL
        for t in onnx.external_data_helper._get_all_tensors(model)
    )


def load_model(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """Read an ONNX model, with external-data tensors loaded from beside the file.

    Raises :class:`ModelError` naming the file and the cause: missing file, not an ONNX
    protobuf (text, zip, truncated), a missing external-data file, or a checker failure.
    """
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"model file {str(p)!r} does not exist (or is not a file); check the path")
    try:
        model = onnx.load_model(str(p), load_external_data=False)
    except (DecodeError, RuntimeWarning, ValueError, TypeError) as e:
        raise ModelError(
            f"{str(p)!r} is not an ONNX model (protobuf decode failed: {e}); "
            "is it truncated, or a different format (text, zip, PyTorch checkpoint)?"
        ) from e
    except Exception as e:  # protobuf raises a few different types across versions
        raise ModelError(f"cannot read {str(p)!r} as an ONNX model: {type(e).__name__}: {e}") from e
    if not model.HasField("graph") or (not model.graph.node and not model.graph.output):
        raise ModelError(
            f"{str(p)!r} parsed as protobuf but holds no ONNX graph; is it an ONNX model file?"
        )
    if _has_external_data(model):
        base = str(p.resolve().parent)
        try:
            onnx.load_external_data_for_model(model, base)
        except (FileNotFoundError, OSError) as e:
            raise ModelError(
                f"{str(p)!r} refers to external tensor data that cannot be read ({e}); "
                f"keep the data file(s) next to the model in {base!r}"
            ) from e
        except Exception as e:
            raise ModelError(f"{str(p)!r}: loading external data failed: {type(e).__name__}: {e}") from e
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, Exception) as e:
        raise ModelError(f"{str(p)!r} fails the ONNX checker: {e}") from e
    return model


def _copy(vi: onnx.ValueInfoProto) -> onnx.ValueInfoProto:
    c = onnx.ValueInfoProto()
    c.CopyFrom(vi)
    return c


def _prelu_slopes_per_channel(model: onnx.ModelProto) -> int:
    """Before opset 7, PRelu's 1-D slope of size C applied per channel (axis 1); from opset 7 it
    broadcasts numpy-style (against the last axis), which ``version_converter`` does not rewrite.
    Reshape such constant slopes to ``[C, 1, ..., 1]`` so the upgraded model computes the same.
    Returns how many slopes were reshaped."""
    inits = {t.name: t for t in model.graph.initializer}
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - without shapes, the ranks are read off the graph inputs only
        inferred = model
    ranks = {vi.name: len(vi.type.tensor_type.shape.dim) for vi in
             [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]
             if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape")}
    uses: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    changed = 0
    for node in model.graph.node:
        if node.op_type != "PRelu" or node.domain not in ("", "ai.onnx") or len(node.input) < 2:
            continue
        slope, rank = inits.get(node.input[1]), ranks.get(node.input[0], 0)
        if slope is None or len(slope.dims) != 1 or slope.dims[0] == 1 or rank < 3:
            continue
        if uses[slope.name] > 1 or any(vi.name == slope.name for vi in model.graph.input):
            # shared (or also fed as an input): this node gets its own reshaped copy
            copy = onnx.TensorProto()
            copy.CopyFrom(slope)
            copy.name = f"{slope.name}_per_channel_{changed}"
            copy.dims[:] = [slope.dims[0]] + [1] * (rank - 2)
            model.graph.initializer.append(copy)     # append copies: set the dims first
            node.input[1] = copy.name
        else:
            slope.dims[:] = [slope.dims[0]] + [1] * (rank - 2)
        changed += 1
    return changed


def normalize(model: onnx.ModelProto, *, min_opset: int = 13) -> tuple[onnx.ModelProto, list[str]]:
    """Make a model from the wild uniform; return ``(model, notes)``.

    * a default-domain opset below ``min_opset`` is upgraded with
      ``onnx.version_converter`` (note ``"upgraded opset 7 -> 13"``);
    * initializers also listed in ``graph.input`` (old exporters did this) are removed
      from the inputs, so passes may treat them as constants
      (note ``"removed 53 initializers listed as graph inputs"``).
    The input model is not modified.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    notes: list[str] = []
    inits = {t.name for t in out.graph.initializer}
    # copies: messages taken from a repeated field do not survive `del field[:]`
    keep = [_copy(vi) for vi in out.graph.input if vi.name not in inits]
    removed = len(out.graph.input) - len(keep)
    if removed:
        del out.graph.input[:]
        out.graph.input.extend(keep)
        notes.append(f"removed {removed} initializers listed as graph inputs")
        # IR < 4 requires every initializer to be an input; the new form needs IR >= 4.
        out.ir_version = max(out.ir_version, 4)
    version = next(
        (o.version for o in out.opset_import if o.domain in ("", "ai.onnx")), None
    )
    if version is not None and version < min_opset:
        if version < 7 and _prelu_slopes_per_channel(out):
            notes.append("PRelu slopes reshaped to [C, 1, ...] (per-channel before opset 7)")
        try:
            out = onnx.version_converter.convert_version(out, min_opset)
            out.ir_version = max(
                out.ir_version, onnx.helper.find_min_ir_version_for(list(out.opset_import))
            )
            onnx.checker.check_model(out)
        except Exception as e:
            raise ModelError(
                f"opset upgrade: cannot upgrade the model from opset {version} to {min_opset}: "
                f"{type(e).__name__}: {e}; re-export it at opset {min_opset} or newer"
            ) from e
        notes.append(f"upgraded opset {version} -> {min_opset}")
    return out, notes


def model_hash(model: onnx.ModelProto) -> str:
    """SHA-256 hex digest of the deterministic serialization of ``model``.

    The model must hold its tensors inline (as :func:`load_model` returns it); a model
    still pointing at external data raises :class:`ModelError`.
    """
    if _has_external_data(model):
        raise ModelError(
            "model_hash needs the weights inline, but this model refers to external data; "
            "load it with tensorforge.graph.io.load_model(path) first"
        )
    canon = onnx.ModelProto()
    canon.CopyFrom(model)
    for t in onnx.external_data_helper._get_all_tensors(canon):
        # An explicit DEFAULT location (left by loading external data) means "inline",
        # the same as an absent field: hash both the same.
        t.ClearField("data_location")
    return hashlib.sha256(canon.SerializeToString(deterministic=True)).hexdigest()
