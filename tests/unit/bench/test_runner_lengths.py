"""bench over sequence lengths (``seq_lengths``, the CLI's --lengths): one row per batch × length on a real
bert_tiny engine in ONNX Runtime, tokens/s = samples/s × length, lengths checked against the engine's shape
profile before measuring, and a CNN's rows and table left as they were. No timing value is asserted."""

from __future__ import annotations

import csv
import json

import pytest

from tensorforge.bench.runner import BenchOptions, _length_shapes, bench
from tensorforge.engine.build import BuildOptions, build
from tensorforge.engine.runtime import Engine
from tensorforge.errors import ConfigError, InputError
from tensorforge.report.bench import CSV_FIELDS, LENGTH_FIELDS, bench_table, write_bench_csv

SHAPES = "input_ids:1x8,4x64,8x128"
QUICK = dict(warmup_s=0.0, rounds=2, iterations=2)


@pytest.fixture(scope="module")
def bert_engine(tmp_path_factory):
    path = tmp_path_factory.mktemp("len") / "bert_tiny.tfe"
    build("bert_tiny", path, BuildOptions(shapes=SHAPES))
    return path


def test_rows_for_every_batch_and_length(bert_engine, tmp_path):
    result = bench(bert_engine, BenchOptions(batches=(1, 4), seq_lengths=(16, 64, 128), **QUICK))
    assert [(r.batch, r.seq_len) for r in result.rows] == [(b, n) for b in (1, 4) for n in (16, 64, 128)]
    for r in result.rows:
        assert r.engine.throughput_sps > 0 and r.engine.iterations == 2
        assert r.tokens_per_s == pytest.approx(r.engine.throughput_sps * r.seq_len)
        assert {"p50_ms", "p90_ms", "p99_ms"} <= set(r.engine.latency)
    rows = json.loads(json.dumps(result.to_dict()))["rows"]
    assert [(r["seq_len"], r["tokens_per_s"] / r["engine"]["throughput_sps"]) for r in rows[:3]] == [
        (16, pytest.approx(16)), (64, pytest.approx(64)), (128, pytest.approx(128))]
    table = bench_table(result)
    assert table.columns[:4] == ["batch", "length", "perf (samples/s)", "tokens/s"]
    assert [row[:2] for row in table.rows] == [[str(b), str(n)] for b in (1, 4) for n in (16, 64, 128)]
    assert any("tokens/s = samples/s × length" in n for n in table.notes)
    with open(write_bench_csv(tmp_path / "o.csv", result), newline="") as fh:
        lines = list(csv.DictReader(fh))
    assert tuple(lines[0]) == CSV_FIELDS + LENGTH_FIELDS
    assert [int(x["seq_len"]) for x in lines] == [16, 64, 128] * 2
    assert all(float(x["tokens_per_s"]) == pytest.approx(float(x["throughput_sps"]) * int(x["seq_len"]))
               for x in lines)


def test_feeds_take_the_length_on_every_sequence_input(bert_engine):
    engine = Engine.load(bert_engine)
    profiles = list(engine.manifest.profiles)
    shapes = _length_shapes(engine.inputs, profiles, BenchOptions(batches=(1, 4), seq_lengths=(16, 128)), "bert",
                            profiles[0].shapes("opt"))
    assert set(shapes) == {16, 128}
    assert all(shape == (1, n) for n in (16, 128) for shape in shapes[n].values())
    assert set(shapes[16]) == {s.name for s in engine.inputs}           # input_ids, mask and token types alike


@pytest.mark.parametrize("lengths,batches,expected", [
    ((16, 256), (1,), r"`seq_lengths` 256 is outside the shape profile of .*input_ids 8\.\.128"),
    ((4,), (1,), r"`seq_lengths` 4 is outside .*input_ids 8\.\.128"),
    ((16,), (16,), r"batch 16 at `seq_lengths` 16 fits none of the shape profiles"),
])
def test_length_outside_the_profile_is_refused_before_measuring(bert_engine, lengths, batches, expected):
    with pytest.raises(InputError, match=expected):
        bench(bert_engine, BenchOptions(batches=batches, seq_lengths=lengths, **QUICK))


def test_options_and_models_without_a_sequence_axis(conv_bn_path):
    for bad in ((0,), (16, -1), (True,)):
        with pytest.raises(ConfigError, match="`seq_lengths` must be positive integers"):
            BenchOptions(seq_lengths=bad)
    assert BenchOptions(seq_lengths=64).seq_lengths == (64,)
    with pytest.raises(ConfigError, match="`seq_lengths` sweeps random token ids"):
        BenchOptions(seq_lengths=(16,), input_data="x.npy")
    with pytest.raises(InputError, match="`seq_lengths` needs a sequence model"):
        bench(conv_bn_path, BenchOptions(batches=(1,), seq_lengths=(16,), **QUICK))


def test_cnn_rows_and_table_unchanged_without_lengths(conv_bn_path, tmp_path):
    result = bench(conv_bn_path, BenchOptions(batches=(1, 2), **QUICK))
    assert all(r.seq_len is None and r.tokens_per_s is None for r in result.rows)
    assert all("seq_len" not in r and "tokens_per_s" not in r for r in result.to_dict()["rows"])
    table = bench_table(result)
    assert "length" not in table.columns and "tokens/s" not in table.columns
    assert table.columns[:2] == ["batch", "perf (samples/s)"]
    head = (tmp_path / "c.csv")
    write_bench_csv(head, result)
    assert head.read_text().splitlines()[0] == ",".join(CSV_FIELDS)
