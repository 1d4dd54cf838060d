"""KServe v2 gRPC messages ↔ NumPy, on the official ``inference.GRPCInferenceService`` protos.

The generated code of Triton's ``grpc_service.proto`` ships inside ``tritonclient.grpc``
(``service_pb2``); we reuse it rather than hand-roll messages. Inputs come either as
``raw_input_contents`` (one bytes blob per input, the layout of the binary extension)
or as typed ``contents`` fields; outputs always go back as ``raw_output_contents``,
which is what Triton does and what ``tritonclient`` reads fastest.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..errors import InputError
from .limits import check_shape, element_count, param_int
from .protocol import InferRequest, array_from_bytes, array_to_bytes, contents_field, datatype_of, dtype_of


def pb() -> Any:
    """The generated protobuf module (imported lazily: tritonclient[grpc] is an extra)."""
    from tritonclient.grpc import service_pb2

    return service_pb2


def _param(param: Any) -> Any:
    kind = param.WhichOneof("parameter_choice")
    return getattr(param, kind) if kind else None


def decode_grpc_request(request: Any) -> InferRequest:
    """A ``ModelInferRequest`` → :class:`InferRequest` (InputError names any problem)."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InputError(f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs; send one "
                         "per input, in the same order (or none and use contents)")
    if not request.inputs:
        raise InputError("the request has no inputs")
    inputs: dict[str, np.ndarray] = {}
    datatypes: dict[str, str] = {}
    for i, tensor in enumerate(request.inputs):
        name, datatype = tensor.name, tensor.datatype
        if name in inputs:
            raise InputError(f"input {name!r} is given twice")
        shape = check_shape([int(d) for d in tensor.shape], name)
        dtype = dtype_of(datatype, name)
        if raw:
            inputs[name] = array_from_bytes(raw[i], datatype, shape, name)
        else:
            field = contents_field(datatype)
            if field is None:
                raise InputError(f"input {name!r}: {datatype} has no typed contents field; send it in "
                                 "raw_input_contents")
            values = list(getattr(tensor.contents, field))
            if len(values) != element_count(shape):
                raise InputError(f"input {name!r}: {len(values)} elements in contents.{field}, but shape {shape} "
                                 f"needs {element_count(shape)}")
            if datatype == "BYTES":
                array = np.empty(len(values), dtype=object)
                array[:] = values
            else:
                array = np.asarray(values).astype(dtype)
            inputs[name] = array.reshape(shape)
        datatypes[name] = datatype
    params = {k: _param(v) for k, v in request.parameters.items()}
    priority, timeout_us = param_int(params, "priority"), param_int(params, "timeout")
    outputs = [(o.name, True) for o in request.outputs] if len(request.outputs) else None
    return InferRequest(inputs=inputs, datatypes=datatypes, outputs=outputs, binary_output=True, id=request.id,
                        priority=priority or 0, timeout_us=timeout_us or None, parameters=params)


def encode_grpc_response(model_name: str, model_version: str, request: InferRequest,
                         outputs: Mapping[str, np.ndarray]) -> Any:
    """Outputs → ``ModelInferResponse`` with ``raw_output_contents``."""
    service = pb()
    names = [n for n, _ in request.outputs] if request.outputs is not None else list(outputs)
    response = service.ModelInferResponse(model_name=model_name, model_version=model_version, id=request.id)
    for name in names:
        array = outputs[name]
        response.outputs.add(name=name, datatype=datatype_of(array.dtype), shape=list(array.shape))
        response.raw_output_contents.append(array_to_bytes(array))
    return response
