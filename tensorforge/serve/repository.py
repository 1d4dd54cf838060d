"""The model repository: which engines are served, under which names and versions; load/unload at run time.

Two sources, usable together:

* engine files given by path — served as model ``<file stem>``, version 1;
* a repository directory laid out like Triton's::

      DIR/<model>/config.json          optional: batcher and instance settings (see config.py)
      DIR/<model>/<version>/model.tfe  numeric versions; the version policy picks which are served

Loading builds every instance and starts a batcher *before* the model becomes visible;
reloading swaps the new versions in atomically and drains the old ones in the background,
so no in-flight request — of this model or any other — is dropped. Unloading removes the
model at once for new requests and lets its queued and running requests finish.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from ..core.profiles import ShapeProfile
from ..core.specs import TensorSpec
from ..engine.format import MODEL_PAYLOAD, read_engine
from ..engine.runtime import Engine
from ..errors import ConfigError, ModelNotFound, TensorForgeError
from .batch_curve import measure_at_load
from .batching import BatcherConfig, BatcherObserver, DynamicBatcher
from .config import ModelConfig
from .merge import Grouping, RowGrouping
from .padding import SequenceGrouping
from .text import TextInput
from .worker import Instance, ProcessInstance, ThreadInstance

ENGINE_FILE = "model.tfe"
CONFIG_FILE = "config.json"
ObserverFactory = Callable[[str, str], "BatcherObserver | None"]


@dataclass
class ModelVersion:
    """One loaded, servable version: its engine's IO specs, config, instances and batcher."""

    name: str
    version: str
    path: Path
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    config: ModelConfig
    batcher: DynamicBatcher
    instances: list[Instance]
    platform: str = "onnxruntime"
    observer: BatcherObserver | None = None     # the batcher's observer (the metrics of this version)
    profiles: tuple[ShapeProfile, ...] = ()     # the engine's shape profiles: a request must fit one
    grouping: Grouping = field(default_factory=RowGrouping)     # how its batcher merges requests
    text: TextInput | None = None               # the engine's tokenizer: the model also takes raw text (text.py)

    @property
    def batchable(self) -> bool:
        return all(not isinstance(s.shape[0], int) for s in self.inputs if s.shape)

    def close(self, drain: bool = True, timeout_s: float = 30.0) -> None:
        self.batcher.close(drain=drain, timeout_s=timeout_s)
        for instance in self.instances:
            instance.close()


@dataclass
class _Source:
    name: str
    versions: dict[int, Path]
    config_path: Path | None = None


@dataclass
class _State:
    state: str = "UNAVAILABLE"
    reason: str = ""
    versions: dict[str, ModelVersion] = field(default_factory=dict)


def load_version(name: str, version: str, path: Path, config: ModelConfig,
                 observer: BatcherObserver | None = None) -> ModelVersion:
    """Load one engine file into instances and a running batcher (the slow part of a load)."""
    manifest, payloads = read_engine(path)      # once: the model and any tokenizer payload
    engine = Engine(manifest, payloads[MODEL_PAYLOAD], path)
    text = TextInput.from_engine(str(path), manifest, payloads)
    batch_axis_static = [s for s in engine.inputs if s.shape and isinstance(s.shape[0], int)]
    batcher_config = config.batcher
    if batch_axis_static:        # no batch axis to merge along: one request per batch, as sent
        rows = int(batch_axis_static[0].shape[0])  # type: ignore[arg-type]
        batcher_config = replace(batcher_config, max_batch_size=rows, preferred_batch_sizes=(),
                                 max_queue_delay_ms=0.0)
    elif engine.max_batch is not None and batcher_config.max_batch_size > engine.max_batch:
        raise ConfigError(f"model {name!r}: max_batch_size {batcher_config.max_batch_size} exceeds the engine's "
                          f"max batch {engine.max_batch}; lower it or rebuild the engine with a larger max batch")
    profiles = tuple(engine.manifest.profiles)
    if not batch_axis_static:
        batcher_config = cap_to_profiles(batcher_config, profiles)
    grouping = grouping_for(name, engine, config, profiles) if not batch_axis_static else RowGrouping()
    threads = config.threads()
    instances: list[Instance] = []
    try:
        for _ in range(batcher_config.instances):
            if config.instance_kind == "process":
                instances.append(ProcessInstance(path, threads))
            else:
                instances.append(ThreadInstance(engine, threads))
    except BaseException:
        for inst in instances:
            inst.close()
        raise
    # with deadlines, plan from the first request on: time the batch sizes once now (refreshed live later)
    curve = None
    if batcher_config.default_deadline_ms() is not None and not batch_axis_static:
        try:
            curve = measure_at_load(instances[0].run, engine.inputs, batcher_config.max_batch_size)
        except BaseException:
            for inst in instances:
                inst.close()
            raise
    batcher = DynamicBatcher([inst.run for inst in instances], batcher_config, observer=observer,
                             name=f"{name}:{version}", grouping=grouping, curve=curve)
    backend = engine.manifest.backend.name
    return ModelVersion(name=name, version=version, path=path, inputs=engine.inputs, outputs=engine.outputs,
                        config=replace(config, batcher=batcher_config, threads_per_instance=threads),
                        batcher=batcher, instances=instances, platform=backend, observer=observer,
                        profiles=profiles, grouping=grouping, text=text)


def cap_to_profiles(batcher_config: BatcherConfig, profiles: Sequence[ShapeProfile]) -> BatcherConfig:
    """The batcher's max batch lowered to the smallest max batch of the profiles (a merged batch then fits
    any profile its requests fit), and its preferred sizes to those within it."""
    batches = [p.max[0] for prof in profiles for p in prof.inputs if p.max]
    cap = min(batches) if batches else None
    if cap is None or batcher_config.max_batch_size <= cap:
        return batcher_config
    return replace(batcher_config, max_batch_size=cap,
                   preferred_batch_sizes=tuple(b for b in batcher_config.preferred_batch_sizes if b <= cap))


def grouping_for(name: str, engine: Engine, config: ModelConfig, profiles: Sequence[ShapeProfile]) -> Grouping:
    """Padding by length buckets for a model with a masked sequence axis (padding.py); else rows of equal shape."""
    try:
        padded = SequenceGrouping.for_specs(engine.inputs, engine.outputs, profiles, buckets=config.sequence_buckets,
                                            max_waste=config.max_padding_waste)
    except ConfigError as exc:
        raise ConfigError(f"model {name!r}: {exc}") from exc
    if padded is not None:
        return padded
    if config.sequence_buckets is not None or config.max_padding_waste is not None:
        raise ConfigError(f"model {name!r}: sequence_buckets / max_padding_waste are set, but the model has no "
                          "sequence axis it can pad (a symbolic axis 1 shared with an attention mask input, and "
                          "a shape profile bounding it); remove them from its config")
    return RowGrouping()


class ModelRepository:
    """Named, versioned models; thread-safe; ``get`` is the hot path (one dict lookup under a lock)."""

    def __init__(self, engines: Sequence[str | os.PathLike[str]] = (), root: str | os.PathLike[str] | None = None,
                 *, base_config: ModelConfig | None = None, observer_factory: ObserverFactory | None = None) -> None:
        self.root = Path(root) if root is not None else None
        if self.root is not None and not self.root.is_dir():
            raise ConfigError(f"model repository {self.root} is not a directory")
        self.base_config = base_config or ModelConfig()
        self.observer_factory = observer_factory
        self._files: dict[str, Path] = {}
        for p in engines:
            path = Path(p)
            if not path.is_file():
                raise ConfigError(f"engine file {path} does not exist; build one with `tensorforge build`")
            if path.stem in self._files:
                raise ConfigError(f"two engine files are named {path.stem!r} ({self._files[path.stem]} and {path}); "
                                  "rename one — the file stem is the model name")
            self._files[path.stem] = path
        self._lock = threading.Lock()
        self._name_locks: dict[str, threading.Lock] = {}
        self._states: dict[str, _State] = {}
        self._retiring: list[threading.Thread] = []

    # -- discovery ----------------------------------------------------------------------------------
    def _sources(self) -> dict[str, _Source]:
        found: dict[str, _Source] = {name: _Source(name, {1: path}) for name, path in self._files.items()}
        if self.root is not None:
            for model_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
                versions = {int(v.name): v / ENGINE_FILE for v in model_dir.iterdir()
                            if v.is_dir() and v.name.isdigit() and (v / ENGINE_FILE).is_file()}
                config = model_dir / CONFIG_FILE
                if versions and model_dir.name not in found:
                    found[model_dir.name] = _Source(model_dir.name, versions, config if config.is_file() else None)
        return found

    def names(self) -> list[str]:
        return sorted(set(self._sources()) | set(self._states))

    # -- load / unload ------------------------------------------------------------------------------
    def load_all(self) -> None:
        for name in self._sources():
            self.load(name)

    def load(self, name: str, config_json: str | None = None) -> None:
        """Load (or reload) a model; on failure the previous versions keep serving and the reason is kept."""
        with self._lock:
            name_lock = self._name_locks.setdefault(name, threading.Lock())
        with name_lock:
            source = self._sources().get(name)
            if source is None:
                raise ModelNotFound(f"no model {name!r} in the repository; known: {self.names()}")
            try:
                config = self.base_config
                if source.config_path is not None:
                    config = ModelConfig.from_file(source.config_path, base=config)
                if config_json:
                    config = ModelConfig.from_json(config_json, f"load config for {name!r}", base=config)
                loaded = self._load_versions(source, config)
            except TensorForgeError as exc:
                with self._lock:
                    state = self._states.setdefault(name, _State())
                    state.reason = str(exc)
                    if not state.versions:
                        state.state = "UNAVAILABLE"
                raise
            with self._lock:
                state = self._states.setdefault(name, _State())
                old = state.versions
                state.versions, state.state, state.reason = loaded, "READY", ""
            self._retire(list(old.values()))

    def _load_versions(self, source: _Source, config: ModelConfig) -> dict[str, ModelVersion]:
        available = sorted(source.versions)
        policy = config.version_policy
        if policy == "latest":
            chosen = available[-1:]
        elif policy == "all":
            chosen = available
        else:
            wanted = [int(v) for v in policy]
            missing = sorted(set(wanted) - set(available))
            if missing:
                raise ConfigError(f"model {source.name!r}: version_policy asks for version(s) {missing}, "
                                  f"but the repository has {available}")
            chosen = wanted
        loaded: dict[str, ModelVersion] = {}
        try:
            for v in chosen:
                observer = self.observer_factory(source.name, str(v)) if self.observer_factory else None
                loaded[str(v)] = load_version(source.name, str(v), source.versions[v], config, observer)
        except BaseException:
            for mv in loaded.values():
                mv.close(drain=False)
            raise
        return loaded

    def unload(self, name: str) -> None:
        """Stop routing new requests to ``name``; its queued and running requests still complete."""
        with self._lock:
            state = self._states.get(name)
            if state is None or not state.versions:
                if name not in self._sources():
                    raise ModelNotFound(f"no model {name!r} in the repository; known: {self.names()}")
                return
            old = state.versions
            state.versions, state.state, state.reason = {}, "UNAVAILABLE", "unloaded"
        self._retire(list(old.values()))

    def _retire(self, versions: list[ModelVersion]) -> None:
        if not versions:
            return
        def close_all() -> None:
            for mv in versions:
                mv.close(drain=True)

        thread = threading.Thread(target=close_all, daemon=True, name="tf-retire")
        thread.start()
        with self._lock:
            self._retiring = [t for t in self._retiring if t.is_alive()] + [thread]

    # -- lookup ---------------------------------------------------------------------------------------
    def get(self, name: str, version: str | None = None) -> ModelVersion:
        with self._lock:
            state = self._states.get(name)
            versions = state.versions if state is not None else {}
        if not versions:
            reason = f" ({state.reason})" if state is not None and state.reason else ""
            raise ModelNotFound(f"model {name!r} is not loaded{reason}; loaded models: {self.loaded_names()}")
        if not version:
            return versions[max(versions, key=int)]
        try:
            return versions[version]
        except KeyError:
            raise ModelNotFound(f"model {name!r} has no loaded version {version!r}; loaded versions: "
                                f"{sorted(versions, key=int)}") from None

    def versions(self, name: str) -> list[str]:
        """Loaded versions of ``name``, oldest first (empty when it is not loaded)."""
        with self._lock:
            state = self._states.get(name)
            return sorted(state.versions, key=int) if state is not None else []

    def loaded_names(self) -> list[str]:
        with self._lock:
            return sorted(n for n, s in self._states.items() if s.versions)

    def loaded(self) -> list[ModelVersion]:
        with self._lock:
            return [mv for s in self._states.values() for mv in s.versions.values()]

    def index(self, ready_only: bool = False) -> list[dict[str, Any]]:
        """Triton's repository index: one entry per model (and per loaded version)."""
        out: list[dict[str, Any]] = []
        sources = self._sources()
        with self._lock:
            states = {n: (s.state, s.reason, sorted(s.versions, key=int)) for n, s in self._states.items()}
        for name in sorted(set(sources) | set(states)):
            state, reason, versions = states.get(name, ("UNAVAILABLE", "not loaded", []))
            if versions:
                out.extend({"name": name, "version": v, "state": "READY", "reason": ""} for v in versions)
            elif not ready_only:
                out.append({"name": name, "version": "", "state": state, "reason": reason})
        return out

    def close(self, drain: bool = True, timeout_s: float = 30.0) -> None:
        """Stop every model (draining queued work when asked) and wait for retiring ones."""
        with self._lock:
            everything = [mv for s in self._states.values() for mv in s.versions.values()]
            for s in self._states.values():
                s.versions, s.state, s.reason = {}, "UNAVAILABLE", "server stopped"
            retiring = list(self._retiring)
        closers = [threading.Thread(target=mv.close, args=(drain, timeout_s), daemon=True) for mv in everything]
        for t in closers:
            t.start()
        for t in closers + retiring:
            t.join(timeout_s + 5)
