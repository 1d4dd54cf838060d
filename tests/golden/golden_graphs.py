"""What the default pipeline makes of each zoo network: the "process replay" record.

``python tests/golden/golden_graphs.py`` rewrites ``zoo_graphs.json``; do it only when a
change to the passes is meant to change optimized graphs, and say so in the commit.
"""

from __future__ import annotations

import json
from pathlib import Path

GOLDEN = Path(__file__).with_name("zoo_graphs.json")
MODELS = ("tiny_cnn", "tiny_mobilenet", "tiny_googlenet", "tiny_mlp", "mobilenet_v2", "resnet50", "googlenet")


def record(name: str) -> dict[str, object]:
    from tensorforge.graph import analysis
    from tensorforge.graph.io import normalize
    from tensorforge.graph.pipelines import run_pipeline
    from tensorforge.models import zoo

    model, _ = normalize(zoo.build(name))
    optimized, reports = run_pipeline(model, "default")
    return {
        "ops": analysis.op_histogram(optimized),
        "params": analysis.count_params(optimized),
        "macs_per_sample": analysis.count_macs(optimized, batch=1),
        "changes": {r.name: r.changes for r in reports if r.modified},
    }


if __name__ == "__main__":
    GOLDEN.write_text(json.dumps({m: record(m) for m in MODELS}, indent=2, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")
