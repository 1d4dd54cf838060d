"""The in-process target batches a sequence model the way the server does: requests of different
lengths share a batch (padded, cut back), each getting what the engine computes for it alone; the
load generator's length distributions (loadgen/lengths.py) make those requests."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tensorforge.core.reference import compare
from tensorforge.core.tolerances import tolerance
from tensorforge.engine.build import BuildOptions, build
from tensorforge.engine.runtime import Engine
from tensorforge.errors import InputError
from tensorforge.loadgen.lengths import draw_lengths, length_samples
from tensorforge.loadgen.targets import BatcherTarget
from tensorforge.serve.batching import BatcherConfig
from tensorforge.serve.merge import RowGrouping
from tensorforge.serve.padding import SequenceGrouping

SHAPES = "input_ids:1x8,4x64,4x128"
LENGTHS = (70, 97, 128)           # one default bucket (64, 128]: they may share a batch
OUTPUTS = ("last_hidden_state", "pooler_output")


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    path = tmp_path_factory.mktemp("grouping") / "bert.tfe"
    build("bert_tiny", path, BuildOptions(shapes=SHAPES))
    return Engine.load(path)


def _run_batched(target: BatcherTarget, requests: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """Issue every request, wait (on an event, no clock) until all are done; their outputs in order."""
    results: dict[int, dict[str, np.ndarray]] = {}
    errors: list[BaseException] = []
    all_done = threading.Event()
    lock = threading.Lock()

    def done(tag, error, outputs):
        with lock:
            if error is not None:
                errors.append(error)
            else:
                results[tag] = dict(outputs)
            if len(results) + len(errors) == len(requests):
                all_done.set()

    for tag, feeds in enumerate(requests):
        target.issue(tag, 1, done, feeds)
    assert all_done.wait(120), "the batcher never finished the requests"
    assert not errors, errors
    return [results[i] for i in range(len(requests))]


def test_different_lengths_share_one_batch_and_each_equals_running_alone(engine):
    # the batch goes only when full: three requests of three lengths, one batch of 3 (no timing involved)
    config = BatcherConfig(max_batch_size=8, preferred_batch_sizes=(3,), max_queue_delay_ms=60_000,
                           idle_dispatch=False)
    target = BatcherTarget.from_engine(engine, config, threads=1)
    try:
        assert isinstance(target.grouping, SequenceGrouping)            # the server's choice for this model
        assert target.max_batch == 4                                    # capped to the profile's max batch
        samples = length_samples("fixed:8", engine.inputs, engine.manifest.profiles)
        requests = [samples.request(1, n, seed=n) for n in LENGTHS]
        outputs = _run_batched(target, requests)
        assert target.batcher_stats()["batch_sizes"][3]["count"] == 1
        pad = target.padding_stats()
        assert pad is not None and pad["real_tokens"] == sum(LENGTHS)
        assert pad["padding_tokens"] == 3 * max(LENGTHS) - sum(LENGTHS)
    finally:
        target.close()
    alone_target = BatcherTarget.from_engine(engine, BatcherConfig(max_batch_size=1), threads=1)
    try:
        for n, feeds, got in zip(LENGTHS, requests, outputs):
            want = _run_batched(alone_target, [feeds])[0]
            assert got["last_hidden_state"].shape == (1, n, 128) and got["pooler_output"].shape == (1, 128)
            c = compare([got[k] for k in OUTPUTS], [want[k] for k in OUTPUTS], OUTPUTS)
            assert c.within(tolerance("fp32")), f"length {n}: {c.describe()}"
    finally:
        alone_target.close()


def test_pad_to_max_requests_go_through_row_grouping_unpadded(engine):
    samples = length_samples("uniform:8-40", engine.inputs, engine.manifest.profiles, pad_to="max", count=16)
    assert samples.pad_to == 128 and 0 < samples.padding_waste() < 1
    target = BatcherTarget.from_engine(engine, BatcherConfig(max_batch_size=4), threads=1, inputs=samples,
                                       grouping=RowGrouping())
    try:
        assert target.padding_stats() is None and target.describe()["grouping"] == "RowGrouping"
        target.prepare([1])
        feeds = target._payloads[1]
        assert {f["input_ids"].shape for f in feeds} == {(1, 128)}
        assert sorted(int(f["attention_mask"].sum()) for f in feeds) == sorted(samples.lengths.tolist())
    finally:
        target.close()


def test_length_distributions_are_clipped_to_the_profile_and_bad_ones_name_the_parameter(engine):
    assert set(draw_lengths("fixed:300", 5, 8, 128)) == {128}
    u = draw_lengths("uniform:1-20", 500, 8, 128, seed=1)
    assert u.min() == 8 and u.max() == 20
    logn = draw_lengths("lognormal:48,0.7", 2000, 8, 128, seed=2)
    assert 40 <= np.median(logn) <= 56 and logn.max() == 128
    s = length_samples("uniform:10-12", engine.inputs, engine.manifest.profiles, count=8)
    shapes = {f["input_ids"].shape[1] for f in s.feeds(2)}
    assert shapes <= {10, 11, 12} and all(f["input_ids"].shape[0] == 2 for f in s.feeds(2))
    for bad in ("gauss:3", "uniform:9-3", "lognormal:48", "fixed:x"):
        with pytest.raises(InputError, match="`lengths`"):
            draw_lengths(bad, 4, 8, 128)
