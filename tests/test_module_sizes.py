"""The package keeps small modules: none may pass the hard line budget (see scripts/module_sizes.py)."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "module_sizes.py"


def test_no_module_past_hard_budget():
    spec = importlib.util.spec_from_file_location("module_sizes", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    too_big = [(n, name) for n, name in mod.sizes() if n > mod.HARD_BUDGET]
    assert not too_big, f"split these modules (budget {mod.HARD_BUDGET} lines): {too_big}"
