"""ONNX Runtime backend — the default: CPU in-process; CUDA when an onnxruntime-gpu build is present.

The only module that imports ``onnxruntime`` for execution. ONNX Runtime's own graph
optimizer (``ORT_ENABLE_ALL``) still runs at session creation: it fuses Conv+activation
and other patterns into its contrib kernels, which are not portable ONNX and so are left
out of TensorForge's own passes.
"""

from __future__ import annotations

from functools import lru_cache
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from ..core.precisions import PRECISIONS
from ..errors import BackendUnavailable, ModelError
from .base import BackendSession, Capabilities, SessionConfig
from .profiling import RawProfile

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


# ONNX tensor types read off the kernel registry's type constraints -> TensorForge precision names
_TENSOR_PRECISIONS = {"tensor(float)": "fp32", "tensor(float16)": "fp16", "tensor(bfloat16)": "bf16",
                      "tensor(int8)": "int8", "tensor(uint8)": "int8"}
# a precision counts as native when the ops that carry a CNN/transformer's FLOPs all have kernels in it
_COMPUTE_OPS = (("", "Conv"), ("", "MatMul"), ("", "Gemm"))
_INT8_COMPUTE_OPS = (("", "QLinearConv"), ("", "QLinearMatMul"))


@lru_cache(maxsize=None)
def _capabilities(provider: str) -> Capabilities:
    """Read ONNX Runtime's kernel registry for ``provider`` (the kernels this build has compiled in)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_c

    kernels: dict[str, set[tuple[str, str]]] = {}
    for d in ort_c.get_all_opkernel_def():
        if d.provider != provider:
            continue
        kinds = {t for ts in d.type_constraints.values() for t in ts}
        for precision in {_TENSOR_PRECISIONS[t] for t in kinds if t in _TENSOR_PRECISIONS}:
            kernels.setdefault(precision, set()).add((d.domain, d.op_name))
    qdq = all(op in kernels.get("int8", ()) for op in _INT8_COMPUTE_OPS)
    native = {p for p in ("fp32", "fp16", "bf16") if all(op in kernels.get(p, ()) for op in _COMPUTE_OPS)}
    # every precision gets an entry, empty when the provider has no kernel of it: "none", not "unknown"
    return Capabilities(precisions=frozenset(native | ({"int8"} if qdq else set())), qdq_int8=qdq,
                        kernels=MappingProxyType({p: frozenset(kernels.get(p, ())) for p in PRECISIONS}))


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

    def capabilities(self, device: str = "cpu") -> Capabilities:
        """Read from ONNX Runtime's kernel registry: the CPU provider has no FP16/BF16 Conv, MatMul or
        Gemm kernels, so a 16-bit graph computes those in FP32 between casts there."""
        provider = _PROVIDERS.get(device)
        if provider is None:
            raise BackendUnavailable(f"unknown device {device!r}; use one of {list(_PROVIDERS)}")
        return _capabilities(provider)

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


# -- per-layer profile (``tensorforge profile``; plain data out, see backends/profiling.py) ---------------
_INT8_KERNELS = frozenset({
    "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "QGemm", "MatMulIntegerToFloat",
    "DynamicQuantizeMatMul", "QAttention", "QLinearAdd", "QLinearMul", "QLinearGlobalAveragePool",
    "QLinearAveragePool", "QLinearConcat", "QLinearSigmoid", "QLinearLeakyRelu", "QLinearSoftmax",
    "QLinearReduceMean", "QLinearWhere", "QLinearConvTranspose"})


def profile_layers(model_bytes: bytes, config: SessionConfig, feeds: Mapping[str, np.ndarray], runs: int,
                   warmup: int) -> RawProfile:
    """Per-node times from ONNX Runtime's profiler (``SessionOptions.enable_profiling``).

    One profiled session runs ``warmup + runs`` times, each call wall-timed; the trace's ``Node``
    events (``<node>_kernel_time``, whole microseconds) are split into runs by its ``model_run``
    events and the warm-up runs dropped. A node's precision is its kernel's: the int8 kernels
    (QLinearConv, QGemm, ConvInteger, MatMulInteger …) are int8, any other takes the element type
    of its first input in the event. Names go back to the payload through the graph ORT saves at
    the ``extended`` level — its fusions, before the layout passes of ``all`` rename nodes
    ``<output>_nchwc`` / ``<node>_token_<n>`` — and a node those passes fused away (an Add+Relu
    folded into an NCHWc Conv) joins the row of the node whose output only it consumed.
    """
    import json
    import os
    import re
    import tempfile
    import time
    from bisect import bisect_right

    import onnx

    from .profiling import GraphIndex, RawLayerTime, fused_coverage, precision_name

    ort = _ort()
    backend = OnnxRuntimeBackend()
    provider = _PROVIDERS.get(config.device)
    if provider is None or provider not in ort.get_available_providers():
        raise BackendUnavailable(f"onnxruntime cannot run on device {config.device!r} here (providers: "
                                 f"{ort.get_available_providers()}); profile with device 'cpu'")
    providers = (["TensorrtExecutionProvider", provider] if config.options.get("tensorrt") else [provider])
    payload = GraphIndex(onnx.load_from_string(model_bytes))
    level = config.options.get("graph_optimization_level", "all")
    notes: list[str] = []
    coverage: dict[str, tuple[str, ...]] = {}
    optimized_nodes: list[Any] = []
    with tempfile.TemporaryDirectory(prefix="tensorforge-profile-") as tmp:
        if level != "disable":
            map_level = "extended" if level == "all" else level
            mapping = SessionConfig(config.device, config.threads,
                                    {**config.options, "graph_optimization_level": map_level})
            opts = backend.session_options(mapping)
            opts.optimized_model_filepath = os.path.join(tmp, "optimized.onnx")
            try:
                ort.InferenceSession(model_bytes, sess_options=opts, providers=providers)
                optimized = onnx.load(opts.optimized_model_filepath)
            except Exception as exc:  # noqa: BLE001 - mapping is best effort; the times stand without it
                notes.append(f"onnxruntime did not save its optimized graph ({' '.join(str(exc).split())[:160]}); "
                             "rows are matched to payload nodes by name only")
            else:
                coverage = fused_coverage(optimized, payload)
                optimized_nodes = list(optimized.graph.node)
        opts = backend.session_options(config)
        opts.enable_profiling = True
        opts.profile_file_prefix = os.path.join(tmp, "profile")
        try:
            session = ort.InferenceSession(model_bytes, sess_options=opts, providers=providers)
        except Exception as exc:  # ORT raises its own exception types; keep them behind the protocol
            raise ModelError(f"onnxruntime could not load the model: {exc}") from exc
        outputs = [o.name for o in session.get_outputs()]
        wall_ms = []
        for _ in range(warmup + runs):
            start = time.perf_counter_ns()
            session.run(outputs, dict(feeds))
            wall_ms.append((time.perf_counter_ns() - start) / 1e6)
        with open(session.end_profiling(), encoding="utf-8") as fh:
            events = json.load(fh)

    spans = sorted((e["ts"], e["ts"] + e["dur"]) for e in events
                   if e.get("cat") == "Session" and e.get("name") == "model_run")[-runs:]
    if len(spans) != runs:
        raise ModelError(f"onnxruntime's profile holds {len(spans)} runs, expected {runs}; profile again")
    begins = [s for s, _ in spans]
    times: dict[str, list[float]] = {}
    args: dict[str, dict[str, Any]] = {}
    for e in events:
        name = str(e.get("name", ""))
        if e.get("cat") != "Node" or not name.endswith("_kernel_time"):
            continue
        i = bisect_right(begins, e["ts"]) - 1
        if i < 0 or e["ts"] > spans[i][1]:
            continue                       # a warm-up run
        node = name[: -len("_kernel_time")]
        times.setdefault(node, [0.0] * runs)[i] += float(e["dur"]) / 1e3
        args.setdefault(node, e.get("args", {}))

    producer = {t: n.name for n in optimized_nodes for t in n.output if t}
    consumers: dict[str, int] = {}
    for n in optimized_nodes:
        for t in n.input:
            consumers[t] = consumers.get(t, 0) + 1

    def match(name: str) -> tuple[str | None, tuple[str, ...]]:
        candidates = [name]
        while (base := re.sub(r"(_token_\d+|_nchwc)$", "", candidates[-1])) != candidates[-1]:
            candidates.append(base)
        for c in candidates:
            opt = c if c in coverage else producer.get(c)
            if opt is not None and opt in coverage:
                return opt, coverage[opt]
        for c in candidates:
            hit = payload.resolve(c)
            if hit is not None:
                return None, (hit,)
        return None, ()

    row_of: dict[str, str] = {}
    nodes_of: dict[str, list[str]] = {}
    for node in times:
        opt, covered = match(node)
        nodes_of[node] = list(covered)
        if opt is not None:
            row_of.setdefault(opt, node)
    for n in optimized_nodes:          # in graph order: a fused chain attaches link by link
        if n.name in row_of:
            continue
        sources = [(producer[t], consumers.get(t, 0)) for t in n.input if t in producer]
        sources.sort(key=lambda s: s[1] != 1)           # prefer the input only this node consumes
        if sources and sources[0][0] in row_of:
            row_of[n.name] = row_of[sources[0][0]]
            nodes_of[row_of[n.name]].extend(coverage.get(n.name, ()))

    layers = []
    for node, per_run in times.items():
        a = args[node]
        op = str(a.get("op_name", "?"))
        if op in _INT8_KERNELS:
            precision = "int8"
        else:
            types = [next(iter(d)) for key in ("input_type_shape", "output_type_shape")
                     for d in a.get(key, []) if isinstance(d, dict) and d]
            precision = precision_name(types[0]) if types else "unknown"
        where = str(a.get("provider", "CPUExecutionProvider")).replace("ExecutionProvider", "")
        kernel = op + (" [nchwc]" if "_nchwc" in node else "") + ("" if where == "CPU" else f" @{where}")
        layers.append(RawLayerTime(node, op, kernel, precision, tuple(per_run), payload.sort(nodes_of[node])))
    return RawProfile("onnxruntime", tuple(layers), tuple(wall_ms[warmup:]), tuple(notes))
