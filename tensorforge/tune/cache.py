"""The timing cache: a tuning result on disk, reused when the same model is tuned the same way here.

Like TensorRT's timing cache, it saves re-timing: an entry is keyed by what the timings
depend on — the engine payload's hash, the objective, batch, device, precision and the
candidate list — and records the host fingerprint and library versions it was measured
with. A lookup that finds an entry from another host, or from other versions of the
libraries, ignores it and says why (the timings would not hold); a file that is not a
cache entry is ignored with a note too. Plain JSON, one file per key, written atomically.

Location: ``--tune-cache DIR``, else ``$TENSORFORGE_CACHE_DIR/timing``, else
``~/.cache/tensorforge/timing``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

from ..core.host import fingerprint_differences, host_fingerprint

FORMAT = "tensorforge.timing-cache/1"


def default_dir() -> Path:
    root = os.environ.get("TENSORFORGE_CACHE_DIR")
    base = Path(root) if root else Path.home() / ".cache" / "tensorforge"
    return base / "timing"


def cache_key(fields: Mapping[str, Any]) -> str:
    """A stable hash of the fields the timings depend on."""
    text = json.dumps(fields, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class TimingCache:
    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_dir()

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def lookup(self, key: str, versions: Mapping[str, str]) -> tuple[dict[str, Any] | None, str]:
        """(the cached result or None, a note saying what happened)."""
        path = self.path(key)
        if not path.exists():
            return None, f"timing cache: no entry for this model and settings in {self.directory}"
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            if entry.get("format") != FORMAT or not isinstance(entry.get("result"), dict):
                raise ValueError(f"not a {FORMAT} entry")
        except (OSError, ValueError) as exc:
            return None, f"timing cache: ignored {path} ({exc}); re-timing"
        diffs = fingerprint_differences(entry.get("host", {}))
        if diffs:
            return None, f"timing cache: entry {path.name} was timed on another host ({'; '.join(diffs)}); re-timing"
        recorded = entry.get("versions", {})
        changed = [f"{k} {recorded.get(k)} -> {v}" for k, v in sorted(versions.items()) if recorded.get(k) != v]
        if changed:
            return None, (f"timing cache: entry {path.name} was timed with other library versions "
                          f"({', '.join(changed)}); re-timing")
        return entry["result"], f"timing cache: used {path} (timed {entry.get('created', '?')}); no candidate re-timed"

    def store(self, key: str, result: Mapping[str, Any], versions: Mapping[str, str], created: str) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        entry = {"format": FORMAT, "key": key, "created": created, "host": host_fingerprint(),
                 "versions": dict(versions), "result": dict(result)}
        path = self.path(key)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(entry, fh, indent=1, default=str)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path
