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
    ip.add_argument("name", help="zoo model name, e.g. resnet50")
    ip.set_defaults(func=_info)
    ep = zsub.add_parser("export", help="write a zoo model as an ONNX file")
    ep.add_argument("name", help="zoo model name, e.g. resnet50")
    ep.add_argument("-o", "--output", required=True, help="ONNX file to write, e.g. resnet50.onnx")
    ep.add_argument("--seed", type=int, default=0, help="weight seed (default 0; same seed, same bytes)")
    ep.set_defaults(func=_export)


def _list(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ..models import zoo

    table = Table(title="TensorForge zoo")
    for col in ("name", "input", "description"):
        table.add_column(col)
    for name in zoo.names(include_tiny=args.all):
        e = zoo.entry(name)
        table.add_row(name, "N×" + "×".join(map(str, e.input_shape)), e.description)
    console.print(table)
    return 0


def _info(args: argparse.Namespace) -> int:
    from ..graph import analysis
    from ..models import zoo

    e = zoo.entry(args.name)
    model = zoo.build(args.name)
    params, macs = analysis.count_params(model), analysis.count_macs(model, batch=1)
    console.print(f"[bold]{e.name}[/bold]: {e.description}")
    console.print(f"  input   {e.input_name}: float32 [N, {', '.join(map(str, e.input_shape))}]")
    console.print(f"  output  {e.output_name}: float32 [N, {e.num_classes}]")
    pub_p = f" (published {human_count(e.published_params)})" if e.published_params else ""
    pub_m = f" (published {human_count(e.published_macs)})" if e.published_macs else ""
    console.print(f"  params  {params:,} = {human_count(params)}{pub_p}")
    console.print(f"  MACs    {macs:,} = {human_count(macs)} per sample{pub_m}")
    console.print(f"  nodes   {len(model.graph.node)}: " + ", ".join(
        f"{op}×{n}" for op, n in analysis.op_histogram(model).items()))
    return 0


def _export(args: argparse.Namespace) -> int:
    import onnx

    from ..models import zoo

    model = zoo.build(args.name, seed=args.seed)
    size = model.ByteSize()
    if size > 2**31 - 1024:   # protobuf's 2 GiB limit: weights go to a side file
        onnx.save(model, args.output, save_as_external_data=True)
    else:
        onnx.save(model, args.output)
    console.print(f"wrote {args.output} ({size / 2**20:.1f} MiB)")
    return 0
