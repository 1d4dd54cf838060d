"""The build's numerical check: the optimized graph against the original, on inputs the model
accepts (chosen by :mod:`.verify_inputs`), every output compared by :func:`tensorforge.core.reference.compare`
(its NaN/Inf policy included) at the FP32 tolerance, ``BuildOptions.rtol``.

A backend failure here is a :class:`~tensorforge.errors.BuildError` naming the stage, which model
failed (the original: the inputs or the import are at fault; the optimized: the passes are), the
node onnxruntime names, the input shapes, and what to try.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import onnx

from ..backends.base import SessionConfig
from ..backends.reference import reference_session
from ..backends.registry import get_backend
from ..core.reference import compare
from ..errors import BuildError
from .verify_inputs import VerifyFeeds, choose_feeds

__all__ = ["Verification", "verify_build"]


@dataclass(frozen=True)
class Verification:
    batch: int
    max_abs_err: float
    max_norm_err: float      # max |opt - ref| / max |ref|, per output, worst output
    tolerance: float
    passed: bool
    reference: str = "onnxruntime FP32, graph optimizations off, original model"     # what reference_session runs
    data: str = "random inputs, shapes from the model"
    nonfinite: dict[str, str] = field(default_factory=dict)   # output -> "k of n values NaN/Inf in the original"


def _shapes(feeds: Mapping[str, np.ndarray]) -> str:
    return ", ".join(f"{k}: {tuple(v.shape)} {v.dtype}" for k, v in feeds.items())


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _runs_before_upgrade(pre_upgrade: onnx.ModelProto | None, feeds: Mapping[str, np.ndarray]) -> bool:
    """Whether the model as given (before the opset upgrade) loads and runs on ``feeds``."""
    if pre_upgrade is None:
        return False
    try:
        session = reference_session(pre_upgrade.SerializeToString())
        session.run(dict(feeds))
    except Exception:  # noqa: BLE001 - any failure means the upgrade is not the (only) cause
        return False
    return True


def _failure(which: str, exc: Exception, chosen: VerifyFeeds, feeds: Mapping[str, np.ndarray],
             pre_upgrade: onnx.ModelProto | None, loading: bool = False) -> BuildError:
    cause = " ".join(str(exc).split())[:600]
    if which == "original" and _runs_before_upgrade(pre_upgrade, feeds):
        assert pre_upgrade is not None
        return BuildError(f"opset upgrade: the model runs at its opset {_opset(pre_upgrade)} but fails after the "
                          f"upgrade to opset 13 ({cause}); the upgrade is the cause: re-export the model at opset "
                          "13 or newer, and please report it")
    if loading:
        hint = ("it uses an op, attribute or type this onnxruntime cannot load (named above), so no engine on it "
                "can run the model" if which == "original" else
                "the original loads but the optimized graph does not: rebuild with pipeline='none' to skip the "
                "graph passes, and please report the model")
        if which == "original" and pre_upgrade is not None:
            hint += (f"; the model was upgraded from opset {_opset(pre_upgrade)} to 13 for the build, which may be "
                     "the cause: re-export it at opset 13 or newer")
        return BuildError(f"verification: onnxruntime cannot load the {which} model: {cause}; {hint}")
    if which == "original":
        if chosen.data.startswith("random"):
            hint = ("the made-up inputs may not fit the model: pass sample inputs with verify_data='inputs.npz' "
                    "(arrays named after the inputs), or build with verify=False")
        else:
            hint = "the original model fails on these inputs: check them against the model's inputs"
        if pre_upgrade is not None:
            hint += (f"; the model was upgraded from opset {_opset(pre_upgrade)} to 13 for the build, which may be "
                     "the cause: re-export it at opset 13 or newer")
    else:
        hint = ("the original runs but the optimized graph fails: rebuild with pipeline='none' to skip the "
                "graph passes, and please report the model")
    return BuildError(f"verification: onnxruntime failed running the {which} model on {chosen.data} "
                      f"({_shapes(feeds)}): {cause}; {hint}")


def _run(session: Any, feeds: Mapping[str, np.ndarray], which: str, chosen: VerifyFeeds,
         pre_upgrade: onnx.ModelProto | None) -> list[np.ndarray]:
    try:
        return list(session.run(dict(feeds)))
    except Exception as exc:  # noqa: BLE001 - backends raise their own types; name the stage here
        raise _failure(which, exc, chosen, feeds, pre_upgrade) from exc


def _session(create: Callable[[], Any], which: str, chosen: VerifyFeeds, pre_upgrade: onnx.ModelProto | None) -> Any:
    try:
        return create()
    except Exception as exc:  # noqa: BLE001 - ModelError from the backend: add the stage and the cause
        raise _failure(which, exc, chosen, chosen.feeds, pre_upgrade, loading=True) from exc


def verify_build(reference: onnx.ModelProto, ref_batch: int | str | None, payload: bytes, options: Any,
                 model_path: Path | None = None, pre_upgrade: onnx.ModelProto | None = None,
                 shapes: Mapping[str, tuple[int, ...]] | None = None) -> Verification:
    """Run original and optimized on the same inputs; compare every output.

    When the original has a fixed batch (e.g. 1) and the build changed it, the original
    runs chunk by chunk on the same rows of the batch inputs, so the check also proves the
    batch rewrite. ``options`` is the build's BuildOptions; ``pre_upgrade``, the model before its
    opset upgrade, lets a failure of the original be blamed on the upgrade when that is the cause.
    ``shapes``: verify at these input shapes (a shape profile's min, opt or max) on random inputs.
    """
    chosen = choose_feeds(reference, onnx.load_from_string(payload), verify_data=options.verify_data,
                          model_path=model_path, batch=options.batch, verify_batch=options.verify_batch,
                          max_batch=options.max_batch, seed=options.seed, shapes=shapes)
    feeds, batch = chosen.feeds, chosen.batch
    ref_session = _session(lambda: reference_session(reference.SerializeToString(), options.threads), "original",
                           chosen, pre_upgrade)
    chunk = ref_batch if isinstance(ref_batch, int) and ref_batch > 0 and chosen.batch_names else batch
    chunk = chunk or 1
    if batch % chunk:
        raise BuildError(f"cannot verify: batch {batch} is not a multiple of the original batch {chunk}; "
                         f"give batch (or verify_batch) as a multiple of {chunk}")
    parts = []
    for i in range(0, max(batch, 1), chunk):
        part = {k: v[i:i + chunk] if k in chosen.batch_names else v for k, v in feeds.items()}
        parts.append(_run(ref_session, part, "original", chosen, pre_upgrade))
    want = [np.concatenate([p[j] for p in parts], axis=0) if len(parts) > 1 else parts[0][j]
            for j in range(len(parts[0]))]
    ort, config = get_backend("onnxruntime"), SessionConfig("cpu", options.threads)
    opt_session = _session(lambda: ort.create_session(payload, config), "optimized", chosen, None)
    got = _run(opt_session, feeds, "optimized", chosen, None)
    result = compare(got, want, names=[o.name for o in reference.graph.output])
    return Verification(batch=batch, max_abs_err=result.max_abs, max_norm_err=result.max_norm, tolerance=options.rtol,
                        passed=result.within(options.rtol), data=chosen.data,
                        nonfinite=result.nonfinite("the original"))
