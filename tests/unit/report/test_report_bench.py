"""The bench results' JSON, CSV and table schema (tensorforge.report.bench), on hand-made results: no model runs."""

from __future__ import annotations

import csv
import json

import pytest

from tensorforge.bench.runner import BenchResult, BenchRow
from tensorforge.core.timing import Measurement
from tensorforge.errors import InputError
from tensorforge.report.bench import (
    CSV_FIELDS,
    PRECISIONS_SCHEMA,
    bench_json,
    bench_table,
    csv_rows,
    write_bench_csv,
    write_bench_json,
)

LATENCY = {"min_ms": 1.0, "mean_ms": 1.5, "p50_ms": 1.4, "p90_ms": 1.8, "p95_ms": 1.9, "p99_ms": 2.5, "max_ms": 3.0}


def measurement(sps: float) -> Measurement:
    return Measurement(iterations=40, wall_s=2.0, throughput_sps=sps, latency=dict(LATENCY),
                       noise={"spread_pct": 2.5, "noisy": False})


def row(batch: int, *, streams: int = 1, baseline: bool = False, power_w: float | None = None) -> BenchRow:
    return BenchRow(batch=batch, engine=measurement(100.0 * batch), peak_rss_bytes=3 * 2**20,
                    estimated_bytes=2**20, power={}, power_w=power_w,
                    perf_per_watt=None if power_w is None else 100.0 * batch / power_w,
                    energy_j_per_sample=None if power_w is None else power_w / (100.0 * batch),
                    baseline=measurement(80.0 * batch) if baseline else None,
                    speedup_vs_baseline=1.25 if baseline else None, speedup_noise_pct=1.0 if baseline else None,
                    verdict_vs_baseline="faster" if baseline else None, streams=streams, threads=None)


def result(precision: str, rows: list[BenchRow], *, streams=(1,), warnings=()) -> BenchResult:
    return BenchResult(model={"name": "tiny", "precision": precision, "backend": "onnxruntime"},
                       options={"batches": [r.batch for r in rows], "streams": list(streams)},
                       host={"cpu_model": "Test CPU", "logical_cores": 2}, libraries={"onnxruntime": "x"},
                       power_source="no power sensor on this machine", rows=rows, warnings=list(warnings))


def test_one_result_is_its_own_json_several_are_wrapped(tmp_path):
    one = result("fp32", [row(1), row(8)])
    assert bench_json(one) == one.to_dict() and bench_json([one]) == one.to_dict()
    assert bench_json(one)["schema"] == "tensorforge.bench/1"
    two = [one, result("int8", [row(1)])]
    doc = bench_json(two)
    assert doc["schema"] == PRECISIONS_SCHEMA == "tensorforge.bench-precisions/1"
    assert [r["model"]["precision"] for r in doc["results"]] == ["fp32", "int8"]
    path = write_bench_json(tmp_path / "b.json", two)
    assert json.loads(path.read_text()) == json.loads(json.dumps(doc))


def test_json_rows_keep_their_field_names():
    doc = bench_json(result("fp32", [row(2, baseline=True)]))
    got = doc["rows"][0]
    assert {"batch", "engine", "peak_rss_bytes", "estimated_bytes", "power", "power_w", "perf_per_watt",
            "energy_j_per_sample", "baseline", "speedup_vs_baseline", "speedup_noise_pct", "verdict_vs_baseline",
            "streams", "threads"} == set(got)
    assert got["engine"]["throughput_sps"] == 200.0 and got["baseline"]["throughput_sps"] == 160.0


def test_csv_has_one_line_per_row_in_field_order(tmp_path):
    results = [result("fp32", [row(1, baseline=True), row(4, streams=2)]), result("fp16", [row(1)])]
    path = write_bench_csv(tmp_path / "b.csv", results)
    with open(path, newline="", encoding="utf-8") as fh:
        header, *lines = list(csv.reader(fh))
    assert tuple(header) == CSV_FIELDS
    assert header[:3] == ["precision", "batch", "throughput_sps"] and header[-2:] == ["streams", "threads"]
    assert [(line[0], line[1], line[-2]) for line in lines] == [("fp32", "1", "1"), ("fp32", "4", "2"),
                                                                 ("fp16", "1", "1")]
    first = dict(zip(header, lines[0]))
    assert first["baseline_throughput_sps"] == "80.0" and first["speedup_vs_baseline"] == "1.25"
    assert dict(zip(header, lines[1]))["baseline_throughput_sps"] == ""       # None is an empty cell
    assert all(len(values) == len(CSV_FIELDS) for values in csv_rows(results))


def test_table_of_one_precision():
    table = bench_table(result("fp32", [row(1), row(8)]))
    assert table.title == "tiny · FP32 · onnxruntime · Test CPU (2 cores)"
    assert table.columns[0] == "batch" and "streams" not in table.columns and "speedup" not in table.columns
    assert table.rows[1][:2] == ["8", "800.0"] and table.rows[0][-2] == "3.0 MiB"
    assert table.notes == ["power: n/a — no power sensor on this machine"]


def test_table_of_several_precisions_with_baseline_streams_and_warnings():
    results = [result("fp32", [row(1, baseline=True), row(1, streams=2, baseline=True)], streams=(1, 2),
                      warnings=["noisy"]),
               result("int8", [row(1, power_w=10.0)], warnings=["noisy", "random calibration"])]
    table = bench_table(results)
    assert table.columns[:3] == ["precision", "batch", "streams"]
    assert table.columns[-2:] == ["ORT (samples/s)", "speedup"]
    assert "FP32" not in table.title and [r[0] for r in table.rows] == ["FP32", "FP32", "INT8"]
    assert table.rows[0][-1] == "1.250× ±1.0% (faster)" and table.rows[2][-2:] == ["n/a", "n/a"]
    assert table.rows[2][4] == "10.00"                                # power (W) where a sensor read it
    assert not any(n.startswith("power: n/a") for n in table.notes)
    assert any(n.startswith("speedup: against bare ONNX Runtime") for n in table.notes)
    assert any("ORT runs the same streams" in n for n in table.notes)
    assert table.warnings == ["fp32: noisy", "int8: noisy", "int8: random calibration"]


@pytest.mark.parametrize("write", [bench_json, bench_table, csv_rows])
def test_no_results_is_a_clear_error(write):
    with pytest.raises(InputError, match="no bench results"):
        write([])


def test_the_bench_command_draws_this_report_with_its_flags(monkeypatch, capsys, tmp_path):
    """`tensorforge bench` only parses, calls bench_precisions and draws/writes this module's forms."""
    import tensorforge.bench.precisions as precisions
    from tensorforge.cli.main import main

    made = [result("fp32", [row(1)], warnings=["too noisy to trust; raise `duration_s`"])]
    calls = []

    def fake(target, wanted, options, progress=None):
        calls.append((target, tuple(wanted), options.batches, options.duration_s))
        return made

    monkeypatch.setattr(precisions, "bench_precisions", fake)
    js, cs = tmp_path / "b.json", tmp_path / "b.csv"
    assert main(["bench", "tiny", "--batch", "1", "--duration", "0.3", "--json", str(js), "--csv", str(cs)]) == 0
    assert calls == [("tiny", ("fp32",), (1,), 0.3)]
    out = capsys.readouterr().out
    assert "tiny · FP32 · onnxruntime" in out and "raise --duration" in out and "duration_s" not in out
    assert json.loads(js.read_text()) == json.loads(json.dumps(bench_json(made)))
    assert cs.read_text().splitlines()[0] == ",".join(CSV_FIELDS)
