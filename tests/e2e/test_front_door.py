"""The front door (issue 15, items 1-2): ordinary mistakes and missing extras end in one line and exit code 2
(or 1 for the environment), before any long work starts, never a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys

import numpy as np
import pytest

from tensorforge.cli.main import main

# (argv, the text the one error line must hold); {tfe} and {npy} are a built engine and an input file
BAD = [
    (["build", "tiny_mlp", "--threads", "0", "-o", "x.tfe"], "--threads must be at least 1"),
    (["run", "{tfe}", "-i", "{npy}", "--threads", "0"], "--threads must be at least 1"),
    (["bench", "{tfe}", "--threads", "0"], "--threads must be at least 1"),
    (["serve", "{tfe}", "--threads-per-instance", "0"], "--threads-per-instance must be at least 1"),
    (["serve", "{tfe}", "--max-batch-size", "0"], "--max-batch-size must be >= 1"),
    (["serve", "{tfe}", "--slo-ms", "0"], "--slo-ms must be in (0,"),
    (["loadtest", "{tfe}", "--lengths", "fixed:8"], "needs a sequence model"),
    (["loadtest", "bert_tiny", "--lengths", "gaussian:3"], "fixed:N, uniform:A-B"),
    (["loadtest", "{tfe}", "--lengths", "fixed:8", "--input", "{npy}"], "not both"),
    (["build", "tiny_mlp", "-o", "/nonexistent/m.tfe"], "the folder '/nonexistent' does not exist"),
    (["bench", "{tfe}", "--json", "/nonexistent/o.json"], "--json /nonexistent/o.json"),
    (["bench", "{tfe}", "--csv", "/nonexistent/o.csv"], "--csv /nonexistent/o.csv"),
    (["run", "{tfe}", "-i", "{npy}", "-o", "/nonexistent/o.npz"], "-o /nonexistent/o.npz"),
    (["zoo", "export", "tiny_mlp", "-o", "/nonexistent/x.onnx"], "-o /nonexistent/x.onnx"),
    (["loadtest", "tiny_mlp", "--out", "{npy}/sub"], "is a file, so no folder can be made"),
    (["bench", "{tfe}", "--json", "/proc/o.json"], "the folder '/proc' is not writable"),
    (["build", "tiny_mlp", "--backend", "openvin", "-o", "x.tfe"], "did you mean 'openvino'"),
    (["bench", "Tiny_MLPP", "--batch", "1"], "Did you mean 'tiny_mlp'"),
    (["zoo", "info", "tiny_mlpp"], "Did you mean 'tiny_mlp'"),
    (["bench", "{tfe}", "--iterations", "0"], "--iterations must be at least 1"),
    (["bench", "{tfe}", "--iterations", "5", "--duration", "1"], "--iterations (a count of timed calls) or --durat"),
    (["bench", "{tfe}", "--concurrency", "1,x"], "--concurrency takes comma-separated integers"),
    (["bench", "{tfe}", "--concurrency", "0"], "--concurrency takes positive integers"),
    (["bench", "{tfe}", "--concurrency", "2", "--streams", "2"], "--streams (threads split between streams) or"),
    (["bench", "{tfe}", "--max-cv", "5"], "--max-cv is a limit of --strict; add --strict"),
    (["bench", "{tfe}", "--strict", "--max-spread", "-1"], "--max-spread is a percentage >= 0"),
    (["bench", "{tfe}", "--export-times", "/nonexistent/t.csv"], "--export-times /nonexistent/t.csv"),
    (["bench", "{tfe}", "--input", "/nonexistent/x.npy"], "--input /nonexistent/x.npy: no such file or folder"),
    (["bench", "{tfe}", "--input", "{tfe}"], "unsupported file type '.tfe'"),
    (["bench", "{tfe}", "--input", "{bad_npy}"], "input 'input' has shape [2, 10]; model 'tiny_mlp' expects [N, 64]"),
    (["bench", "tiny_mlp", "--input", "{bad_npy}"], "bad.npy: input 'input' has shape [2, 10]"),
    (["bench", "{tfe}", "--backend", "openvino"], "built for 'onnxruntime'; its backend is fixed at build time"),
    (["bench", "tiny_mlp", "--backend", "openvin"], "did you mean 'openvino'"),
    (["bench", "{tfe}", "--lengths", "16,x"], "--lengths takes comma-separated integers like 16,64,128"),
    (["bench", "{tfe}", "--lengths", "0"], "--lengths takes positive integers"),
    (["bench", "{tfe}", "--lengths", "16", "--input", "{npy}"], "--lengths sweeps random token ids"),
    (["bench", "{tfe}", "--lengths", "16"], "--lengths needs a sequence model, but no input of"),
    (["loadtest", "tiny_mlp", "--input", "{bad_npy}"], "--input {bad_npy}: input 'input' has shape [2, 10]"),
    (["loadtest", "noop", "--input", "{npy}"], "--input feeds an in-process model"),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("fd")
    tfe = d / "t.tfe"
    assert main(["build", "tiny_mlp", "-o", str(tfe), "--no-verify"]) == 0
    npy = d / "x.npy"
    np.save(npy, np.zeros((1, 64), np.float32))
    np.save(d / "bad.npy", np.zeros((2, 10), np.float32))
    return {"tfe": str(tfe), "npy": str(npy), "dir": d, "bad_npy": str(d / "bad.npy")}


@pytest.mark.parametrize("argv,expected", BAD, ids=[" ".join(a[:2]) + f"-{i}" for i, (a, _) in enumerate(BAD)])
def test_bad_invocation_is_one_line(argv, expected, files, capsys, monkeypatch):
    monkeypatch.chdir(files["dir"])
    argv = [a.format(**files) for a in argv]
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert expected.format(**files) in lines[0]


def test_output_checked_before_the_build(files, monkeypatch):
    """-o in a missing folder fails before building: the build is never called."""
    import tensorforge.engine.build as build_mod

    monkeypatch.setattr(build_mod, "build", lambda *a, **k: pytest.fail("built despite a bad -o"))
    assert main(["build", "tiny_mlp", "-o", "/nonexistent/m.tfe"]) == 2


def test_backend_name_any_case(files, tmp_path, capsys):
    out = tmp_path / "r.tfe"
    assert main(["build", "tiny_mlp", "--backend", "ONNXRuntime", "-o", str(out), "--no-verify"]) == 0
    assert out.exists()
    from tensorforge.engine.runtime import Engine

    assert Engine.load(out).manifest.backend.name == "onnxruntime"


def test_run_output_writes_exactly_the_given_path(files, tmp_path, capsys):
    out = tmp_path / "out.txt"
    assert main(["run", files["tfe"], "-i", files["npy"], "-o", str(out)]) == 0
    assert f"saved outputs to {out}" in capsys.readouterr().out
    assert out.exists() and not (tmp_path / "out.txt.npz").exists()
    assert list(np.load(out).files)


def _blocked(module: str, *argv: str, cwd: object = None) -> subprocess.CompletedProcess[str]:
    """The CLI in a fresh interpreter where ``module`` cannot be imported (as when its extra is missing)."""
    code = (f"import sys; sys.modules[{module!r}] = None\n"
            "from tensorforge.cli.main import main; sys.exit(main(sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120,
                          cwd=cwd)


@pytest.mark.parametrize("module,argv,extra", [
    ("prometheus_client", ["serve", "{tfe}", "--http-port", "0", "--grpc-port", "0"], "serve"),
    ("hdrh", ["loadtest", "tiny_mlp", "--min-duration", "0.2"], "loadgen"),
])
def test_missing_extra_names_the_install(module, argv, extra, files):
    p = _blocked(module, *[a.format(**files) for a in argv], cwd=files["dir"])
    assert p.returncode == 2, p.stderr
    assert not (files["dir"] / "loadtest-results").exists()     # nothing written when nothing ran
    assert "Traceback" not in p.stderr
    assert f"pip install 'tensorforge[{extra}]'" in p.stderr


def test_missing_openvino_says_how_to_install(files):
    p = _blocked("openvino", "build", "tiny_mlp", "--backend", "openvino", "-o", str(files["dir"] / "o.tfe"))
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "pip install 'tensorforge[openvino]'" in p.stderr
    # the backends table keeps the [openvino] of the hint (rich would eat it as a markup tag)
    p = _blocked("openvino", "backends")
    assert p.returncode == 0 and "tensorforge[openvino]" in p.stdout


def test_metrics_port_in_use(files):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = subprocess.run([sys.executable, "-m", "tensorforge", "serve", files["tfe"], "--http-port", "0",
                            "--grpc-port", "0", "--metrics-port", str(port)],
                           capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "pick another --metrics-port" in p.stderr.strip().splitlines()[-1]


def test_zoo_list_and_info_show_trained_models(capsys, tmp_path):
    """mnist_cnn is buildable, so zoo list and zoo info show it (issue 15, item 5); names in any case."""
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    assert "mnist_cnn" in out and "trained" in out
    assert main(["zoo", "info", "MNIST_CNN"]) == 0
    out = capsys.readouterr().out
    assert "mnist_cnn (trained)" in out and "image: float32 [N, 1, 28, 28]" in out
    assert main(["zoo", "export", "Tiny_MLP", "-o", str(tmp_path / "t.onnx")]) == 0
    assert (tmp_path / "t.onnx").exists()
