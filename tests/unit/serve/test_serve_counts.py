"""Every request is counted once, in its batcher; the statistics and the Prometheus counters read that store."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from tensorforge.serve.batching import BatcherConfig, DynamicBatcher

pytest.importorskip("prometheus_client")

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from tensorforge.serve.core import ServingCore  # noqa: E402
from tensorforge.serve.metrics import OUTCOMES, ServerMetrics, outcome_counts  # noqa: E402


def _requests_total(metrics: ServerMetrics) -> dict[str, float]:
    families = {f.name: f for f in text_string_to_metric_families(metrics.text().decode())}
    return {s.labels["outcome"]: s.value for s in families["tensorforge_requests"].samples
            if s.name == "tensorforge_requests_total"}


def test_statistics_and_metrics_read_one_store():
    with DynamicBatcher(lambda inputs: {"y": inputs["x"]}, BatcherConfig(max_batch_size=4)) as batcher:
        mv = SimpleNamespace(name="m", version="1", batcher=batcher, observer=None, instances=[])
        metrics = ServerMetrics(lambda: [mv])
        core = ServingCore(repository=None, metrics=metrics, config=None)  # type: ignore[arg-type]
        for _ in range(3):
            batcher.submit({"x": np.ones((1, 2), np.float32)}).result(timeout=5)
        core.succeeded(mv, 0.001)
        core.succeeded(mv, 0.002)
        core.client_gone(mv)               # the third ran, but its client had left
        core.bad_request(mv)
        stats = core._model_stats(mv)
        counted = _requests_total(metrics)
    assert set(counted) == set(OUTCOMES)
    assert counted == outcome_counts(batcher.stats())
    assert counted["success"] == stats["inference_stats"]["success"]["count"] == 2
    assert stats["inference_stats"]["success"]["ns"] == 3_000_000
    assert counted["bad_request"] == stats["tensorforge"]["bad_request"] == 1
    assert counted["cancelled"] == stats["tensorforge"]["cancelled"] == 1
    assert stats["inference_stats"]["fail"]["count"] == sum(v for k, v in counted.items() if k != "success") == 2
    assert stats["execution_count"] == batcher.stats()["batches"]
