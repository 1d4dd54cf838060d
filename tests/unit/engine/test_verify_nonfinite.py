"""Regression (issue 13, item 6): a model whose outputs are all NaN passed verification as
"max abs error 0"; the build now says which outputs were NaN/Inf in the original."""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from tensorforge.cli.main import main
from tensorforge.engine.build import BuildOptions, build


def _nan_model() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    nodes = [helper.make_node("Sub", ["x", "x"], ["zero"], name="sub"),
             helper.make_node("Div", ["zero", "zero"], ["y"], name="div")]       # 0 / 0 = NaN everywhere
    graph = helper.make_graph(nodes, "nan_model", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_all_nan_outputs_are_reported_not_passed_off_as_error_zero(tmp_path):
    _, report = build(_nan_model(), None, BuildOptions())
    v = report.verification
    assert v is not None and "y" in v.nonfinite
    assert v.nonfinite["y"].startswith("8 of 8 values NaN/Inf")


def test_the_cli_warns_about_nan_outputs(tmp_path, capsys):
    path = tmp_path / "nan.onnx"
    onnx.save(_nan_model(), path)
    assert main(["build", str(path), "-o", str(tmp_path / "nan.tfe")]) == 0
    out = capsys.readouterr().out
    assert "warning" in out and "NaN/Inf in the original" in out
