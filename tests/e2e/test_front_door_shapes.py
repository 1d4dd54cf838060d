"""Sequence models in bench and loadtest say on the terminal which length they ran at (issue 15, item 4)."""

from __future__ import annotations

from tensorforge.cli.main import main


def test_bench_sequence_model_names_axis_and_length(capsys):
    rc = main(["bench", "bert_tiny", "--batch", "1", "--duration", "0.2", "--warmup", "0", "--min-iterations", "2",
               "--shapes", "input_ids:1x8,1x16,2x32"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "dynamic input axes run at: input_ids S=16" in out and "random integer ids" in out


def test_loadtest_sequence_model_warns(capsys, tmp_path):
    rc = main(["loadtest", "bert_tiny", "--min-duration", "0.2", "--warmup", "0", "--min-queries", "5",
               "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc in (0, 1)
    assert "dynamic input axes run at: input_ids S=" in out


def test_image_model_has_no_axis_warning(capsys):
    assert main(["bench", "tiny_mlp", "--batch", "1", "--duration", "0.2", "--warmup", "0"]) == 0
    assert "dynamic input axes" not in capsys.readouterr().out


def test_bench_shapes_refused_for_an_engine_file(capsys, tmp_path):
    tfe = tmp_path / "t.tfe"
    assert main(["build", "tiny_mlp", "-o", str(tfe), "--no-verify"]) == 0
    capsys.readouterr()
    assert main(["bench", str(tfe), "--shapes", "input:1x64,1x64,1x64"]) == 2
    assert "shape profiles were fixed" in capsys.readouterr().err
