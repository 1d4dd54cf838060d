"""What the tuner may try: :class:`Candidate` (a backend and its settings) and the default search space.

TensorRT picks among kernels ("tactics") by timing them; across kernel libraries the
tactics are whole backends and the settings that change how they schedule work:

* ONNX Runtime (always): its defaults first — the incumbent every other candidate must
  beat — then intra-op threads pinned to the physical or logical cores, spin-waiting off,
  the parallel executor (branchy graphs such as GoogLeNet's Inception blocks), the
  extended rather than full graph optimizations, and for throughput two streams;
* OpenVINO (when installed): its latency hint, with and without pinning threads to cores,
  and for throughput its throughput hint with two streams;
* PyTorch (when installed): eager, and ``torch.compile`` with weight freezing — the
  compile costs tens of seconds on a large model, so it comes last and is skipped when the
  budget left cannot hold it.

A missing backend or device is not an error: its candidates are listed as skipped with
the reason, as ``tensorforge backends`` would give it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..backends.base import SessionConfig
from ..backends.registry import get_backend
from ..core.streams import physical_cores
from ..errors import BackendUnavailable, InputError

OBJECTIVES = ("latency", "throughput")


@dataclass(frozen=True)
class Candidate:
    """One way to run the engine: backend, intra-op threads, backend options, concurrent streams.

    ``cost_s`` is a rough guess of the set-up time (compiling) the tuner checks against the
    budget left before it tries the candidate; 0 for the cheap ones. ``variant`` names the
    model payload it runs when the search holds several (the joint precision search:
    ``"int8 per-channel entropy"``); None is the one payload of a plain tuning run.
    """

    backend: str
    threads: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    streams: int = 1
    cost_s: float = field(default=0.0, compare=False)     # an estimate, not part of what the candidate is
    variant: str | None = None

    def with_variant(self, variant: str, **options: Any) -> "Candidate":
        """This candidate on another payload, with extra backend options (e.g. OpenVINO's
        ``inference_precision``)."""
        return Candidate(self.backend, self.threads, {**self.options, **options}, self.streams, self.cost_s, variant)

    @property
    def label(self) -> str:
        parts = [f"[{self.variant}]"] if self.variant else []
        parts.append(self.backend)
        if self.threads is not None:
            parts.append(f"threads={self.threads}")
        parts += [f"{k}={_text(v)}" for k, v in sorted(self.options.items())]
        if self.streams > 1:
            parts.append(f"streams={self.streams}")
        if len(parts) == (2 if self.variant else 1):
            parts.append("defaults")
        return " ".join(parts)

    def session_config(self, device: str) -> SessionConfig:
        return SessionConfig(device=device, threads=self.threads, options=dict(self.options))

    def to_dict(self) -> dict[str, Any]:
        d = {"backend": self.backend, "threads": self.threads, "options": dict(self.options),
             "streams": self.streams}
        if self.variant is not None:
            d["variant"] = self.variant
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Candidate":
        variant = data.get("variant")
        return cls(backend=str(data["backend"]), threads=data.get("threads"), options=dict(data.get("options", {})),
                   streams=int(data.get("streams", 1)), variant=None if variant is None else str(variant))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def cores() -> tuple[int, int]:
    """(physical, logical) cores of this host."""
    return physical_cores(), os.cpu_count() or 1


def default_space(objective: str, device: str = "cpu", *, backends: list[str] | None = None,
                  compile_budget: bool = True, batch: int | None = None
                  ) -> tuple[list[Candidate], list[tuple[Candidate, str]]]:
    """(candidates to try, in order — the first is the incumbent; candidates skipped, with why).

    ``backends`` limits the search to those names (default: onnxruntime, openvino, torch);
    ``batch``, the tuning batch, is the one OpenVINO's candidates compile a static copy for.
    """
    if objective not in OBJECTIVES:
        raise InputError(f"unknown tuning objective {objective!r}; use one of {', '.join(OBJECTIVES)}")
    wanted = backends or ["onnxruntime", "openvino", "torch"]
    groups: list[list[Candidate]] = []
    skipped: list[tuple[Candidate, str]] = []
    for name in wanted:
        group = backend_space(name, objective, device, batch=batch, compile_budget=compile_budget)
        reason = unusable(name, device)
        if reason:
            skipped += [(c, reason) for c in group]
        else:
            groups.append(group)
    # torch's CPU kernels usually trail ONNX Runtime's and OpenVINO's on these models (and an eager call on a
    # large model at a large batch takes seconds): on a CPU they are tried after the others
    late = [g for g in groups if device == "cpu" and g and g[0].backend == "torch"]
    ordered = _interleave([g for g in groups if g not in late]) + _interleave(late)
    tried = [c for c in ordered if c.cost_s < 10] + [c for c in ordered if c.cost_s >= 10]
    if not tried:
        raise InputError(f"no backend in {wanted} can run on device {device!r} here: "
                         + "; ".join(sorted({r for _, r in skipped})))
    return tried, skipped


def backend_space(name: str, objective: str, device: str = "cpu", *, batch: int | None = None,
                  compile_budget: bool = True) -> list[Candidate]:
    """One backend's candidates for ``objective``, its best bet first (a backend the space does
    not know gets its defaults only)."""
    physical, logical = cores()
    if name == "onnxruntime":
        return _ort(objective, device, physical, logical)
    if name == "openvino":
        return _openvino(objective, physical, batch)
    if name == "torch":
        return _torch(device, physical, compile_budget)
    return [Candidate(name)]


def pipeline_variants(model: Any, backends: list[str] | None = None) -> dict[str, tuple[str, ...]]:
    """Per backend, the graph pipelines the tuner may try on ``model`` (an ``onnx.ModelProto``), as
    candidate variants: a transformer gets every transformer pipeline the backend can run (onnxruntime:
    ``transformer-ort`` and ``transformer-portable``; the others: ``transformer-portable``), any other
    model ``default`` only."""
    from ..graph.transformer import looks_like_transformer, pipelines_for_backend

    wanted = backends or ["onnxruntime", "openvino", "torch"]
    if not looks_like_transformer(model):
        return {name: ("default",) for name in wanted}
    return {name: pipelines_for_backend(name) for name in wanted}


def _interleave(groups: list[list[Candidate]]) -> list[Candidate]:
    """Each backend's best bet first, then each one's second, and so on; costly compiles last.

    The budget may run out before the end of the list, so the likeliest winners of every
    backend come first: a budget spent on one backend's settings must not keep another
    backend, perhaps the fastest, from being tried at all."""
    cheap = [[c for c in g if c.cost_s < 10] for g in groups]
    order = [g[rank] for rank in range(max((len(g) for g in cheap), default=0)) for g in cheap if rank < len(g)]
    return order + [c for g in groups for c in g if c.cost_s >= 10]


def unusable(name: str, device: str) -> str | None:
    try:
        backend = get_backend(name)
    except BackendUnavailable as exc:
        return str(exc)
    if device not in backend.devices():
        return f"backend {name!r} has no device {device!r} here (it has {backend.devices()})"
    return None


def _ort(objective: str, device: str, physical: int, logical: int) -> list[Candidate]:
    out = [Candidate("onnxruntime")]
    if device != "cpu":
        return out
    if objective == "throughput" and physical >= 2:
        out.append(Candidate("onnxruntime", physical // 2, streams=2))
    out.append(Candidate("onnxruntime", physical, {"allow_spinning": False}))
    if logical != physical:
        out.append(Candidate("onnxruntime", logical))
    # these two rarely win on convolutional networks; they stay for models they suit (many branches)
    out.append(Candidate("onnxruntime", physical, {"execution_mode": "parallel", "inter_op_threads": 2}))
    out.append(Candidate("onnxruntime", physical, {"graph_optimization_level": "extended"}))
    return out


def _openvino(objective: str, physical: int, batch: int | None) -> list[Candidate]:
    # with the tuning batch known, each also gets a static-batch copy of the model (backends/openvino.py)
    static: dict[str, Any] = {"static_batch": batch} if batch else {}
    out = [Candidate("openvino", options={"performance_hint": "latency", **static}),
           Candidate("openvino", options={"performance_hint": "latency", "enable_cpu_pinning": True, **static})]
    if objective == "latency":
        return out
    if physical >= 2:
        out.append(Candidate("openvino", options={"performance_hint": "throughput", "num_streams": 2,
                                                  "num_requests": 2, **static}, streams=2))
    return out


def _torch(device: str, physical: int, compile_budget: bool) -> list[Candidate]:
    out = [Candidate("torch", physical if device == "cpu" else None, {"mode": "eager"}, cost_s=2.0)]
    if compile_budget:
        options: dict[str, Any] = ({"mode": "compile", "freezing": True} if device == "cpu"
                                   else {"mode": "compile", "cuda_graphs": True})
        out.append(Candidate("torch", physical if device == "cpu" else None, options, cost_s=60.0))
    return out
