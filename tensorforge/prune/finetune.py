"""A short fine-tune of a pruned classifier on its shipped training data (the ``torch`` extra).

Channel pruning removes filters; a few hundred optimizer steps on the training data recover most
of the accuracy they carried. This module does exactly that for the trained models shipped in
``tensorforge/models/trained`` (their JSON names the dataset, whose ``train`` split is disjoint
from the ``test`` split the accuracy is measured on):

1. the pruned ONNX graph becomes a torch module with :mod:`tensorforge.backends.torch_convert`
   (the project's own converter; onnx2torch needs torchvision, which cannot load here); every
   float initializer becomes a trainable tensor;
2. ``steps`` Adam steps (lr 3e-3, batch 64, seeded, cross-entropy on the logits) over the train split;
3. the trained tensors are written back into the same ONNX graph (same names and shapes), so
   the result is the pruned graph with new weights, checked by ``onnx.checker``.

Top-1 on the test split is measured with ONNX Runtime before and after (the accuracy of the
ONNX model, not the torch module's). PyTorch is imported only here and only when asked.

Example::

    path, dataset = shipped_training_data("mnist_cnn", flag="finetune_steps")
    result = finetune(prune_model(model, "channels:50%").model, dataset, steps=200)
    result.before_top1_pct, result.after_top1_pct
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import ConfigError
from ..models import datasets
from ..models.accuracy_data import EvalData
from ..precision.evaluate import run_model
from ..precision.metrics import topk_accuracy

__all__ = ["FinetuneResult", "finetune", "shipped_training_data", "test_top1", "train_steps"]


@dataclass(frozen=True)
class FinetuneResult:
    """The fine-tuned ``model`` and what it took; accuracies are top-1 % on ``dataset``'s test split."""

    model: onnx.ModelProto
    dataset: str
    steps: int
    batch_size: int
    lr: float
    before_top1_pct: float
    after_top1_pct: float
    final_loss: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("model")
        d["split"] = {"train_on": "train", "measured_on": "test"}
        return d


def shipped_training_data(source: str, *, flag: str = "finetune_steps") -> tuple[str, str]:
    """(ONNX path, dataset) of a shipped trained model (``mnist_cnn``, ``trained:mnist_cnn`` or its file
    path); ConfigError naming ``flag`` for any other model (no training data ships with it)."""
    text = str(source)
    name = text.split(":", 1)[1] if text.lower().startswith("trained:") else text
    shipped = {n.lower(): n for n in datasets.trained_models()}
    key = name.lower()
    if key not in shipped and os.path.isfile(name):
        key = next((k for k, n in shipped.items()
                    if os.path.samefile(name, datasets.trained_model(n))), key)
    if key not in shipped:
        raise ConfigError(f"{flag} fine-tunes on the training data shipped with a trained model, and {source!r} "
                          f"has none; use one of the shipped trained models ({', '.join(shipped.values()) or 'none'}) "
                          f"or drop {flag}")
    path = datasets.trained_model(shipped[key])
    with open(path[:-5] + ".json", encoding="utf-8") as fh:
        return path, str(json.load(fh)["dataset"])


def _import_torch(flag: str) -> Any:
    try:
        import torch
    except ImportError:
        raise ConfigError(f"{flag} needs PyTorch (the torch extra): pip install 'tensorforge[torch]', or drop "
                          f"{flag}") from None
    return torch


def test_top1(model: onnx.ModelProto, dataset: str, *, threads: int | None = None) -> float:
    """Top-1 % of ``model`` (ONNX Runtime) on ``dataset``'s test split."""
    test = datasets.load(dataset, "test")
    name = model.graph.input[0].name
    data = EvalData([{name: x} for x, _ in test.batches(256)], test.labels, name=f"{dataset}:test")
    return topk_accuracy(run_model(model.SerializeToString(), data, threads=threads), test.labels, 1)


def train_steps(forward: Any, params: list[Any], dataset: str, steps: int, *, lr: float = 3e-3,
                batch_size: int = 64, seed: int = 0) -> float:
    """``steps`` Adam steps of cross-entropy on ``forward(x)`` (a torch module; a tuple output's first
    element is the logits) over ``dataset``'s train split, reshuffled (seeded) each pass; the last loss.
    The one recipe, shared with the benchmarks' torch peers (benchmarks/prune_accuracy.py)."""
    torch = _import_torch("fine-tuning")
    train = datasets.load(dataset, "train")
    opt = torch.optim.Adam(params, lr=lr)
    x_all, y_all = torch.from_numpy(train.images), torch.from_numpy(train.labels)
    gen = torch.Generator().manual_seed(seed)
    order, at, loss_value = torch.randperm(len(train), generator=gen), 0, float("nan")
    for _ in range(steps):
        if at + batch_size > len(order):
            order, at = torch.randperm(len(train), generator=gen), 0
        idx = order[at:at + batch_size]
        at += batch_size
        out = forward(x_all[idx])
        loss = torch.nn.functional.cross_entropy(out[0] if isinstance(out, tuple) else out, y_all[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss_value = float(loss.detach())
    return loss_value


def finetune(model: onnx.ModelProto, dataset: str, steps: int, *, lr: float = 3e-3, batch_size: int = 64,
             seed: int = 0, threads: int | None = None, flag: str = "finetune_steps") -> FinetuneResult:
    """``model`` (a classifier, e.g. a pruned one) trained ``steps`` Adam steps on ``dataset``'s train split."""
    if not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"{flag} must be a positive number of optimizer steps (e.g. 200), got {steps!r}")
    if lr <= 0 or batch_size < 1:
        raise ConfigError(f"fine-tuning needs lr > 0 and batch_size >= 1, got lr={lr}, batch_size={batch_size}")
    torch = _import_torch(flag)
    from ..backends.torch_convert import convert

    t0 = time.perf_counter()
    before = test_top1(model, dataset, threads=threads)
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)
    module = convert(model.SerializeToString())
    slots = dict(module._slots)                     # initializer name -> buffer attribute
    names = {t.name for t in model.graph.initializer}
    params = {n: getattr(module, s) for n, s in slots.items() if n in names and getattr(module, s).is_floating_point()}
    for tensor in params.values():
        tensor.requires_grad_(True)
    loss_value = train_steps(module, list(params.values()), dataset, steps, lr=lr, batch_size=batch_size, seed=seed)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for init in out.graph.initializer:
        if init.name in params:
            value = params[init.name].detach().numpy().astype(numpy_helper.to_array(init).dtype)
            init.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(value), init.name))
    onnx.checker.check_model(out)
    after = test_top1(out, dataset, threads=threads)
    return FinetuneResult(out, dataset, steps, batch_size, lr, before, after, loss_value, time.perf_counter() - t0)
