"""Train the shipped digit classifier reproducibly and export it to ONNX.

    python scripts/train_classifier.py                     # mnist5k -> tensorforge/models/trained/mnist_cnn.onnx
    python scripts/train_classifier.py --dataset digits --name digits_cnn

PyTorch (CPU) is used here, for training only; the shipped artifact is the ONNX file,
and nothing at run time needs torch. Seeded, single-process, deterministic algorithms:
the same torch version on the same machine gives the same weights. Takes well under a
minute on 2 cores. Writes ``<name>.onnx`` and ``<name>.json`` (dataset, splits, recipe,
accuracy measured with ONNX Runtime on the held-out test split, sha256 of the file).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np

OUT_DIR = Path(__file__).resolve().parents[1] / "tensorforge" / "models" / "trained"


def make_net(torch, in_hw: int, classes: int):  # type: ignore[no-untyped-def]
    nn = torch.nn
    pool = in_hw >= 16      # 28x28 gets two 2x2 max pools, 8x8 none

    def block(cin: int, cout: int) -> list:
        layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
        return layers + ([nn.MaxPool2d(2)] if pool else [])

    return nn.Sequential(*block(1, 16), *block(16, 32), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, classes))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="mnist5k")
    ap.add_argument("--name", default="mnist_cnn")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-dir", type=Path, default=OUT_DIR)
    args = ap.parse_args()

    import torch

    from tensorforge.bench.accuracy import classifier_accuracy
    from tensorforge.models import datasets

    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(2)
    train = datasets.load(args.dataset, "train")
    test = datasets.load(args.dataset, "test")
    meta = datasets.info(args.dataset)
    net = make_net(torch, meta.image_shape[1], meta.num_classes)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=args.epochs * ((len(train) + 63) // 64))
    x_all, y_all = torch.from_numpy(train.images), torch.from_numpy(train.labels)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    for epoch in range(args.epochs):
        net.train()
        order = torch.randperm(len(train), generator=gen)
        total = 0.0
        for i in range(0, len(train), 64):
            idx = order[i:i + 64]
            x = x_all[idx]
            # light augmentation: shift by up to 2 pixels (deterministic from `gen`)
            dx, dy = (int(v) for v in torch.randint(-2, 3, (2,), generator=gen))
            x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
            loss = torch.nn.functional.cross_entropy(net(x), y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
        print(f"epoch {epoch + 1:2d}/{args.epochs}: train loss {total / len(train):.4f}", flush=True)
    train_s = time.perf_counter() - t0

    net.eval()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out_dir / f"{args.name}.onnx"
    example = torch.from_numpy(test.images[:2])
    torch.onnx.export(net, (example,), str(onnx_path), input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "N"}, "logits": {0: "N"}}, opset_version=17, dynamo=False)
    import onnx

    model = onnx.load(str(onnx_path))
    model.doc_string = (f"{args.name}: small CNN trained by scripts/train_classifier.py on {meta.description}; "
                        "input float32 [N, C, H, W] pixels in [0, 1]; output logits")
    onnx.save(model, str(onnx_path))
    acc = classifier_accuracy(onnx_path, test.images, test.labels, batch_size=256)
    with torch.no_grad():
        torch_top1 = float((net(torch.from_numpy(test.images)).argmax(1).numpy() == test.labels).mean()) * 100
    record = {
        "name": args.name, "file": onnx_path.name,
        "sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(), "bytes": onnx_path.stat().st_size,
        "dataset": args.dataset, "dataset_package": meta.package,
        "input": {"name": "image", "shape": ["N", *meta.image_shape], "dtype": "float32",
                  "preprocessing": "pixels scaled to [0, 1], no mean/std"},
        "output": {"name": "logits", "classes": meta.num_classes},
        "splits": {s: len(datasets.load(args.dataset, s)) for s in datasets.SPLITS},
        "accuracy_fp32": {"split": "test", "top1_pct": acc.top1, "top5_pct": acc.top5, "samples": acc.samples,
                          "measured_with": "onnxruntime CPU", "torch_top1_pct": torch_top1},
        "recipe": {"epochs": args.epochs, "batch_size": 64, "optimizer": "AdamW lr 3e-3 wd 1e-4, one-cycle",
                   "augmentation": "random shift up to 2 px per batch", "seed": args.seed,
                   "torch": torch.__version__, "train_seconds": round(train_s, 1),
                   "script": "scripts/train_classifier.py"},
    }
    (args.out_dir / f"{args.name}.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(record, indent=2))
    if not np.isclose(acc.top1, torch_top1, atol=0.2):
        raise SystemExit(f"ONNX Runtime ({acc.top1:.2f}%) and torch ({torch_top1:.2f}%) disagree on the export")


if __name__ == "__main__":
    main()
