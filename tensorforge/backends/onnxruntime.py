"""ONNX Runtime backend — the default: CPU in-process; CUDA when an onnxruntime-gpu build is present.

The only module that imports ``onnxruntime`` for execution. ONNX Runtime's own graph
optimizer (``ORT_ENABLE_ALL``) still runs at session creation: it fuses Conv+activation
and other patterns into its contrib kernels, which are not portable ONNX and so are left
out of TensorForge's own passes.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..errors import BackendUnavailable, ModelError
from .base import BackendSession, SessionConfig

_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
           "all": "ORT_ENABLE_ALL"}
# Settings a user (or the tuner) may pass through SessionConfig.options.
KNOWN_OPTIONS = ("graph_optimization_level", "inter_op_threads", "execution_mode", "enable_mem_pattern",
                 "enable_cpu_mem_arena", "allow_spinning", "tensorrt")


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - onnxruntime is a core dependency
        raise BackendUnavailable("onnxruntime is not installed: pip install onnxruntime") from exc
    return onnxruntime


def int8_saturates() -> bool:
    """True on an x86 CPU without VNNI (no AVX512_VNNI, AVX_VNNI or AMX-INT8): there ONNX Runtime's
    u8×s8 kernels multiply-add pairs with ``vpmaddubsw``, whose 16-bit sums saturate on 8-bit
    weights, which costs accuracy (the shipped MNIST classifier lost 1.7 top-1 points here while
    OpenVINO ran the same QDQ model exactly). ONNX Runtime's documented remedy is 7-bit weights
    (``reduce_range``); hosts with VNNI need none."""
    from ..core.host import is_x86, isa_flags

    flags = isa_flags()
    if not is_x86():
        return False
    return bool(flags) and not {"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags)


class OrtSession:
    """An ``InferenceSession`` behind the :class:`BackendSession` protocol."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self.input_names = [i.name for i in session.get_inputs()]
        self.output_names = [o.name for o in session.get_outputs()]

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return self._session.run(self.output_names, feeds)  # type: ignore[no-any-return]


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def availability(self) -> str | None:
        try:
            _ort()
        except BackendUnavailable as exc:
            return str(exc)
        return None

    def devices(self) -> list[str]:
        providers = _ort().get_available_providers()
        return [dev for dev, prov in _PROVIDERS.items() if prov in providers]

    def versions(self) -> dict[str, str]:
        return {"onnxruntime": _ort().__version__}

    def notes(self) -> list[str]:
        """Why the devices and providers this build lacks are missing."""
        providers = _ort().get_available_providers()
        notes = []
        if "CUDAExecutionProvider" not in providers:
            notes.append("cuda: this onnxruntime build has no CUDAExecutionProvider (pip install onnxruntime-gpu)")
        if "TensorrtExecutionProvider" not in providers:
            notes.append("tensorrt: no TensorrtExecutionProvider in this onnxruntime build")
        return notes

    def session_options(self, config: SessionConfig) -> Any:
        ort = _ort()
        unknown = sorted(set(config.options) - set(KNOWN_OPTIONS))
        if unknown:
            raise BackendUnavailable(
                f"onnxruntime backend has no option(s) {unknown}; known options: {list(KNOWN_OPTIONS)}")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if config.threads is not None:
            if config.threads < 1:
                raise ValueError(f"threads must be >= 1, got {config.threads}")
            opts.intra_op_num_threads = config.threads
        o = config.options
        level = o.get("graph_optimization_level", "all")
        if level not in _LEVELS:
            raise BackendUnavailable(f"graph_optimization_level must be one of {list(_LEVELS)}, got {level!r}")
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[level])
        if "inter_op_threads" in o:
            opts.inter_op_num_threads = int(o["inter_op_threads"])
        if o.get("execution_mode", "sequential") == "parallel":
            opts.execution_mode = ort.ExecutionMode.ORT_PARALLEL
        if "enable_mem_pattern" in o:
            opts.enable_mem_pattern = bool(o["enable_mem_pattern"])
        if "enable_cpu_mem_arena" in o:
            opts.enable_cpu_mem_arena = bool(o["enable_cpu_mem_arena"])
        if "allow_spinning" in o:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if o["allow_spinning"] else "0")
        return opts

    def create_session(self, model_bytes: bytes, config: SessionConfig) -> BackendSession:
        ort = _ort()
        provider = _PROVIDERS.get(config.device)
        if provider is None:
            raise BackendUnavailable(f"unknown device {config.device!r}; use one of {list(_PROVIDERS)}")
        if provider not in ort.get_available_providers():
            raise BackendUnavailable(
                f"device {config.device!r} needs {provider}, which this onnxruntime build lacks "
                f"(available: {ort.get_available_providers()}); install onnxruntime-gpu for CUDA")
        sess_options = self.session_options(config)
        providers = [provider]
        if config.options.get("tensorrt"):
            if config.device != "cuda" or "TensorrtExecutionProvider" not in ort.get_available_providers():
                raise BackendUnavailable("option tensorrt needs device 'cuda' and an onnxruntime build with the "
                                         "TensorrtExecutionProvider")
            providers = ["TensorrtExecutionProvider", provider]      # TensorRT first, CUDA for what it cannot take
        try:
            session = ort.InferenceSession(model_bytes, sess_options=sess_options, providers=providers)
        except Exception as exc:  # ORT raises its own exception types; keep them behind the protocol
            raise ModelError(f"onnxruntime could not load the model: {exc}") from exc
        return OrtSession(session)
