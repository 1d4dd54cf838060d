"""The public surface is deliberate: a change to these names must change this test too.

Every command of the ``tensorforge`` tool has a Python function, every error class is
exported, bad settings raise ``ConfigError`` naming the Python parameter, and the command
line shows the same error with its flag instead.
"""

import inspect
import subprocess
import sys

import numpy as np
import pytest

import tensorforge
from tensorforge import errors
from tensorforge.cli.main import main, make_parser, to_flags

EXPECTED = ["AccuracyTable", "BackendUnavailable", "BatcherConfig", "BenchOptions", "BenchResult", "BuildError",
            "BuildOptions", "BuildReport", "CalibrateResult", "CalibrationError", "ConfigError", "DeadlineUnmeetable", "Engine",
            "EngineFileError", "EngineInfo", "InferenceServer", "InputError", "LoadtestOptions", "LoadtestReport",
            "ModelConfig", "ModelError", "ModelNotFound", "ModelUnavailable", "ProfileResult", "QueueFullError",
            "RequestTimeout", "ResourceError", "ScenarioSettings", "SensitivityResult", "ServerConfig",
            "ServingError", "Session", "TensorForgeError", "TuningError", "VerificationError", "__version__",
            "accuracy", "backends", "bench", "bench_precisions", "build", "calibrate", "info", "load", "loadtest",
            "offline", "profile", "run", "sensitivity", "serve", "tune_serve", "write_report", "zoo"]


def _cli_commands() -> set[str]:
    parser = make_parser()
    sub = next(a for a in parser._actions if a.choices and a.dest == "command")
    return set(sub.choices)


def test_public_names():
    assert sorted(tensorforge.__all__) == sorted(EXPECTED)
    for name in EXPECTED:
        assert getattr(tensorforge, name) is not None, name


def test_every_cli_command_has_a_python_function():
    commands = _cli_commands()
    assert commands == set(tensorforge.COMMANDS), "map each new command to its function in tensorforge.COMMANDS"
    for command, name in tensorforge.COMMANDS.items():
        assert name in tensorforge.__all__, command
        value = getattr(tensorforge, name)
        if command == "zoo":                     # a module of functions: list, info, export
            assert callable(value.names) and callable(value.build)
        else:
            assert callable(value), command


def test_every_error_class_is_exported_and_shares_one_root():
    classes = {n: c for n, c in vars(errors).items() if inspect.isclass(c) and issubclass(c, Exception)
               and c.__module__ == errors.__name__}
    assert set(classes) == set(errors.__all__)
    for name, cls in classes.items():
        assert issubclass(cls, tensorforge.TensorForgeError), name
        assert name in tensorforge.__all__ and getattr(tensorforge, name) is cls, name


def test_config_error_is_a_value_error_and_an_input_error():
    assert issubclass(tensorforge.ConfigError, tensorforge.InputError)
    assert issubclass(tensorforge.ConfigError, ValueError)


@pytest.mark.parametrize("make, words", [
    (lambda: tensorforge.BuildOptions(threads=0), "`threads` must be >= 1"),
    (lambda: tensorforge.BuildOptions(precision="int4"), "unknown precision 'int4'"),
    (lambda: tensorforge.BuildOptions(max_batch=0), "`max_batch` must be >= 1"),
    (lambda: tensorforge.BenchOptions(threads=-1), "`threads` must be >= 1"),
    (lambda: tensorforge.BenchOptions(precision="fp8"), "bench precision must be one of"),
    (lambda: tensorforge.BenchOptions(batches=(1, 0)), "batch sizes must be positive"),
    (lambda: tensorforge.BenchOptions(duration_s=0), "`duration_s` must be > 0"),
    (lambda: tensorforge.ScenarioSettings(scenario="server", latency_bound_ms=5), "target_qps=Q"),
    (lambda: tensorforge.ScenarioSettings(scenario="nope"), "unknown scenario"),
    (lambda: tensorforge.LoadtestOptions(settings=tensorforge.ScenarioSettings(), harness="x"), "`harness` must be"),
    (lambda: tensorforge.LoadtestOptions(settings=tensorforge.ScenarioSettings(), threads=0), "`threads` must be"),
    (lambda: tensorforge.ServerConfig(http_port=70000), "http_port must be 0..65535"),
])
def test_bad_settings_raise_config_error_naming_the_parameter(make, words):
    with pytest.raises(tensorforge.ConfigError) as info:
        make()
    assert words in str(info.value)
    assert "--" not in str(info.value)           # Python callers are told about parameters, not flags


def test_bench_precisions_checks_every_precision_before_running():
    with pytest.raises(tensorforge.ConfigError, match="bench precision must be one of"):
        tensorforge.bench_precisions("tiny_mlp", ("fp32", "fp8"))
    with pytest.raises(tensorforge.ConfigError, match="precisions= is empty"):
        tensorforge.bench_precisions("tiny_mlp", ())


def test_to_flags_rewrites_only_the_commands_own_flags():
    flags = {"--target-qps", "--find-max", "--latency-bound", "--calib", "--max-batch"}
    assert to_flags("needs target_qps=Q (or find_max=True)", flags) == "needs --target-qps Q (or --find-max)"
    assert to_flags("`latency_bound_ms` must be > 0", flags) == "--latency-bound must be > 0"
    assert to_flags('or calibration="random"', flags) == "or --calib random"
    assert to_flags("rebuild with max_batch=8", flags) == "rebuild with --max-batch 8"
    assert to_flags("`threads` and seed=3 stay", flags) == "`threads` and seed=3 stay"     # no such flag here


def test_python_sees_parameters_the_cli_sees_flags(capsys, tmp_path):
    with pytest.raises(tensorforge.ConfigError) as info:
        tensorforge.ScenarioSettings(scenario="server", latency_bound_ms=5)
    assert "target_qps=" in str(info.value) and "--target-qps" not in str(info.value)
    code = main(["loadtest", "noop", "--scenario", "server", "--latency-bound", "5", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "--target-qps Q" in err and "target_qps=" not in err
    code = main(["calibrate", "tiny_mlp", "--calib", "random", "-o", str(tmp_path / "h.npz"), "--calib-batch", "0"])
    assert code == 2 and "error: --calib-batch must be >= 1, got 0" in capsys.readouterr().err


def test_function_names_that_are_subpackages_stay_callable_in_any_import_order():
    code = ("import tensorforge.bench.runner, tensorforge.serve.server, tensorforge.backends.registry\n"
            "import tensorforge as tf\n"
            "assert callable(tf.bench) and callable(tf.serve) and callable(tf.backends)\n"
            "assert any(row['name'] == 'onnxruntime' for row in tf.backends())\n"
            "from tensorforge.serve import ServerConfig\n"
            "import tensorforge.bench.profile as p\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr


def test_run_and_info_mirror_their_commands(engine_path):
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    outputs = tensorforge.run(engine_path, x)
    np.testing.assert_array_equal(outputs["y"], tensorforge.load(engine_path).run(x)["y"])
    described = tensorforge.info(engine_path)
    assert described.manifest.format_version and described.engine.inputs[0].name == "x"
    assert described.to_dict()["manifest"]["precision"] == "fp32"
    assert isinstance(described.host_differences, list)


def test_import_is_light():
    """`import tensorforge` must not import onnxruntime, onnx or rich (no work at import time)."""
    code = ("import sys, tensorforge; heavy = [m for m in ('onnxruntime', 'onnx', 'rich', 'torch') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
