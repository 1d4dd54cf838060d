"""``loadtest``: MLPerf-style load tests (single-stream, multi-stream, server, offline) on one or more targets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = ["loadtest"]


def loadtest(targets: str | Sequence[Any], options: Any = None, *, max_batch_sizes: Sequence[int] = (),
             max_queue_delays_ms: Sequence[float] = (), instances: int | None = None, queue_size: int | None = None,
             outdir: str | os.PathLike[str] | None = None, plot: bool = False,
             progress: Callable[[str], None] | None = None) -> Any:
    """Run the load test ``options`` describes on every target; a :class:`~tensorforge.loadgen.plan.LoadtestReport`.

    ``targets``: engine files, ONNX files, zoo names, ``noop``, ``sleep:5ms`` or server URLs
    (``http://…``, ``grpc://…``, with ``options.model``), or ready
    :class:`~tensorforge.loadgen.plan.TargetConfig` objects. In-process targets run behind the
    server's dynamic batcher: one configuration per ``max_batch_sizes`` × ``max_queue_delays_ms``,
    with ``instances`` and ``queue_size``. ``options`` is a
    :class:`~tensorforge.loadgen.plan.LoadtestOptions` (default: single-stream, 5 s).
    With ``outdir`` the report is also written there (``results.json``, ``.hgrm`` files,
    with ``plot`` the latency-vs-load PNG); MLPerf LoadGen logs go under it too."""
    from ..loadgen.plan import LoadtestOptions, TargetConfig, target_configs
    from ..loadgen.plan import loadtest as run_plan
    from ..loadgen.results import write_report
    from ..loadgen.scenarios import ScenarioSettings

    if isinstance(targets, (str, TargetConfig)):
        targets = [targets]
    options = options or LoadtestOptions(settings=ScenarioSettings())
    specs = [t for t in targets if not isinstance(t, TargetConfig)]
    configs = [t for t in targets if isinstance(t, TargetConfig)]
    if specs or not configs:
        configs += target_configs(specs, max_batch_sizes, max_queue_delays_ms, instances=instances,
                                  max_queue_size=queue_size)
    report = run_plan(configs, options, progress=progress,
                      outdir=Path(outdir) if outdir is not None else Path("loadtest-results"))
    if outdir is not None:
        write_report(report, outdir, plot=plot)
    return report
