"""``tensorforge zoo list|info|export`` — the built-in networks."""

from __future__ import annotations

import argparse

from ._fmt import console, human_count

HELP = "list, describe or export the built-in model zoo"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("zoo", help=HELP, description=(
        "The built-in networks of the seed whitepapers (AlexNet, GoogLeNet, ResNet-50, VGG-19, "
        "MobileNet-v2) plus tiny variants for tests, built as ONNX with seeded random Gaussian "
        "weights (the giexec method): right shapes and costs, not trained accuracy."))
    zsub = p.add_subparsers(dest="zoo_command", metavar="ACTION", required=True)
    lp = zsub.add_parser("list", help="list the zoo models")
    lp.add_argument("--all", action="store_true", help="include the tiny test variants")
    lp.set_defaults(func=_list)
    ip = zsub.add_parser("info", help="show a model's inputs, parameters and multiply-accumulates")
    ip.add_argument("name", help="zoo or trained model name, e.g. resnet50 or mnist_cnn (any case)")
    ip.set_defaults(func=_info)
    ep = zsub.add_parser("export", help="write a zoo model as an ONNX file")
    ep.add_argument("name", help="zoo or trained model name, e.g. resnet50 or mnist_cnn")
    ep.add_argument("-o", "--output", required=True, help="ONNX file to write, e.g. resnet50.onnx")
    ep.add_argument("--seed", type=int, default=0, help="weight seed (default 0; same seed, same bytes)")
    ep.set_defaults(func=_export)


def _list(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ..models import datasets, zoo

    table = Table(title="TensorForge zoo (random weights) and trained models — every name build/bench/run take")
    for col in ("name", "kind", "input", "description"):
        table.add_column(col)
    for name in zoo.names(include_tiny=args.all):
        e = zoo.entry(name)
        kind = "trained" if getattr(e, "trained", False) else "zoo"
        table.add_row(name, kind, "N×" + "×".join(map(str, e.input_shape)), e.description.removeprefix("TRAINED "))
    for name in datasets.trained_models():
        meta = _trained_meta(name)
        shape = meta.get("input", {}).get("shape", [])
        table.add_row(name, "trained", "×".join(map(str, shape)),
                      f"trained on {meta.get('dataset', '?')}: {_trained_accuracy(meta)}")
    console.print(table)
    if not args.all:
        console.print("the tiny test variants too: tensorforge zoo list --all")
    return 0


def _trained_meta(name: str) -> dict:  # type: ignore[type-arg]
    """The JSON that ships beside a trained model's ONNX file ({} when it is missing or unreadable)."""
    import json
    from pathlib import Path

    from ..models import datasets

    try:
        return dict(json.loads(Path(datasets.trained_model(name)).with_suffix(".json").read_text("utf-8")))
    except (OSError, ValueError):
        return {}


def _trained_accuracy(meta: dict) -> str:  # type: ignore[type-arg]
    acc = meta.get("accuracy_fp32")
    if isinstance(acc, dict) and isinstance(acc.get("top1_pct"), (int, float)):
        return f"top-1 {acc['top1_pct']:g} % (FP32, {acc.get('split', 'test')} split)"
    return "accuracy in its JSON"


def _info(args: argparse.Namespace) -> int:
    import onnx

    from ..engine.source import resolve_source
    from ..graph import analysis
    from ..models import zoo

    # the one model-source resolver: zoo and trained names, any case, "did you mean" for typos
    src = resolve_source(args.name)
    model = src.onnx_model()
    if src.kind == "zoo":
        e = zoo.entry(src.name)
        console.print(f"[bold]{e.name}[/bold]: {e.description}")
        pub_p = f" (published {human_count(e.published_params)})" if e.published_params else ""
        pub_m = f" (published {human_count(e.published_macs)})" if e.published_macs else ""
    else:
        meta = _trained_meta(src.name) if src.kind == "trained" else {}
        what = f"trained on {meta.get('dataset', '?')}, {_trained_accuracy(meta)}" if meta else src.origin
        console.print(f"[bold]{src.name}[/bold] ({src.kind}): {what}")
        pub_p = pub_m = ""
    inits = {i.name for i in model.graph.initializer}
    for kind, values in (("input", model.graph.input), ("output", model.graph.output)):
        for v in values:
            if v.name in inits:
                continue
            t = v.type.tensor_type
            dims = ", ".join(d.dim_param or str(d.dim_value) for d in t.shape.dim)
            dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name if t.elem_type else "?"
            console.print(f"  {kind:7s} {v.name}: {dtype} \\[{dims}]")
    params = analysis.count_params(model)
    console.print(f"  params  {params:,} = {human_count(params)}{pub_p}")
    # a non-batch dynamic axis (a sequence length S) leaves most layers' sizes unknown: no misleading count
    dynamic = sorted({d.dim_param for v in model.graph.input if v.name not in inits
                      for d in list(v.type.tensor_type.shape.dim)[1:] if d.dim_param})
    if dynamic:
        console.print(f"  MACs    depend on {', '.join(dynamic)} (dynamic); not counted here")
    else:
        macs = analysis.count_macs(model, batch=1)
        console.print(f"  MACs    {macs:,} = {human_count(macs)} per sample{pub_m}")
    console.print(f"  nodes   {len(model.graph.node)}: " + ", ".join(
        f"{op}×{n}" for op, n in analysis.op_histogram(model).items()))
    return 0


def _export(args: argparse.Namespace) -> int:
    import onnx

    from ..models import zoo

    if args.name in zoo.names():
        model = zoo.build(args.name, seed=args.seed)
    else:       # any case, a trained model, or a typo ("did you mean"): the one resolver decides
        from ..engine.source import resolve_source

        src = resolve_source(args.name)
        model = zoo.build(src.name, seed=args.seed) if src.kind == "zoo" else src.onnx_model()
    size = model.ByteSize()
    if size > 2**31 - 1024:   # protobuf's 2 GiB limit: weights go to a side file
        onnx.save(model, args.output, save_as_external_data=True)
    else:
        onnx.save(model, args.output)
    console.print(f"wrote {args.output} ({size / 2**20:.1f} MiB)")
    return 0
