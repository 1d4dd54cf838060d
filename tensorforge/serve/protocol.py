"""The KServe v2 / Open Inference Protocol codec: datatypes, JSON tensors, the binary tensor extension.

Pure functions, no sockets: the HTTP adapter hands in the body bytes and the value of
``Inference-Header-Content-Length``; the gRPC adapter uses :func:`array_from_bytes` and
:func:`array_to_bytes` for ``raw_input_contents`` / ``raw_output_contents``. Every
problem with a request raises :class:`~tensorforge.errors.InputError` whose message
names the tensor and what is wrong (the adapters turn it into 400 / INVALID_ARGUMENT).

Binary layout (Triton's binary tensor data extension): the body is the JSON header
followed by the raw tensors of every input whose ``parameters.binary_data_size`` is set,
in the order they are listed; elements are little-endian and row-major, BOOL is one byte
per element, and each BYTES element is a 4-byte little-endian length and its bytes.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import InputError
from .limits import check_json_depth, check_shape, element_count, loads_json, param_int

__all__ = ["DATATYPES", "NUMERIC_DATATYPES", "InferRequest", "array_from_bytes", "array_from_json", "array_to_bytes",
           "array_to_json", "check_shape", "contents_field", "datatype_of", "decode_http_request", "dtype_of",
           "element_count", "encode_http_response"]

# The one KServe datatype table: name -> (NumPy dtype, the typed field of a gRPC ``InferTensorContents``
# that carries it, None where the protos have none: FP16 travels in raw contents only). The server's
# codecs and the load generator's remote targets all read it.
_DATATYPES: dict[str, tuple[np.dtype[Any], str | None]] = {
    "BOOL": (np.dtype(np.bool_), "bool_contents"), "UINT8": (np.dtype(np.uint8), "uint_contents"),
    "UINT16": (np.dtype(np.uint16), "uint_contents"), "UINT32": (np.dtype(np.uint32), "uint_contents"),
    "UINT64": (np.dtype(np.uint64), "uint64_contents"), "INT8": (np.dtype(np.int8), "int_contents"),
    "INT16": (np.dtype(np.int16), "int_contents"), "INT32": (np.dtype(np.int32), "int_contents"),
    "INT64": (np.dtype(np.int64), "int64_contents"), "FP16": (np.dtype(np.float16), None),
    "FP32": (np.dtype(np.float32), "fp32_contents"), "FP64": (np.dtype(np.float64), "fp64_contents"),
    "BYTES": (np.dtype(object), "bytes_contents"),
}
_NAMES = {dt: name for name, (dt, _) in _DATATYPES.items()}
DATATYPES = tuple(_DATATYPES)
NUMERIC_DATATYPES = tuple(name for name, (dt, _) in _DATATYPES.items() if dt.kind != "O")


def dtype_of(datatype: Any, tensor: str = "") -> np.dtype[Any]:
    """The NumPy dtype of a KServe datatype name; InputError for an unknown one."""
    try:
        return _DATATYPES[datatype][0]
    except (KeyError, TypeError):
        where = f"tensor {tensor!r}: " if tensor else ""
        raise InputError(f"{where}unknown datatype {datatype!r}; use one of {list(DATATYPES)}") from None


def contents_field(datatype: str) -> str | None:
    """The gRPC ``InferTensorContents`` field that carries ``datatype`` (None: raw contents only)."""
    entry = _DATATYPES.get(datatype)
    return entry[1] if entry else None


def datatype_of(dtype: np.dtype[Any] | str) -> str:
    """The KServe datatype name of a NumPy dtype (``object``/``str`` → BYTES)."""
    dt = np.dtype(dtype)
    if dt.kind in "OSU":
        return "BYTES"
    try:
        return _NAMES[dt]
    except KeyError:
        raise InputError(f"dtype {dt} has no KServe datatype") from None


# -- raw bytes <-> arrays (binary extension and gRPC raw contents) ------------------------------------
def array_from_bytes(raw: bytes | memoryview, datatype: str, shape: Sequence[int], tensor: str) -> np.ndarray:
    """Decode one tensor's raw bytes; the byte count must match shape × element size exactly."""
    dtype = dtype_of(datatype, tensor)
    count = element_count(shape)
    if datatype == "BYTES":
        return _bytes_elements(raw, count, tensor).reshape(shape)
    want = count * dtype.itemsize
    if len(raw) != want:
        raise InputError(f"tensor {tensor!r}: {len(raw)} bytes of data, but shape {list(shape)} of {datatype} "
                         f"needs {want} bytes ({count} elements × {dtype.itemsize})")
    array = np.frombuffer(raw, dtype=dtype.newbyteorder("<") if dtype.itemsize > 1 else dtype).reshape(shape)
    # Tensors sit at arbitrary offsets in a request body; one aligned copy (a memcpy) is cheaper than
    # every later pass over unaligned memory (finite check, batch merge, the backend's own copy).
    return array if array.flags.aligned else array.copy()


def _bytes_elements(raw: bytes | memoryview, count: int, tensor: str) -> np.ndarray:
    view = memoryview(raw)
    if count * 4 > len(view):                 # checked before allocating: each element takes >= 4 bytes
        raise InputError(f"tensor {tensor!r}: the shape declares {count} BYTES elements, which need at least "
                         f"{count * 4} bytes (4 per element), but the data has {len(view)}; send the real shape")
    out = np.empty(count, dtype=object)
    pos = 0
    for i in range(count):
        if pos + 4 > len(view):
            raise InputError(f"tensor {tensor!r}: BYTES data ends after {i} of {count} elements (truncated)")
        (n,) = struct.unpack_from("<I", view, pos)
        pos += 4
        if pos + n > len(view):
            raise InputError(f"tensor {tensor!r}: BYTES element {i} claims {n} bytes, only {len(view) - pos} left")
        out[i] = bytes(view[pos:pos + n])
        pos += n
    if pos != len(view):
        raise InputError(f"tensor {tensor!r}: {len(view) - pos} bytes left over after {count} BYTES elements")
    return out


def array_to_bytes(array: np.ndarray) -> bytes:
    """Raw little-endian row-major bytes of an array (BYTES: length-prefixed elements)."""
    if array.dtype.kind in "OSU":
        parts = []
        for item in array.reshape(-1):
            data = item.encode("utf-8") if isinstance(item, str) else bytes(item)
            parts.append(struct.pack("<I", len(data)))
            parts.append(data)
        return b"".join(parts)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return np.ascontiguousarray(array).tobytes()


# -- JSON data <-> arrays -------------------------------------------------------------------------
def array_from_json(data: Any, datatype: str, shape: list[int], tensor: str) -> np.ndarray:
    """Decode a tensor's JSON ``data`` (flat or nested, row-major), checking types and the element count."""
    dtype = dtype_of(datatype, tensor)
    count = element_count(shape)
    if not isinstance(data, list):
        raise InputError(f"tensor {tensor!r}: 'data' must be a JSON array, got {type(data).__name__}")
    if datatype == "BYTES":
        flat = _flatten(data)
        if not all(isinstance(v, str) for v in flat):
            raise InputError(f"tensor {tensor!r}: BYTES data must be strings (use the binary extension for raw bytes)")
        out = np.empty(len(flat), dtype=object)
        out[:] = [v.encode("utf-8") for v in flat]
    else:
        try:
            loose = np.asarray(data)
        except ValueError as exc:
            raise InputError(f"tensor {tensor!r}: 'data' is ragged or malformed ({exc})") from None
        if loose.dtype == object or (loose.size and loose.dtype.kind not in _ACCEPTS[dtype.kind]):
            raise InputError(f"tensor {tensor!r}: 'data' holds {_kind_name(loose)} values, not valid {datatype}")
        if dtype.kind in "iu" and loose.size:
            info = np.iinfo(dtype)
            if loose.min() < info.min or loose.max() > info.max:
                raise InputError(f"tensor {tensor!r}: values outside the {datatype} range [{info.min}, {info.max}]")
        out = loose.astype(dtype, copy=False).reshape(-1)
    if out.size != count:
        raise InputError(f"tensor {tensor!r}: {out.size} data elements, but shape {shape} needs {count}")
    return out.reshape(shape)


_ACCEPTS = {"b": "b", "i": "iu", "u": "iu", "f": "iuf"}


def _kind_name(a: np.ndarray) -> str:
    return {"b": "boolean", "i": "integer", "u": "integer", "f": "floating-point", "U": "string"}.get(
        a.dtype.kind, "mixed")


def _flatten(data: list[Any]) -> list[Any]:
    out: list[Any] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            out.append(item)
    return out


def array_to_json(array: np.ndarray) -> list[Any]:
    flat = array.reshape(-1)
    if array.dtype.kind in "OS":
        try:
            return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in flat]
        except UnicodeDecodeError:
            raise InputError("an output holds non-UTF-8 bytes; request it with binary_data true") from None
    return flat.tolist()  # type: ignore[no-any-return]


# -- requests and responses -------------------------------------------------------------------------
@dataclass
class InferRequest:
    """A decoded inference request, the same for HTTP and gRPC."""

    inputs: dict[str, np.ndarray]
    datatypes: dict[str, str]
    outputs: list[tuple[str, bool]] | None = None     # requested (name, binary); None = all outputs
    binary_output: bool = False                      # default for outputs not listed
    id: str = ""
    priority: int = 0                                # protocol value: 0 = default level, 1 = highest
    timeout_us: int | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


def decode_http_request(body: bytes | memoryview, header_length: int | None) -> InferRequest:
    """Decode a POST …/infer body (JSON only, or JSON header + binary tensors)."""
    if header_length is None:
        header_length = len(body)
    elif not 0 < header_length <= len(body):
        raise InputError(f"Inference-Header-Content-Length is {header_length}, but the body has {len(body)} bytes")
    header = loads_json(bytes(body[:header_length]))
    if not isinstance(header, dict):
        raise InputError("request JSON must be an object with an 'inputs' list")
    check_json_depth(header, "the request JSON")
    raw_inputs = header.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InputError("request JSON needs a non-empty 'inputs' list")
    params = header.get("parameters") or {}
    if not isinstance(params, dict):
        raise InputError("'parameters' must be a JSON object")
    binary = memoryview(body)[header_length:]
    offset = 0
    inputs: dict[str, np.ndarray] = {}
    datatypes: dict[str, str] = {}
    for item in raw_inputs:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InputError(f"each input needs a 'name', 'shape' and 'datatype'; got {str(item)[:100]}")
        name = item["name"]
        if name in inputs:
            raise InputError(f"input {name!r} is given twice")
        shape = check_shape(item.get("shape"), name)
        datatype = item.get("datatype")
        dtype_of(datatype, name)
        assert isinstance(datatype, str)
        tparams = item.get("parameters") or {}
        size = param_int(tparams, "binary_data_size") if isinstance(tparams, dict) else None
        if size is not None:
            if "data" in item:
                raise InputError(f"input {name!r} has both 'data' and binary_data_size; send one of them")
            if offset + size > len(binary):
                raise InputError(f"input {name!r}: binary_data_size {size} at offset {offset}, but only "
                                 f"{len(binary) - offset} binary bytes remain — the body is truncated")
            inputs[name] = array_from_bytes(binary[offset:offset + size], datatype, shape, name)
            offset += size
        elif "data" in item:
            inputs[name] = array_from_json(item["data"], datatype, shape, name)
        else:
            raise InputError(f"input {name!r} has neither 'data' nor parameters.binary_data_size")
        datatypes[name] = datatype
    if offset != len(binary):
        raise InputError(f"the body has {len(binary) - offset} binary bytes after the last tensor; check "
                         "binary_data_size and Inference-Header-Content-Length")
    outputs = None
    if "outputs" in header:
        raw_outputs = header["outputs"]
        if not isinstance(raw_outputs, list):
            raise InputError("'outputs' must be a list of {\"name\": …} objects")
        outputs = []
        for out in raw_outputs:
            if not isinstance(out, dict) or not isinstance(out.get("name"), str):
                raise InputError(f"each requested output needs a 'name'; got {str(out)[:100]}")
            oparams = out.get("parameters") or {}
            outputs.append((out["name"], bool(oparams.get("binary_data", False)) if isinstance(oparams, dict)
                            else False))
    request_id = header.get("id", "")
    return InferRequest(inputs=inputs, datatypes=datatypes, outputs=outputs,
                        binary_output=bool(params.get("binary_data_output", False)),
                        id=request_id if isinstance(request_id, str) else str(request_id),
                        priority=param_int(params, "priority") or 0, timeout_us=param_int(params, "timeout"),
                        parameters=params)


def encode_http_response(model_name: str, model_version: str, request: InferRequest,
                         outputs: Mapping[str, np.ndarray]) -> tuple[bytes, int | None]:
    """Body of a successful infer response, and the JSON header length when binary tensors follow."""
    wanted = request.outputs if request.outputs is not None else [(n, request.binary_output) for n in outputs]
    tensors = []
    blobs = []
    for name, binary in wanted:
        array = outputs[name]
        entry: dict[str, Any] = {"name": name, "datatype": datatype_of(array.dtype), "shape": list(array.shape)}
        if binary:
            blob = array_to_bytes(array)
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = array_to_json(array)
        tensors.append(entry)
    # "id" always: the protocol lists it unconditionally (the request's, "" when it sent none, as in a gRPC
    # response) and KServe's SDK refuses a response without it; Triton leaves it out, its clients don't care
    response: dict[str, Any] = {"model_name": model_name, "model_version": model_version, "id": request.id,
                                "outputs": tensors}
    header = json.dumps(response, separators=(",", ":")).encode()
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)
