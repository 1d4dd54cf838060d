"""Discoverability of the tuner's failure modes and its progress (issue 15, items 3 and 5)."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_script_without_main_guard_gets_one_error(tmp_path):
    """Tuning from a script with no `if __name__ == "__main__":` re-runs it in each spawned worker: the user
    sees one TuningError with the fix, not one nested traceback per worker."""
    script = tmp_path / "noguard.py"
    script.write_text(textwrap.dedent("""
        from tensorforge.engine.build import BuildOptions, build
        build("tiny_mlp", None, BuildOptions(tune="latency", tune_budget_s=5))
    """))
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert p.returncode == 1
    assert p.stderr.count("Traceback") == 1, p.stderr
    assert p.stderr.count('if __name__ == "__main__":') == 1
    assert p.stderr.strip().splitlines()[-1].startswith("tensorforge.errors.TuningError: the tuner's worker")


def test_build_progress_lines_when_piped(tmp_path):
    """Piped, a build says each long stage on its own stderr line (verify, INT8 calibration batches)."""
    out = tmp_path / "m.tfe"
    p = subprocess.run([sys.executable, "-m", "tensorforge", "build", "tiny_mlp", "--precision", "int8", "--calib", "random",
                        "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    lines = [line for line in p.stderr.splitlines() if line.startswith("build tiny_mlp: ")]
    assert any("verifying" in line for line in lines)
    assert any("calibration batch 1/" in line for line in lines)
    assert any("converting to int8" in line for line in lines)
