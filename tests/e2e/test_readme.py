"""The README's examples run as shown: every ``$`` line of its console blocks runs, in order, in one
scratch folder, exits 0, and prints every line the README shows under it (numbers masked: timings
differ between runs). The runner is ``scripts/readme_examples.py`` (``--write`` refreshes the README)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("readme_examples", ROOT / "scripts" / "readme_examples.py")
readme = importlib.util.module_from_spec(spec)
sys.modules["readme_examples"] = readme          # dataclasses look their module up there
spec.loader.exec_module(readme)


def test_the_matcher_masks_numbers_and_keeps_order():
    real = ["wrote m.tfe (99.2 KiB) in 0.9 s", "│     1 │   1,365.5 │", "done"]
    assert readme.matches(["wrote m.tfe (101.0 KiB) in 1.3 s", "…", "done"], real) is None
    assert readme.matches(["done", "wrote m.tfe (1 KiB) in 1 s"], real) is not None      # order matters
    assert readme.matches(["wrote x.tfe (1 KiB) in 1 s"], real) is not None              # words do not


def test_readme_has_the_two_commands_and_examples_for_every_command():
    from tensorforge.cli.main import make_parser

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "pip install . && tensorforge bench" in text and "pip install '.[test]' && pytest" in text
    parser = make_parser()
    sub = next(a for a in parser._actions if a.choices and a.dest == "command")
    shown = {ex.command.split()[1] for ex in readme.parse(text) if ex.command.startswith("tensorforge ")}
    assert set(sub.choices) - shown - {"zoo"} == set(), "a command without a README example"
    assert len(text.splitlines()) < 260, "the README is a front door: depth goes in docs/"


def test_every_readme_example_runs_as_shown(tmp_path):
    pytest.importorskip("prometheus_client", reason="the README's serve example needs the serve extra")
    examples = readme.parse((ROOT / "README.md").read_text(encoding="utf-8"))
    results = readme.run_all(examples, tmp_path)
    problems = []
    for ex, (rc, out) in zip(examples, results):
        missing = readme.matches(ex.shown, out.splitlines())
        if rc != 0 or missing is not None:
            problems.append(f"$ {ex.command}\n  exit {rc}; missing line: {missing!r}\n  "
                            + "\n  ".join(out.splitlines()[-12:]))
    assert not problems, "\n".join(problems)
