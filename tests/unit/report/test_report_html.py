"""The HTML report (tensorforge.report.html / loaders / seed_figures) on results built from the real result
dataclasses (their own ``to_dict``): kinds are told from content, the page is self-contained, every section
and plot is there, unknown JSON is refused naming the file. No model runs, no browser."""

from __future__ import annotations

import json
import re

import pytest

from tensorforge.bench.accuracy import AccuracyTable, PrecisionColumn
from tensorforge.bench.profile import LayerTime, ProfileResult
from tensorforge.bench.runner import BenchResult, BenchRow
from tensorforge.cli.main import main
from tensorforge.core.timing import Measurement
from tensorforge.errors import InputError
from tensorforge.loadgen.findmax import Probe
from tensorforge.report import plots
from tensorforge.report.bench import bench_json
from tensorforge.report.html import render_report, write_report
from tensorforge.report.loaders import load_file, load_results
from tensorforge.report.seed_figures import FIGURES, SOURCE, model_key, reference
from tensorforge.tune.front import Point
from tensorforge.tune.search import CandidateResult, TuneResult
from tensorforge.tune.space import Candidate

LATENCY = {"min_ms": 1.0, "mean_ms": 1.5, "p50_ms": 1.4, "p90_ms": 1.8, "p95_ms": 1.9, "p99_ms": 2.5, "max_ms": 3.0}
HOST_A = {"cpu_model": "Test CPU A", "isa_flags": ["avx2", "fma"], "logical_cores": 2, "machine": "x86_64", "gpus": []}
HOST_B = {"cpu_model": "Test CPU B", "isa_flags": ["avx512f", "amx_tile"], "logical_cores": 8, "machine": "x86_64",
          "gpus": []}


def bench_result(name: str, precision: str, host: dict, sps: float, batches=(1, 8), power_w=None) -> BenchResult:
    def row(b: int) -> BenchRow:
        m = Measurement(iterations=40, wall_s=2.0, throughput_sps=sps * b, latency=dict(LATENCY),
                        noise={"spread_pct": 2.5, "noisy": False})
        return BenchRow(batch=b, engine=m, peak_rss_bytes=2**20, estimated_bytes=2**20,
                        power={} if power_w else {"unavailable": "no sensor here"}, power_w=power_w,
                        perf_per_watt=sps * b / power_w if power_w else None, energy_j_per_sample=None,
                        baseline=None, speedup_vs_baseline=None, speedup_noise_pct=None, verdict_vs_baseline=None,
                        streams=1, threads=None)
    return BenchResult(model={"name": name, "precision": precision, "backend": "onnxruntime"},
                       options={"batches": list(batches), "streams": [1]}, host=host, libraries={},
                       power_source="no power sensor on this machine", rows=[row(b) for b in batches], warnings=[])


def accuracy_doc() -> dict:
    cols = [PrecisionColumn(precision=p, shipped=p, top1_pct=t, top5_pct=99.0, top1_delta_pts=t - 97.0,
                            top5_delta_pts=0.0, cosine_mean=0.999, cosine_min=0.99, rel_err_mean=0.01,
                            throughput_sps=1000.0 * s, speedup_vs_fp32=s)
            for p, t, s in (("fp32", 97.0, 1.0), ("fp16", 97.0, 1.2), ("int8", 96.5, 1.9))]
    return AccuracyTable(model="mnist_cnn", dataset="mnist5k", split="test", samples=1000, kind="classifier",
                         batch=8, budget=None, columns=cols, host=HOST_A).to_dict()


def profile_doc() -> dict:
    layers = tuple(LayerTime(name=f"conv{i}", onnx_nodes=(f"conv{i}",), op_type="Conv", kernel="Conv",
                             precision="int8" if i % 2 else "fp32", time_ms=1.0 / (i + 1), share_pct=10.0,
                             mapped=True, backend_name=f"conv{i}") for i in range(4))
    return ProfileResult(engine="tiny", engine_precision="int8", backend="onnxruntime", device="cpu", batch=1, runs=5,
                         warmup=1, statistic="median", run_ms=3.0, layers_total_ms=2.1, coverage_pct=70.0,
                         layers=layers, precision_summary={"int8": 60.0, "fp32": 40.0}).to_dict()


def tune_result() -> TuneResult:
    rows = (CandidateResult(Candidate("onnxruntime"), status="winner", throughput_sps=900.0, p50_ms=1.1, ratio=1.0),
            CandidateResult(Candidate("openvino", options={"performance_hint": "latency"}), status="slower",
                            throughput_sps=700.0, p50_ms=1.4, ratio=0.78, noise_pct=3.0, reason="slower in its duel"))
    return TuneResult(objective="latency", batch=1, device="cpu", precision="fp32", winner=rows[0].candidate,
                      candidates=rows, speedup_vs_first=1.0, elapsed_s=4.0)


def optimize_doc() -> dict:
    pts = [Point(name=n, variant=n, backend="onnxruntime", precision=p, options={}, loss=loss, speedup=s,
                 throughput_sps=1000 * s, status=st)
           for n, p, loss, s, st in (("fp32", "fp32", 0.0, 1.0, "front"), ("int8 pc", "int8", 0.4, 2.1, "chosen"),
                                     ("int8 pt", "int8", 0.9, 1.9, "dominated"))]
    return {"objective": "latency", "batch": 1, "accuracy_known": True, "accuracy_data": "mnist5k",
            "loss_metric": "top-1 drop (points)", "budget": "top-1 drop <= 1.0 points", "precision": "int8",
            "chosen": pts[1].to_dict(), "front": ["int8 pc @onnxruntime", "fp32 @onnxruntime"],
            "points": [p.to_dict() for p in pts], "notes": []}


@pytest.fixture
def results(tmp_path):
    """One file of each kind, as the commands write them, plus a second machine's bench of googlenet."""
    d = tmp_path / "results"
    (d / "lt").mkdir(parents=True)
    (d / "bench_a.json").write_text(json.dumps(bench_json([bench_result("googlenet", "fp32", HOST_A, 40.0),
                                                           bench_result("googlenet", "int8", HOST_A, 90.0)])))
    (d / "bench_b.json").write_text(json.dumps(bench_json(bench_result("googlenet", "fp32", HOST_B, 150.0,
                                                                       power_w=120.0))))
    (d / "acc.json").write_text(json.dumps(accuracy_doc()))
    (d / "prof.json").write_text(json.dumps(profile_doc()))
    (d / "build.json").write_text(json.dumps({"name": "tiny", "passes": [], "tuning": tune_result().to_dict(),
                                              "optimization": optimize_doc()}))
    probes = [Probe(q, q < 300, 2.0 + q / 50, q * 0.99, ()) for q in (100.0, 200.0, 400.0)]
    (d / "lt" / "results.jsonl").write_text("".join(
        json.dumps({"config": "tiny mbs=8", "kind": "probe", "latency_bound_ms": 10.0, **p.to_dict()}) + "\n"
        for p in probes))
    (d / "notes.json").write_text(json.dumps({"what": "something else"}))
    return d


def test_kinds_are_told_from_content(results):
    loaded = load_results([results])
    kinds = sorted((i.kind, i.path.name) for i in loaded.items)
    assert kinds == [("accuracy", "acc.json"), ("bench", "bench_a.json"), ("bench", "bench_a.json"),
                     ("bench", "bench_b.json"), ("loadtest", "results.jsonl"), ("optimize", "build.json"),
                     ("profile", "prof.json"), ("tune", "build.json")]
    assert [p.name for p, _ in loaded.skipped] == ["notes.json"]       # a folder's unknown file is skipped


def test_a_named_file_of_no_known_kind_is_refused_naming_it(results, tmp_path):
    with pytest.raises(InputError, match=r"notes\.json: a JSON of no known kind"):
        load_results([results / "notes.json"])
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="broken.json: not a JSON file"):
        load_file(bad)
    with pytest.raises(InputError, match="missing.json: no such file"):
        load_results([tmp_path / "missing.json"])
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "x.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="no result of a known kind"):
        load_results([empty])


@pytest.mark.skipif(not plots.available(), reason="matplotlib is not installed")
def test_page_is_self_contained_with_every_section_and_plot(results):
    page = render_report(load_results([results]), title="Two <machines>")
    assert "<title>Two &lt;machines&gt;</title>" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)     # nothing to fetch
    assert "<script" not in page.lower() and "<link" not in page.lower() and "@import" not in page
    sections = re.findall(r'data-section="([a-z]+)"', page)
    assert sections == ["machines", "bench", "comparison", "accuracy", "optimize", "tune", "profile", "loadtest"]
    figures = dict(re.findall(r'data-plot="([^"]+)" data-points="(\d+)">\s*<svg', page))
    assert figures == {"throughput-vs-batch": "6", "latency-vs-batch": "6", "pareto-0": "3", "tune-0": "2",
                       "profile-0": "4", "latency-vs-load": "3"}
    assert page.count("<svg") == 6 and "<?xml" not in page and "<!DOCTYPE svg" not in page
    ids = re.findall(r'<svg.*?</svg>', page, re.S)
    defined = [i for svg in ids for i in re.findall(r'\bid="([^"]+)"', svg)]
    assert len(defined) == len(set(defined))                     # several inline SVGs never share an id


def test_bench_tables_say_power_unavailable_and_show_perf_per_watt(results):
    page = render_report(load_results([results]), draw=False)
    assert page.count('data-table="bench"') == 3
    assert "unavailable" in page and "power: unavailable — no sensor here" in page
    assert ">1.25<" in page                   # 150 samples/s at 120 W on machine B, batch 1
    assert "pip install &#x27;tensorforge[loadgen]&#x27;" in page and "<svg" not in page


def test_comparison_has_a_column_per_machine_and_the_whitepaper(results):
    page = render_report(load_results([results]), draw=False)
    comp = re.search(r'data-table="comparison".*?</table>', page, re.S).group(0)
    assert "H1 (samples/s)" in comp and "H2 (samples/s)" in comp
    assert "whitepaper Tesla V100 (FP16)" in comp and "whitepaper Tesla P4 (INT8)" in comp
    row = re.search(r"<tr><td>googlenet</td><td>FP32</td><td class=num>8</td>(.*?)</tr>", comp).group(1)
    cells = re.findall(r">([^<]*)</td>", row)
    assert cells[:2] == ["320.0", "1,200.0"] and "3,776" in cells      # V100 GoogLeNet batch 8: 3,776 img/s
    assert SOURCE.split(" (")[0] in page


def test_one_machine_and_no_published_model_has_no_comparison(tmp_path):
    f = tmp_path / "b.json"
    f.write_text(json.dumps(bench_json(bench_result("tiny_mlp", "fp32", HOST_A, 1000.0))))
    page = render_report(load_results([f]), draw=False)
    assert 'data-section="comparison"' not in page and 'data-section="bench"' in page


def test_seed_figures_match_the_whitepaper_tables():
    assert model_key("ResNet-50") == model_key("resnet50.tfe") == "resnet50"
    v100 = {f.device: f for f in reference("resnet50", 128)}
    assert v100["Tesla V100"].throughput_sps == 6024 and v100["Tesla V100"].latency_ms == 21.25
    assert v100["Tesla P4"].precision == "int8" and v100["Tesla P4"].perf_per_watt == 52.31
    assert reference("alexnet", 1)[0].device.startswith("Jetson") and reference("mobilenet_v2", 1) == []
    assert len({(f.device, f.network, f.batch) for f in FIGURES}) == len(FIGURES) == 108


def test_cli_writes_the_page_and_bad_paths_are_one_line(results, tmp_path, capsys):
    out = tmp_path / "report.html"
    assert main(["report", str(results), "-o", str(out), "--title", "t"]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert "1 file(s) of no known kind skipped" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "nope.json"), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nope.json: no such file or folder" in err
    assert main(["report", str(results / "notes.json"), "-o", str(out)]) == 2
    assert "notes.json: a JSON of no known kind" in capsys.readouterr().err
    assert main(["report", str(results), "-o", str(tmp_path / "missing" / "r.html")]) == 2
    assert "-o" in capsys.readouterr().err


def test_help_has_an_example(capsys):
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    text = capsys.readouterr().out
    assert "tensorforge report r50.json lt/ -o report.html" in text and "self-contained" in text


def test_write_report_returns_the_path(results, tmp_path):
    path = write_report([results / "prof.json"], tmp_path / "p.html", draw=False)
    assert path.exists() and 'data-table="profile" data-rows="4"' in path.read_text()
