"""Served sentences/s at p99 <= 130 ms: length-bucketed batching vs padding every request to the max (issue 12).

A BERT engine with a shape profile (default ``input_ids:1x8,8x128,8x256``) is loaded behind the
server's own batcher through the load generator's in-process target (``BatcherTarget.from_engine``,
which groups requests the way the server does), and find-max searches the highest Poisson rate whose
p99 latency stays within the bound (MLPerf server scenario, BERT's 130 ms), under a skewed length
distribution (default ``lognormal:48,0.7``: median 48 tokens, a long tail, clipped to the profile's
8..256 — most sentences short, a few paragraphs long; ``--lengths sentences`` uses the token lengths
of the real sentences of models/sentences.py instead). Two contenders:

* ``bucketed`` — each request sent at its own length; the batcher groups requests by length bucket
  (SequenceGrouping, default cap: at most half of a batch's positions are padding) and pads on merge;
* ``pad_to_max`` — each request padded by the client to the profile's max length (attention mask 0
  past its own length), as a user without server padding must send it; RowGrouping (all one shape).

Each contender runs in a process of its own, one find-max per round, the order alternating between
rounds (each later round starts its search at
the previous round's answer). Reported per contender: the median over rounds
of the highest valid rate (sentences/s), every round's probes, the padding share of the positions the
model computed, noise ((max - min) / 2 / median of the rounds); then the ratio bucketed / pad_to_max
(issue 12's target: >= 1.5), and the CPU's ISA flags. Prints JSON (``--out`` also writes it).

    python benchmarks/serve_lengths.py                         (bert_base: heavy; needs a many-core machine)
    python benchmarks/serve_lengths.py --model bert_tiny       (short mode: profile 1x8,8x64,8x128; minutes)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _contenders import _summarize, call_in_process, log, paired_ratio

SHAPES = {"bert_base": "input_ids:1x8,8x128,8x256", "bert_tiny": "input_ids:1x8,8x64,8x128"}
CONTENDERS = ("bucketed", "pad_to_max")


def contend(kind: str, engine_path: str, o: dict[str, Any], start_qps: float | None) -> dict[str, Any]:
    """One find-max of one contender, in a process of its own."""
    from tensorforge.engine.runtime import Engine
    from tensorforge.loadgen.findmax import find_max_qps
    from tensorforge.loadgen.lengths import length_samples
    from tensorforge.loadgen.scenarios import ScenarioSettings
    from tensorforge.loadgen.targets import BatcherTarget
    from tensorforge.serve.batching import BatcherConfig
    from tensorforge.serve.merge import RowGrouping

    engine = Engine.load(engine_path)
    samples = length_samples(o["lengths"], engine.inputs, engine.manifest.profiles, seed=o["seed"],
                             pad_to="max" if kind == "pad_to_max" else None)
    config = BatcherConfig(max_batch_size=o["max_batch_size"], max_queue_delay_ms=o["max_queue_delay_ms"],
                           instances=o["instances"])
    target = BatcherTarget.from_engine(engine, config, threads=o["threads"], inputs=samples,
                                       grouping=RowGrouping() if kind == "pad_to_max" else None)
    settings = ScenarioSettings(scenario="server", target_qps=1.0, latency_bound_ms=o["bound_ms"],
                                percentile=o["percentile"] / 100.0, min_duration_s=o["probe_s"], warmup_s=0.5,
                                seed=o["seed"])
    t0 = time.perf_counter()
    try:
        target.prepare([1])
        found = find_max_qps(target, settings, tolerance=o["tolerance"], max_probes=o["max_probes"],
                             start_qps=start_qps, progress=lambda m: log(f"  {kind}: {m}"))
        padding = target.padding_stats()
        stats = target.batcher_stats()
        described = target.describe()
    finally:
        target.close()
    if padding is None:            # client padding: every request costs pad_to positions, its own length of them real
        padding = {"waste_ratio": samples.padding_waste(), "by": "client padding to the profile max"}
    else:
        padding = {**padding, "by": "server length buckets (SequenceGrouping)"}
    return {"max_valid_qps": found.max_valid_qps, "lowest_invalid_qps": found.lowest_invalid_qps,
            "converged": found.converged, "capacity_estimate_qps": found.capacity_estimate_qps,
            "probes": [p.to_dict() for p in found.probes], "padding": padding,
            "batch_sizes": {rows: v["count"] for rows, v in stats["batch_sizes"].items()},
            "grouping": described.get("grouping"), "batcher": described.get("batcher"),
            "lengths": samples.describe(), "wall_s": round(time.perf_counter() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="bert_base", choices=sorted(SHAPES),
                    help="zoo BERT to serve, random weights (default bert_base; bert_tiny for a short run)")
    ap.add_argument("--shapes", default=None, help="the engine's shape profile (default: per model, see SHAPES)")
    ap.add_argument("--lengths", default="lognormal:48,0.7",
                    help="sequence-length distribution: fixed:N, uniform:A-B, lognormal:MEDIAN,SIGMA or sentences")
    ap.add_argument("--bound-ms", type=float, default=130.0, help="latency bound in ms (default 130, MLPerf BERT)")
    ap.add_argument("--percentile", type=float, default=99.0, help="latency percentile held to the bound (99)")
    ap.add_argument("--rounds", type=int, default=3, help="find-max runs per contender, interleaved (default 3)")
    ap.add_argument("--probe-s", type=float, default=3.0, help="seconds per probe of the search (default 3)")
    ap.add_argument("--max-probes", type=int, default=6, help="probes per search (default 6)")
    ap.add_argument("--tolerance", type=float, default=0.1, help="search stops when hi - lo <= this x lo (0.1)")
    ap.add_argument("--max-batch-size", type=int, default=8)
    ap.add_argument("--max-queue-delay-ms", type=float, default=10.0)
    ap.add_argument("--instances", type=int, default=1, help="engine instances behind the batcher (default 1)")
    ap.add_argument("--threads", type=int, default=None, help="intra-op threads per instance (default: cores)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args()

    from tensorforge.core.host import cpu_model, isa_flags

    shapes = args.shapes or SHAPES[args.model]
    opts = {"lengths": args.lengths, "bound_ms": args.bound_ms, "percentile": args.percentile,
            "probe_s": args.probe_s, "max_probes": args.max_probes, "tolerance": args.tolerance,
            "max_batch_size": args.max_batch_size, "max_queue_delay_ms": args.max_queue_delay_ms,
            "instances": args.instances, "threads": args.threads, "seed": args.seed}
    t_start, load_at_start = time.perf_counter(), os.getloadavg()
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in CONTENDERS}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{args.model}.tfe"
        log(f"building {args.model} with profile {shapes}")
        call_in_process(_build, args.model, str(path), shapes)
        for r in range(args.rounds):
            order = CONTENDERS if r % 2 == 0 else CONTENDERS[::-1]
            for kind in order:
                prev = runs[kind][-1]["max_valid_qps"] if runs[kind] else None
                log(f"round {r + 1}/{args.rounds}: {kind}")
                runs[kind].append(call_in_process(contend, kind, str(path), opts, prev))

    per: dict[str, Any] = {}
    for kind in CONTENDERS:
        rates = [run["max_valid_qps"] or 0.0 for run in runs[kind]]
        summary = _summarize(rates) if any(rates) else {"samples_per_s": 0.0}
        per[kind] = {"sentences_per_s_at_bound": summary.pop("samples_per_s"), **summary,
                     "round_rates": rates, "padding_waste": runs[kind][-1]["padding"]["waste_ratio"],
                     "rounds": runs[kind]}
    a, b = ([run["max_valid_qps"] or 0.0 for run in runs[k]] for k in CONTENDERS)
    ratio = paired_ratio(a, b) if all(b) else None
    med_a, med_b = per["bucketed"]["sentences_per_s_at_bound"], per["pad_to_max"]["sentences_per_s_at_bound"]
    out = {"benchmark": "serve_lengths", "issue": 12, "model": args.model, "weights": "random", "shapes": shapes,
           "path": "in-process: loadgen BatcherTarget -> the server's DynamicBatcher -> ORT thread instance",
           "settings": {**opts, "scenario": "server (Poisson arrivals), find-max"},
           "host": {"cpu": cpu_model(), "cores": os.cpu_count(), "isa_flags": isa_flags(),
                    "load_avg_at_start": load_at_start,
                    "load_avg_at_end": os.getloadavg()},
           "bucketed": per["bucketed"], "pad_to_max": per["pad_to_max"],
           "ratio_bucketed_over_pad_to_max": round(med_a / med_b, 3) if med_b else None,
           "ratio_per_round": ratio, "target_ratio": 1.5,
           "meets_target": bool(med_b and med_a / med_b >= 1.5),
           "wall_s": round(time.perf_counter() - t_start, 1)}
    text = json.dumps(out, indent=2, default=str)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text)
    sys.exit(0)


def _build(model: str, path: str, shapes: str) -> None:
    from tensorforge.engine.build import BuildOptions, build

    build(model, path, BuildOptions(shapes=shapes))


if __name__ == "__main__":
    main()
