"""Print every module's line count, largest first, and flag those past the budget (STYLE §1).

    python scripts/module_sizes.py [--budget 400]
"""

from __future__ import annotations

import argparse
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "tensorforge"
SOFT_BUDGET = 400      # past this a module asks to be split along a seam a reader would name
HARD_BUDGET = 600      # tests/test_module_sizes.py fails past this


def sizes() -> list[tuple[int, str]]:
    return sorted(((len(p.read_text(encoding="utf-8").splitlines()), str(p.relative_to(PACKAGE.parent)))
                   for p in PACKAGE.rglob("*.py")), reverse=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=int, default=SOFT_BUDGET)
    args = ap.parse_args()
    rows = sizes()
    for n, name in rows:
        print(f"{n:6d}  {name}{'   <- past budget' if n > args.budget else ''}")
    print(f"{sum(n for n, _ in rows):6d}  total in {len(rows)} modules")


if __name__ == "__main__":
    main()
