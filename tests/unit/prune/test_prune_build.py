"""build(prune=...): the pruned graph is checked against the masked original, and the report says what was pruned."""

from __future__ import annotations

import pytest

from tensorforge.engine.build import BuildOptions, build
from tensorforge.prune import parse_prune


@pytest.mark.parametrize("spec", ["channels:30%", "2:4", "unstructured:70%"])
def test_build_with_prune(spec: str) -> None:
    _, report = build("tiny_mobilenet", options=BuildOptions(prune=spec))
    pr = report.pruning
    assert pr is not None and pr["verification"]["passed"]
    assert report.verification is not None and report.verification.passed
    assert "prune" in report.timings_s and pr["spec"] == str(parse_prune(spec))
    if spec.startswith("channels"):
        assert report.after.params < report.before.params // 2 + report.before.params // 4
        assert report.after.macs_per_sample < report.before.macs_per_sample
        assert pr["channels_after"] < pr["channels_before"]
    else:
        assert "no speed-up on this backend" in pr["speed"]
        assert pr["sparsity"] > 0.4
    assert report.to_dict()["pruning"]["spec"] == pr["spec"]


def test_build_prune_then_int8() -> None:
    _, report = build("tiny_cnn", options=BuildOptions(prune="channels:30%", precision="int8",
                                                       calibration="random", calibration_samples=16))
    assert report.pruning is not None and report.precision.startswith("int8")


def test_cli_build_prune(tmp_path, capsys) -> None:
    import json

    from tensorforge.cli.main import main

    out, rep = tmp_path / "m.tfe", tmp_path / "r.json"
    assert main(["build", "tiny_cnn", "--prune", "channels:50%", "-o", str(out), "--report", str(rep)]) == 0
    text = capsys.readouterr().out
    assert "pruned channels:0.5" in text and out.exists()
    assert json.loads(rep.read_text())["pruning"]["params_after"] < json.loads(rep.read_text())["pruning"]["params_before"]
    # a bad spec is a one-line error naming the flag, not a traceback
    assert main(["build", "tiny_cnn", "--prune", "channels:1.5", "-o", str(out)]) != 0
    assert "--prune" in capsys.readouterr().err


def test_cli_finetune_steps(tmp_path, capsys) -> None:
    """--finetune-steps: the pruned shipped classifier, trained a few steps, built and reported; one-line
    errors naming the flag for a model without shipped training data or without channel pruning."""
    import json

    pytest.importorskip("torch")
    from tensorforge.cli.main import main

    out, rep = tmp_path / "m.tfe", tmp_path / "r.json"
    assert main(["build", "tiny_cnn", "--prune", "channels:30%", "--finetune-steps", "3", "-o", str(out)]) != 0
    assert "--finetune-steps" in capsys.readouterr().err and not out.exists()
    assert main(["build", "mnist_cnn", "--prune", "2:4", "--finetune-steps", "3", "-o", str(out)]) != 0
    assert "--prune channels" in capsys.readouterr().err
    assert main(["build", "mnist_cnn", "--prune", "channels:30%", "--finetune-steps", "0", "-o", str(out)]) != 0
    assert "--finetune-steps must be a positive" in capsys.readouterr().err
    assert main(["build", "mnist_cnn", "--prune", "channels:30%", "--finetune-steps", "8", "-o", str(out),
                 "--report", str(rep)]) == 0
    text = capsys.readouterr().out
    assert "fine-tuned 8 steps on mnist5k" in text and out.exists()
    report = json.loads(rep.read_text())
    ft = report["finetune"]
    assert ft["steps"] == 8 and ft["after_top1_pct"] > ft["before_top1_pct"]
    assert report["pruning"]["params_after"] < report["pruning"]["params_before"] == 23946
    assert report["after"]["params"] == report["pruning"]["params_after"]
