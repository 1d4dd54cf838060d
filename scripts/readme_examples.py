"""Run the README's examples, in order, and check (or rewrite) the output shown under each.

    python scripts/readme_examples.py --check [README.md]    # run every example; fail on a mismatch
    python scripts/readme_examples.py --write [README.md]    # run them and paste the real output in

An example is a line starting with ``$ `` inside a ```` ```console ```` block; the lines after it,
up to the next ``$ `` line or the end of the block, are its output as shown. All examples run in
one scratch folder, in order (a later one may use an earlier one's files), under ``bash`` with
``tensorforge`` on the PATH. A command ending in `` &`` starts in the background (a server): the
next example waits until ``localhost:8000`` answers ready, and it is stopped at the end.

A shown output is checked against the real one line by line, numbers masked (timings differ from
run to run): every shown line must appear in the real output in the same order. A shown line of
``…`` stands for lines left out; ``--write`` keeps the same number of lines before it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ELLIPSIS = "…"
READY_URL = "http://127.0.0.1:8000/v2/health/ready"


@dataclass
class Example:
    command: str
    shown: list[str] = field(default_factory=list)
    line: int = 0                     # 0-based index of the command line in the README


def parse(text: str) -> list[Example]:
    """The ``$`` examples of every console block, with the output shown under each."""
    examples: list[Example] = []
    inside = False
    for i, line in enumerate(text.splitlines()):
        if line.startswith("```"):
            inside = line.strip() == "```console"
            continue
        if not inside:
            continue
        if line.startswith("$ "):
            examples.append(Example(line[2:], line=i))
        elif examples and examples[-1].line < i:
            examples[-1].shown.append(line)
    return examples


def mask(line: str) -> str:
    """A line with every number (and run of table padding) made comparable across runs."""
    line = re.sub(r"\d+(?:[.,]\d+)*(?:e[-+]?\d+)?", "#", line)
    line = re.sub(r"/tmp/[^\s'\"]+", "/tmp/…", line)
    return re.sub(r"[ ─━═]+", " ", line).strip(" │┃║")


def matches(shown: list[str], real: list[str]) -> str | None:
    """None when every shown line (up to an ``…``) appears in ``real`` in order; else what is missing."""
    want = [mask(s) for s in shown if s.strip() and s.strip() != ELLIPSIS]
    got = [mask(r) for r in real]
    j = 0
    for w in want:
        while j < len(got) and got[j] != w:
            j += 1
        if j == len(got):
            return w
        j += 1
    return None


def _wait_ready(timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(READY_URL, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the background server never answered {READY_URL}")


def run_all(examples: list[Example], workdir: Path, timeout_s: float = 600.0) -> list[tuple[int, str]]:
    """Run every example in ``workdir``; return each one's (exit code, output) in order."""
    env = dict(os.environ, COLUMNS="120", TERM="dumb", NO_COLOR="1", PYTHONWARNINGS="ignore")
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    if shutil.which("tensorforge", path=env["PATH"]) is None:      # not installed as a script: the module
        shim = workdir / ".bin"
        shim.mkdir(exist_ok=True)
        (shim / "tensorforge").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tensorforge "$@"\n')
        (shim / "tensorforge").chmod(0o755)
        env["PATH"] = str(shim) + os.pathsep + env["PATH"]
    env["PATH"] = bindir + os.pathsep + env["PATH"]               # `python` is this interpreter
    results: list[tuple[int, str]] = []
    background: list[subprocess.Popen[bytes]] = []
    try:
        for ex in examples:
            if background:
                _wait_ready()
            if ex.command.rstrip().endswith("&"):
                cmd = ex.command.rstrip()[:-1]
                background.append(subprocess.Popen(["bash", "-c", f"exec {cmd}"], cwd=workdir, env=env,
                                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                                   start_new_session=True))
                results.append((0, ""))
                continue
            p = subprocess.run(["bash", "-c", ex.command], cwd=workdir, env=env, capture_output=True, text=True,
                               timeout=timeout_s)
            results.append((p.returncode, (p.stdout + p.stderr).rstrip("\n")))
    finally:
        for proc in background:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    return results


def rewrite(text: str, examples: list[Example], results: list[tuple[int, str]]) -> str:
    lines = text.splitlines()
    for ex, (_, out) in reversed(list(zip(examples, results))):
        real = out.splitlines()
        keep = ex.shown.index(ELLIPSIS) if ELLIPSIS in ex.shown else None
        new = real if keep is None or keep >= len(real) else real[:keep] + [ELLIPSIS]
        lines[ex.line + 1: ex.line + 1 + len(ex.shown)] = new
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="run the examples and compare with the README")
    mode.add_argument("--write", action="store_true", help="run the examples and paste their output in")
    ap.add_argument("--dump", metavar="FILE", help="also write every example's full output to FILE")
    ap.add_argument("readme", nargs="?", default=str(ROOT / "README.md"))
    args = ap.parse_args()
    path = Path(args.readme)
    text = path.read_text(encoding="utf-8")
    examples = parse(text)
    with tempfile.TemporaryDirectory() as tmp:
        results = run_all(examples, Path(tmp))
    if args.dump:
        Path(args.dump).write_text("".join(f"$ {ex.command}\n[exit {rc}]\n{out}\n" for ex, (rc, out)
                                           in zip(examples, results)), encoding="utf-8")
    failed = 0
    for ex, (rc, out) in zip(examples, results):
        miss = matches(ex.shown, out.splitlines()) if args.check else None
        if rc != 0 or miss is not None:
            failed += 1
            print(f"FAIL: $ {ex.command}\n  exit code {rc}" + (f"; shown line not in output: {miss!r}" if miss else "")
                  + "\n" + "\n".join("  | " + o for o in out.splitlines()[-15:]), file=sys.stderr)
    if args.write and not failed:
        path.write_text(rewrite(text, examples, results), encoding="utf-8")
    print(f"{len(examples) - failed} of {len(examples)} examples ran as shown", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
