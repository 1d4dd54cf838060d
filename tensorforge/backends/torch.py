"""PyTorch backend: eager or ``torch.compile`` (Inductor), on CPU, and on CUDA with CUDA graphs.

The only modules that import ``torch`` are this one and ``torch_convert`` (ONNX → module).
Two ways in:

* ONNX bytes, through the protocol (``create_session``): converted by
  :mod:`.torch_convert`, so an engine built by ``tensorforge build`` runs here too;
* a ``torch.nn.Module`` from the API: :func:`module_session` runs it directly, and
  :func:`module_to_onnx` exports it so ``tensorforge.build`` can optimize and verify it
  (``tensorforge.build((module, example_input), "m.tfe")`` does both).

Options: ``mode`` ``"eager"`` (default) | ``"compile"``; ``compile_mode`` ``"default"`` |
``"reduce-overhead"`` | ``"max-autotune-no-cudagraphs"``; ``channels_last`` (bool);
``cuda_graphs`` (bool, CUDA only: ``torch.compile(mode="reduce-overhead")``); ``freezing`` (bool,
compile only: Inductor folds the weights into the graph and prepacks them for oneDNN — much
faster convolutions on CPU, the default compile mode only); ``dtype`` ``"float32"`` (default) |
``"float16"`` | ``"bfloat16"``: weights and compute in that type, inputs cast on the way in and
outputs cast back to the model's own type, so callers see the FP32 interface; ``tf32`` (bool,
CUDA only, default off): let FP32 convolutions and matmuls use TF32 tensor cores — faster, but
~1e-3 relative error, which FP32 verification rejects, so it is off unless asked for (the
setting is process-wide in PyTorch).
``threads`` calls ``torch.set_num_threads``, which is process-wide in PyTorch: the last
session created sets it for all. Runs under ``torch.inference_mode()``.
"""

from __future__ import annotations

import io
import shutil
import threading
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import BackendUnavailable, ModelError
from .base import BackendSession, Capabilities, SessionConfig

KNOWN_OPTIONS = ("mode", "compile_mode", "channels_last", "cuda_graphs", "freezing", "dtype", "tf32")
_DTYPES = ("float32", "float16", "bfloat16")
_COMPILE_MODES = ("default", "reduce-overhead", "max-autotune-no-cudagraphs")


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise BackendUnavailable("torch is not installed: pip install 'tensorforge[torch]'") from exc
    return torch


def compiler_missing() -> str | None:
    """Why ``torch.compile`` cannot build kernels here (Inductor needs a C++ compiler on CPU), or None."""
    if not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
        return "torch.compile needs a C++ compiler for its CPU kernels and none was found (install g++)"
    return None


class TorchSession:
    """A module ready to run; feeds become tensors without copies where NumPy allows."""

    def __init__(self, module: Any, input_names: Sequence[str], output_names: Sequence[str], device: str,
                 channels_last: bool, dtype: str = "float32") -> None:
        self._module = module
        self._dtype = None if dtype == "float32" else getattr(_torch(), dtype)
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        self._device = device
        self._channels_last = channels_last
        self._lock = threading.Lock()        # compiled graphs and CUDA graphs are not re-entrant

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        torch = _torch()
        tensors = []
        for name in self.input_names:
            array = feeds[name]
            tensor = torch.from_numpy(array if array.flags.writeable else array.copy())
            if self._device != "cpu":
                tensor = tensor.to(self._device, non_blocking=True)
            if self._dtype is not None and tensor.is_floating_point():
                tensor = tensor.to(self._dtype)
            if self._channels_last and tensor.dim() == 4:
                tensor = tensor.contiguous(memory_format=torch.channels_last)
            tensors.append(tensor)
        with self._lock, torch.inference_mode():
            try:
                outputs = self._module(*tensors)
            except (RuntimeError, ValueError, TypeError) as exc:
                raise ModelError(f"torch could not run the model: {exc}") from exc
            if not isinstance(outputs, (tuple, list)):
                outputs = (outputs,)
            return [_to_numpy(o, self._dtype is not None) for o in outputs]


def _to_numpy(tensor: Any, widen: bool) -> np.ndarray:
    tensor = tensor.detach()
    if widen and tensor.is_floating_point():
        tensor = tensor.float()
    return tensor.to("cpu").contiguous().numpy().copy()  # type: ignore[no-any-return]


def _prepare(module: Any, config: SessionConfig) -> Any:
    torch = _torch()
    unknown = sorted(set(config.options) - set(KNOWN_OPTIONS))
    if unknown:
        raise BackendUnavailable(f"torch backend has no option(s) {unknown}; known options: {list(KNOWN_OPTIONS)}")
    o = config.options
    if config.device == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable("device 'cuda' needs a CUDA build of torch and a GPU; this torch "
                                 f"({torch.__version__}) sees none")
    if config.device not in ("cpu", "cuda"):
        raise BackendUnavailable(f"unknown device {config.device!r}; use cpu or cuda")
    if config.threads is not None:
        if config.threads < 1:
            raise ValueError(f"threads must be >= 1, got {config.threads}")
        torch.set_num_threads(config.threads)
    dtype = o.get("dtype", "float32")
    if dtype not in _DTYPES:
        raise BackendUnavailable(f"dtype must be one of {list(_DTYPES)}, got {dtype!r}")
    if o.get("tf32") and config.device != "cuda":
        raise BackendUnavailable("tf32 needs device 'cuda'")
    if config.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = bool(o.get("tf32", False))
        torch.backends.cudnn.allow_tf32 = bool(o.get("tf32", False))
    module = module.to(config.device, dtype=getattr(torch, dtype)).eval()
    if o.get("channels_last"):
        module = module.to(memory_format=torch.channels_last)
    mode = o.get("mode", "eager")
    if mode not in ("eager", "compile"):
        raise BackendUnavailable(f"mode must be 'eager' or 'compile', got {mode!r}")
    if o.get("cuda_graphs") and config.device != "cuda":
        raise BackendUnavailable("cuda_graphs needs device 'cuda'")
    if mode == "compile" or o.get("cuda_graphs"):
        reason = compiler_missing() if config.device == "cpu" else None
        if reason:
            raise BackendUnavailable(reason)
        compile_mode = "reduce-overhead" if o.get("cuda_graphs") else o.get("compile_mode", "default")
        if compile_mode not in _COMPILE_MODES:
            raise BackendUnavailable(f"compile_mode must be one of {list(_COMPILE_MODES)}, got {compile_mode!r}")
        if o.get("freezing"):
            if compile_mode != "default":
                raise BackendUnavailable("freezing works with compile_mode 'default' only")
            module = torch.compile(module, options={"freezing": True})
        else:
            module = torch.compile(module, mode=None if compile_mode == "default" else compile_mode)
    return module


class TorchBackend:
    name = "torch"

    def availability(self) -> str | None:
        try:
            _torch()
        except BackendUnavailable as exc:
            return str(exc)
        return None

    def devices(self) -> list[str]:
        return ["cpu"] + (["cuda"] if _torch().cuda.is_available() else [])

    def versions(self) -> dict[str, str]:
        return {"torch": str(_torch().__version__)}

    def notes(self) -> list[str]:
        torch = _torch()
        notes = ["onnx: converted by tensorforge's own converter (onnx2torch needs a torchvision that cannot "
                 "load beside this CPU torch build)"]
        if not torch.cuda.is_available():
            notes.append(f"cuda: this torch ({torch.__version__}) sees no CUDA GPU")
        missing = compiler_missing()
        if missing:
            notes.append(f"mode=compile: {missing}")
        return notes

    def capabilities(self, device: str = "cpu") -> Capabilities:
        """FP32 everywhere; the ``dtype`` option's FP16/BF16 natively on CUDA (BF16 where the GPU has it)
        and BF16 on CPUs with AVX-512 BF16 or AMX. No QDQ INT8: the ONNX → torch converter takes float
        graphs, and its op table is the FP32 kernel list (an INT8 graph's Q/DQ ops are not in it)."""
        from ..core.host import isa_flags
        from .torch_convert import SUPPORTED

        torch = _torch()
        if device == "cuda":
            native = {"fp32", "fp16"} | ({"bf16"} if torch.cuda.is_available() and torch.cuda.is_bf16_supported()
                                         else set())
        else:
            native = {"fp32"} | ({"bf16"} if {"avx512_bf16", "amx_bf16"} & set(isa_flags()) else set())
        return Capabilities(precisions=frozenset(native), qdq_int8=False,
                            kernels={"fp32": frozenset(("", op) for op in SUPPORTED), "int8": frozenset()})

    def create_session(self, model_bytes: bytes, config: SessionConfig) -> BackendSession:
        from .torch_convert import convert

        module = convert(model_bytes)
        prepared = _prepare(module, config)
        return TorchSession(prepared, module.input_names, module.output_names, config.device,
                            bool(config.options.get("channels_last")), config.options.get("dtype", "float32"))


def module_session(module: Any, input_names: Sequence[str], output_names: Sequence[str],
                   config: SessionConfig = SessionConfig()) -> BackendSession:
    """A session on a ``torch.nn.Module`` itself (eager or compiled, per ``config.options``)."""
    prepared = _prepare(module, config)
    return TorchSession(prepared, input_names, output_names, config.device,
                        bool(config.options.get("channels_last")), config.options.get("dtype", "float32"))


def module_to_onnx(module: Any, example_inputs: Any, *, input_names: Sequence[str] | None = None,
                   output_names: Sequence[str] | None = None, opset: int = 18, dynamic_batch: bool = True) -> bytes:
    """Export a ``torch.nn.Module`` to ONNX bytes with the ``torch.export``-based exporter (the
    TorchScript one as a fallback), the batch dimension dynamic (named ``N``) unless asked not."""
    torch = _torch()
    examples = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    examples = tuple(torch.as_tensor(x) for x in examples)
    if dynamic_batch:      # torch.export specializes a dimension of size 1: trace at batch 2
        examples = tuple(torch.cat([x, x]) if x.dim() and x.shape[0] == 1 else x for x in examples)
    ins = list(input_names or ([f"input{i}" for i in range(len(examples))] if len(examples) > 1 else ["input"]))
    module = module.eval()
    with torch.inference_mode():
        probe = module(*examples)
    n_out = len(probe) if isinstance(probe, (tuple, list)) else 1
    outs = list(output_names or ([f"output{i}" for i in range(n_out)] if n_out > 1 else ["output"]))
    try:
        dims = tuple({0: torch.export.Dim("N")} for _ in examples) if dynamic_batch else None
        program = torch.onnx.export(module, examples, input_names=ins, output_names=outs, opset_version=opset,
                                    dynamic_shapes=dims, dynamo=True, verbose=False)
        return bytes(program.model_proto.SerializeToString())
    except Exception as first:       # the exporters raise many types; fall back, then keep it behind ours
        buffer = io.BytesIO()
        axes = {name: {0: "N"} for name in ins + outs} if dynamic_batch else None
        try:
            torch.onnx.export(module, examples, buffer, input_names=ins, output_names=outs,
                              opset_version=min(opset, 17), dynamic_axes=axes, dynamo=False)
        except Exception as exc:
            raise ModelError(f"torch.onnx.export could not export the module: {first}; the TorchScript "
                             f"exporter said: {exc}") from exc
        return buffer.getvalue()
