"""JSON schemas of every REST response body, written from the Open Inference Protocol and its extensions.

Sources: github.com/kserve/open-inference-protocol, ``specification/protocol/inference_rest.md``
(health, metadata, inference, the error object) and ``open_inference_rest.yaml``; Triton's
extension documents for the binary tensor data, model repository and statistics extensions
(``docs/protocol/extension_*.md`` in triton-inference-server/server). Where the markdown and the
YAML disagree the stricter one is taken (the markdown lists ``inputs``/``outputs`` of model
metadata as required, the YAML only ``name`` and ``platform``). The server-ready object is
``{"ready": $bool}``: the markdown's ``"live"`` there is a copy-paste slip that the KServe SDK and
KServe's own server both read as ``ready``.

``check(body, name)`` validates one decoded body and raises ``jsonschema.ValidationError``
naming the path of the first mismatch.
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

DATATYPES = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
             "FP16", "FP32", "FP64", "BYTES", "BF16"]


def _obj(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


_STRING, _BOOL, _INT = {"type": "string"}, {"type": "boolean"}, {"type": "integer", "minimum": 0}
_TENSOR_DATA = {"$ref": "#/$defs/tensor_data"}            # nested arrays of numbers, strings or booleans
_DEFS = {"tensor_data": {"type": "array", "items": {"anyOf": [_TENSOR_DATA, {"type": "number"},
                                                              {"type": "string"}, {"type": "boolean"}]}}}
_TENSOR_META = _obj(["name", "datatype", "shape"], name=_STRING, datatype={"enum": DATATYPES},
                    shape={"type": "array", "items": {"type": "integer", "minimum": -1}})
_RESPONSE_OUTPUT = {
    **_obj(["name", "shape", "datatype"], name=_STRING, datatype={"enum": DATATYPES},
           shape={"type": "array", "items": _INT}, parameters={"type": "object"}, data=_TENSOR_DATA),
    # JSON data, or (binary tensor data extension) no data and parameters.binary_data_size
    "oneOf": [{"required": ["data"]},
              {"required": ["parameters"], "not": {"required": ["data"]},
               "properties": {"parameters": _obj(["binary_data_size"], binary_data_size=_INT)}}],
}
_DURATION = _obj(["count", "ns"], count=_INT, ns=_INT)
_MODEL_STATS = _obj(
    ["name", "version", "last_inference", "inference_count", "execution_count", "inference_stats", "batch_stats"],
    name=_STRING, version=_STRING, last_inference=_INT, inference_count=_INT, execution_count=_INT,
    inference_stats=_obj(["success", "fail", "queue", "compute_input", "compute_infer", "compute_output"],
                         **{k: _DURATION for k in ("success", "fail", "queue", "compute_input", "compute_infer",
                                                   "compute_output", "cache_hit", "cache_miss")}),
    batch_stats={"type": "array", "items": _obj(["batch_size", "compute_input", "compute_infer", "compute_output"],
                                                batch_size=_INT, compute_input=_DURATION, compute_infer=_DURATION,
                                                compute_output=_DURATION)})
_CONFIG_TENSOR = _obj(["name", "data_type", "dims"], name=_STRING, data_type={"type": "string", "pattern": "^TYPE_"},
                      dims={"type": "array", "items": {"type": "integer", "minimum": -1}})

SCHEMAS: dict[str, dict[str, Any]] = {
    # the protocol's required API
    "server_live": _obj(["live"], live=_BOOL),
    "server_ready": _obj(["ready"], ready=_BOOL),
    "model_ready": _obj(["name", "ready"], name=_STRING, ready=_BOOL),
    "server_metadata": _obj(["name", "version", "extensions"], name=_STRING, version=_STRING,
                            extensions={"type": "array", "items": _STRING}),
    "model_metadata": _obj(["name", "platform", "inputs", "outputs"], name=_STRING, platform=_STRING,
                           versions={"type": "array", "items": _STRING},
                           inputs={"type": "array", "items": _TENSOR_META},
                           outputs={"type": "array", "items": _TENSOR_META}),
    "inference_response": {**_obj(["model_name", "id", "outputs"], model_name=_STRING, model_version=_STRING,
                                  id=_STRING, parameters={"type": "object"},
                                  outputs={"type": "array", "items": _RESPONSE_OUTPUT}), "$defs": _DEFS},
    "error": _obj(["error"], error={"type": "string", "minLength": 1}),
    # extensions (Triton's documents; load/unload answer as KServe's server does)
    "repository_index": {"type": "array", "items": _obj(["name"], name=_STRING, version=_STRING,
                                                        state={"enum": ["READY", "UNAVAILABLE", "LOADING",
                                                                        "UNLOADING"]},
                                                        reason=_STRING)},
    "repository_load": _obj(["name", "load"], name=_STRING, load={"const": True}),
    "repository_unload": _obj(["name", "unload"], name=_STRING, unload={"const": True}),
    "statistics": _obj(["model_stats"], model_stats={"type": "array", "items": _MODEL_STATS}),
    "model_config": _obj(["name", "max_batch_size", "input", "output"], name=_STRING, platform=_STRING,
                         max_batch_size=_INT, input={"type": "array", "items": _CONFIG_TENSOR},
                         output={"type": "array", "items": _CONFIG_TENSOR}),
}


def check(body: Any, name: str) -> None:
    """Validate a decoded response body against the schema ``name`` (a key of SCHEMAS)."""
    validator = Draft202012Validator(SCHEMAS[name])
    error = next(iter(sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))), None)
    if error is not None:
        raise error
