"""OpenVINO backend (CPU): Intel's kernel library, behind the same small protocol.

The only module that imports ``openvino``. ONNX bytes are read by OpenVINO's ONNX
frontend (a symbolic batch dimension stays dynamic) and compiled for the CPU plugin.
FP32 stays FP32: on CPUs with AVX-512 BF16 or AMX the plugin would otherwise pick BF16
on its own, so ``INFERENCE_PRECISION_HINT`` is pinned to ``f32`` unless asked otherwise.

Options (``SessionConfig.options``; unknown names are refused):

* ``performance_hint``: ``"latency"`` (default) | ``"throughput"`` | ``"none"``;
* ``num_streams``: an int or ``"auto"`` — CPU streams (each runs one request at a time);
* ``inference_precision``: ``"f32"`` (default) | ``"bf16"`` | ``"f16"``;
* ``enable_cpu_pinning``: bool, default **off** (OpenVINO's own default pins threads to cores,
  which slows every other library in the same process, and on a small machine OpenVINO
  itself too); ``enable_hyper_threading``: bool;
* ``num_requests``: how many infer requests the session keeps for concurrent callers
  (default: the compiled model's ``OPTIMAL_NUMBER_OF_INFER_REQUESTS``);
* ``static_batch``: an int — also compile a copy of the model with the batch axis fixed to it
  (TensorRT's "opt" shape of an optimization profile): calls at that batch run the static
  copy, others the dynamic model. With every shape known at compile time the CPU plugin
  plans memory and picks kernels once, so calls at that batch can run faster (a small gain,
  model-dependent: the tuner measures it as a candidate). A model whose batch
  axis cannot be fixed (a reshape that hard-codes it) keeps the dynamic model alone, and
  :attr:`OpenVinoSession.static_batch` says ``None``. Costs a second compile and its memory.

``threads`` maps to ``INFERENCE_NUM_THREADS``. A session is safe to call from several
threads at once: each call borrows one infer request from a pool, so concurrent callers keep
every stream busy.
"""

from __future__ import annotations

import queue
from typing import Any, Mapping

import numpy as np

from ..errors import BackendUnavailable, ModelError
from .base import BackendSession, Capabilities, SessionConfig
from .profiling import RawProfile

KNOWN_OPTIONS = ("performance_hint", "num_streams", "inference_precision", "enable_cpu_pinning",
                 "enable_hyper_threading", "num_requests", "static_batch", "sparse_weights_decompression_rate")
_HINTS = {"latency": "LATENCY", "throughput": "THROUGHPUT", "none": None}
_PRECISIONS = ("f32", "bf16", "f16")
_DEVICES = {"cpu": "CPU"}


def _ov() -> Any:
    try:
        import openvino
    except ImportError as exc:
        raise BackendUnavailable("openvino is not installed: pip install 'tensorforge[openvino]'") from exc
    return openvino


def compile_properties(config: SessionConfig) -> dict[str, Any]:
    """The OpenVINO compile properties for ``config`` (checked; clear errors for bad values)."""
    unknown = sorted(set(config.options) - set(KNOWN_OPTIONS))
    if unknown:
        raise BackendUnavailable(f"openvino backend has no option(s) {unknown}; known options: {list(KNOWN_OPTIONS)}")
    o = config.options
    props: dict[str, Any] = {}
    hint = o.get("performance_hint", "latency")
    if hint not in _HINTS:
        raise BackendUnavailable(f"performance_hint must be one of {list(_HINTS)}, got {hint!r}")
    if _HINTS[hint]:
        props["PERFORMANCE_HINT"] = _HINTS[hint]
    precision = o.get("inference_precision", "f32")
    if precision not in _PRECISIONS:
        raise BackendUnavailable(f"inference_precision must be one of {list(_PRECISIONS)}, got {precision!r}")
    props["INFERENCE_PRECISION_HINT"] = precision
    if "num_streams" in o:
        streams = o["num_streams"]
        if streams != "auto" and (not isinstance(streams, int) or streams < 1):
            raise BackendUnavailable(f"num_streams must be a positive int or 'auto', got {streams!r}")
        props["NUM_STREAMS"] = "AUTO" if streams == "auto" else str(streams)
    if config.threads is not None:
        if config.threads < 1:
            raise ValueError(f"threads must be >= 1, got {config.threads}")
        props["INFERENCE_NUM_THREADS"] = str(config.threads)
    # Pinning off unless asked: OpenVINO's default pins its threads to cores, which slows every other
    # library in the process (ONNX Runtime beside it) and, on a machine with few cores, OpenVINO itself;
    # the tuner can still try it on.
    props["ENABLE_CPU_PINNING"] = "YES" if o.get("enable_cpu_pinning", False) else "NO"
    if "enable_hyper_threading" in o:
        props["ENABLE_HYPER_THREADING"] = "YES" if o["enable_hyper_threading"] else "NO"
    if "sparse_weights_decompression_rate" in o:      # pack FC weights at least this sparse (AMX CPUs)
        rate = o["sparse_weights_decompression_rate"]
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise BackendUnavailable(f"sparse_weights_decompression_rate must be a number in [0, 1], got {rate!r}")
        props["CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE"] = float(rate)
    static = o.get("static_batch")
    if static is not None and (isinstance(static, bool) or not isinstance(static, int) or static < 1):
        raise BackendUnavailable(f"static_batch must be a positive int, got {static!r}")
    return props


def fix_batch(model: Any, batch: int) -> Any | None:
    """A copy of ``model`` with axis 0 of every input whose batch is dynamic set to ``batch``
    (other dynamic axes stay dynamic); None when no input has a dynamic batch axis."""
    ov = _ov()
    shapes = {}
    for port in model.inputs:
        shape = port.get_partial_shape()
        if shape.rank.is_static and shape.rank.get_length() >= 1 and shape[0].is_dynamic:
            shapes[port.get_any_name()] = ov.PartialShape([ov.Dimension(batch)] + list(shape)[1:])
    if not shapes:
        return None
    fixed = model.clone()
    fixed.reshape(shapes)
    return fixed


class OpenVinoSession:
    """A compiled OpenVINO model with a pool of infer requests (one per concurrent caller), and
    optionally a static-batch copy with a pool of its own (see ``static_batch``)."""

    def __init__(self, compiled: Any, num_requests: int, static: Any = None, static_batch: int | None = None,
                 note: str | None = None) -> None:
        self._compiled = compiled
        self.input_names = [p.get_any_name() for p in compiled.inputs]
        self.output_names = [p.get_any_name() for p in compiled.outputs]
        self.num_requests = max(1, num_requests)
        self._pool = self._make_pool(compiled)
        self._static = static
        self.static_batch = static_batch if static is not None else None
        self._static_pool = self._make_pool(static) if static is not None else None
        self.note = note       # why a static copy was asked for but not made

    def _make_pool(self, compiled: Any) -> "queue.SimpleQueue[Any]":
        pool: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for _ in range(self.num_requests):
            pool.put(compiled.create_infer_request())
        return pool

    def _fits_static(self, feeds: Mapping[str, np.ndarray]) -> bool:
        return self._static is not None and all(
            getattr(v, "ndim", 0) >= 1 and v.shape[0] == self.static_batch for v in feeds.values())

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        pool = self._static_pool if self._fits_static(feeds) else self._pool
        assert pool is not None
        request = pool.get()
        try:
            # share_inputs: the call is synchronous, so OpenVINO may read the caller's arrays in place
            request.infer(dict(feeds), share_inputs=True, share_outputs=False)
            return self._outputs(request)
        except RuntimeError as exc:
            raise ModelError(f"openvino could not run the model: {exc}") from exc
        finally:
            pool.put(request)

    def _outputs(self, request: Any) -> list[np.ndarray]:
        # copies: the next call on this request overwrites its output tensors
        return [np.array(request.get_output_tensor(i).data, copy=True) for i in range(len(self.output_names))]


class OpenVinoBackend:
    name = "openvino"

    def availability(self) -> str | None:
        try:
            _ov()
        except BackendUnavailable as exc:
            return str(exc)
        return None

    def devices(self) -> list[str]:
        available = _ov().Core().available_devices
        return [dev for dev, ov_name in _DEVICES.items() if ov_name in available]

    def versions(self) -> dict[str, str]:
        return {"openvino": str(_ov().__version__)}

    def notes(self) -> list[str]:
        return ["cpu only: OpenVINO's GPU plugin targets Intel GPUs, not CUDA"]

    def capabilities(self, device: str = "cpu") -> Capabilities:
        """From the plugin's ``OPTIMIZATION_CAPABILITIES``: BF16 on CPUs with AVX-512 BF16 or AMX, FP16 on
        AMX-FP16 (and ARM) CPUs, INT8 (QDQ graphs run on integer kernels) where listed. Where a reduced
        float is absent the plugin would emulate it, slower than FP32. OpenVINO compiles the whole graph
        itself, so there is no per-op kernel registry to report."""
        caps = {str(c).upper() for c in _ov().Core().get_property(_DEVICES.get(device, "CPU"),
                                                                   "OPTIMIZATION_CAPABILITIES")}
        native = {name for name, cap in (("fp32", "FP32"), ("bf16", "BF16"), ("fp16", "FP16"), ("int8", "INT8"))
                  if cap in caps}
        return Capabilities(precisions=frozenset(native), qdq_int8="int8" in native)

    def create_session(self, model_bytes: bytes, config: SessionConfig) -> BackendSession:
        ov = _ov()
        device = _DEVICES.get(config.device)
        if device is None:
            raise BackendUnavailable(f"the openvino backend runs on {list(_DEVICES)}, not {config.device!r} "
                                     "(use the onnxruntime or torch backend for CUDA)")
        props = compile_properties(config)
        core = ov.Core()
        try:
            model = core.read_model(model_bytes, b"")
            compiled = core.compile_model(model, device, props)
        except RuntimeError as exc:
            detail = " ".join(str(exc).split())[:400]
            raise ModelError(f"openvino could not load the model: {detail}") from exc
        static, note = None, None
        static_batch = config.options.get("static_batch")
        if static_batch is not None:
            try:
                fixed = fix_batch(model, static_batch)
                if fixed is None:
                    note = "static_batch: no input has a dynamic batch axis; the model is static already"
                else:
                    static = core.compile_model(fixed, device, props)
            except RuntimeError as exc:     # e.g. a Reshape that hard-codes the batch: keep the dynamic model
                note = f"static_batch={static_batch} not applied: {' '.join(str(exc).split())[:200]}"
        requests = config.options.get("num_requests")
        if requests is None:
            requests = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        return OpenVinoSession(compiled, int(requests), static, static_batch, note)


# -- per-layer profile (``tensorforge profile``; plain data out, see backends/profiling.py) ---------------
def profile_layers(model_bytes: bytes, config: SessionConfig, feeds: Mapping[str, np.ndarray], runs: int,
                   warmup: int) -> RawProfile:
    """Per-operation times from OpenVINO's performance counters (compiled with ``PERF_COUNT``).

    The model is compiled with the session's properties plus ``PERF_COUNT`` — the static-batch copy
    when ``static_batch`` equals the feeds' batch, as a session would run it — and one infer request
    runs ``warmup + runs`` times, each call wall-timed. ``profiling_info`` gives every runtime node's
    ``status``, ``node_type``, ``exec_type`` and ``real_time`` — the running mean of all its runs since
    compilation, in whole µs (the CPU plugin keeps no per-run times), so the counters are read after
    the warm-up and at the end, and the difference of the totals gives the profiled runs' mean. A node's
    precision is the suffix of its ``exec_type`` (``jit_avx2_I8`` → int8, ``brgconv_avx512_bf16`` →
    bf16), else the runtime model's ``runtimePrecision``. The runtime model's ``originalLayersNames``
    lists the model operations fused into a node; the ONNX frontend names those after the ONNX node
    (``stem/WithoutBiases`` for the convolution of node ``stem``) or after its output tensor, which
    maps them back to the payload. Parameter and Result rows that never run are left out.
    """
    import time

    import onnx

    from .profiling import GraphIndex, RawLayerTime, precision_name, resolve_prefixed

    ov = _ov()
    device = _DEVICES.get(config.device)
    if device is None:
        raise BackendUnavailable(f"the openvino backend runs on {list(_DEVICES)}, not {config.device!r}; "
                                 "profile on the cpu or with the onnxruntime backend")
    props = {**compile_properties(config), "PERF_COUNT": True}
    core = ov.Core()
    notes: list[str] = []
    try:
        model = core.read_model(model_bytes, b"")
        compiled = None
        static_batch = config.options.get("static_batch")
        if static_batch is not None and {v.shape[0] for v in feeds.values() if v.ndim} == {static_batch}:
            try:
                fixed = fix_batch(model, static_batch)
                if fixed is not None:
                    compiled = core.compile_model(fixed, device, props)
                    notes.append(f"profiled the static-batch copy (static_batch={static_batch}) a session runs "
                                 "at this batch")
            except RuntimeError:
                compiled = None          # as a session does: keep the dynamic model
        if compiled is None:
            compiled = core.compile_model(model, device, props)
    except RuntimeError as exc:
        raise ModelError(f"openvino could not load the model: {' '.join(str(exc).split())[:400]}") from exc

    fused: dict[str, tuple[list[str], str]] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        names = info["originalLayersNames"].astype(str) if "originalLayersNames" in info else ""
        runtime_precision = info["runtimePrecision"].astype(str) if "runtimePrecision" in info else ""
        fused[op.get_friendly_name()] = ([n for n in names.split(",") if n], runtime_precision)
    request = compiled.create_infer_request()
    executed = ov.ProfilingInfo.Status.EXECUTED

    def counters() -> dict[str, tuple[str, str, bool, float]]:
        """node name → (type, exec type, executed, running mean in µs); a name listed twice is summed."""
        got: dict[str, tuple[str, str, bool, float]] = {}
        for info in request.profiling_info:
            ran = info.status == executed
            _, exec_type, was, mean_us = got.get(info.node_name, ("", "", False, 0.0))
            got[info.node_name] = (info.node_type, info.exec_type if ran or not exec_type else exec_type,
                                   was or ran, mean_us + (info.real_time.total_seconds() * 1e6 if ran else 0.0))
        return got

    wall_ms: list[float] = []
    before: dict[str, tuple[str, str, bool, float]] = {}
    try:
        for i in range(warmup + runs):
            if i == warmup and warmup:
                before = counters()
            start = time.perf_counter_ns()
            request.infer(dict(feeds), share_inputs=True, share_outputs=True)
            wall_ms.append((time.perf_counter_ns() - start) / 1e6)
        after = counters()
    except RuntimeError as exc:
        raise ModelError(f"openvino could not run the model: {exc}") from exc
    notes.append("OpenVINO's counters keep a running mean per node (whole µs) since compilation, not each run's "
                 f"time: a layer's time is the mean of the {runs} profiled runs (the warm-up subtracted) and the "
                 "run time the mean wall time, to match")

    payload = GraphIndex(onnx.load_from_string(model_bytes))
    layers = []
    for name, (node_type, exec_type, ran, mean_us) in after.items():
        if node_type in ("Parameter", "Result") and not ran:
            continue
        total_us = mean_us * (warmup + runs) - before.get(name, ("", "", False, 0.0))[3] * warmup
        originals, runtime_precision = fused.get(name, ([], ""))
        nodes = [resolve_prefixed(n, payload) for n in originals or [name]]
        precision = precision_name(exec_type.rsplit("_", 1)[-1])
        if precision == "unknown":
            precision = precision_name(runtime_precision)
        layers.append(RawLayerTime(name, node_type, exec_type, precision, (max(total_us, 0.0) / runs / 1e3,),
                                   payload.sort(n for n in nodes if n is not None), ran))
    return RawProfile("openvino", tuple(layers), tuple(wall_ms[warmup:]), tuple(notes), statistic="mean")
