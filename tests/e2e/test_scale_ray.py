"""Scale-out on a real Ray cluster: two nodes on loopback (head + worker, one CPU each), started once.

The Ray Serve deployment answers the stock tritonclient and raw KServe v2 JSON exactly as
``Session.run`` does (FP32 tolerance), with a 400 naming the problem for a bad shape; the Ray Data
offline job's outputs equal ``Session.run`` on the same rows. Skipped when Ray (the ``scale``
extra) is not installed.
"""

from __future__ import annotations

import socket

import numpy as np
import pytest

ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")
pytest.importorskip("ray.data")
pytest.importorskip("pyarrow")

import httpx  # noqa: E402
import tritonclient.http as th  # noqa: E402
from serve_testkit import build_engine  # noqa: E402

import tensorforge  # noqa: E402
from tensorforge.core.tolerances import tolerance  # noqa: E402
from tensorforge.scale import deploy, offline  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _close(got: np.ndarray, want: np.ndarray) -> None:
    err = float(np.max(np.abs(got - want)) / max(float(np.max(np.abs(want))), 1e-12))
    assert err <= tolerance("fp32", across_kernels=True), err


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    return build_engine("tiny_mlp", tmp_path_factory.mktemp("scale") / "tiny_mlp.tfe")


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    c.add_node(num_cpus=1)
    ray.init(address=c.address, logging_level="ERROR", log_to_driver=False)
    try:
        yield c
    finally:
        serve.shutdown()
        ray.shutdown()
        c.shutdown()


@pytest.fixture(scope="module")
def served(cluster, engine):
    # two replicas, at most one per node: each node runs one; the proxy on the head (both nodes share
    # this machine's ports). The replicas reserve no CPU: Ray Data's own metadata tasks need a whole
    # free CPU on a node, and the offline job's actors take one per node
    return deploy(engine, http_port=_free_port(), proxy_location="HeadOnly", num_replicas=2,
                  max_replicas_per_node=1, num_cpus=0, threads_per_instance=1, max_batch_size=8,
                  batch_wait_timeout_s=0.002)


@pytest.fixture(scope="module")
def session(engine):
    return tensorforge.load(engine, threads=1)


def test_replicas_spread_over_both_nodes(cluster, served):
    handle = serve.get_app_handle("tensorforge")
    nodes = {handle.describe.remote().result(timeout_s=30)["node_id"] for _ in range(24)}
    assert nodes == {n["NodeID"] for n in ray.nodes() if n["Alive"]} and len(nodes) == 2


def test_tritonclient_and_json_infer_equal_session_run(served, session):
    x = np.random.default_rng(0).standard_normal((5, 64)).astype(np.float32)
    want = session.run(x)["logits"]
    client = th.InferenceServerClient(served)
    assert client.is_server_live() and client.is_model_ready("tiny_mlp")
    for binary in (True, False):
        inp = th.InferInput("input", [5, 64], "FP32")
        inp.set_data_from_numpy(x, binary_data=binary)
        _close(client.infer("tiny_mlp", [inp]).as_numpy("logits"), want)
    r = httpx.post(f"http://{served}/v2/models/tiny_mlp/infer", json={"inputs": [
        {"name": "input", "shape": [5, 64], "datatype": "FP32", "data": x.ravel().tolist()}]})
    assert r.status_code == 200 and r.json()["model_name"] == "tiny_mlp"
    _close(np.asarray(r.json()["outputs"][0]["data"], np.float32).reshape(5, 10), want)


def test_bad_shape_is_a_400_naming_the_problem(served):
    r = httpx.post(f"http://{served}/v2/models/tiny_mlp/infer", json={"inputs": [
        {"name": "input", "shape": [2, 63], "datatype": "FP32", "data": [0.0] * 126}]})
    assert r.status_code == 400
    assert "input 'input' has shape [2, 63]" in r.json()["error"] and "axis 1 must be 64" in r.json()["error"]
    r = httpx.post(f"http://{served}/v2/models/tiny_mlp/infer", json={"inputs": [
        {"name": "x", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}]})
    assert r.status_code == 400 and "missing input(s) ['input']" in r.json()["error"]


def test_offline_job_equals_session_run(served, engine, session):
    x = np.random.default_rng(1).standard_normal((300, 64)).astype(np.float32)
    result = offline(engine, x, batch_size=32, concurrency=2, num_cpus=1)
    assert result.rows == 300 and result.samples_per_s > 0
    _close(result.outputs["logits"], session.run(x)["logits"])      # row order kept
    y = ray.data.from_numpy(x[:40])                                  # a Ray Dataset, its "data" column
    _close(offline(engine, y, batch_size=16, num_cpus=1).outputs["logits"], session.run(x[:40])["logits"])


def test_offline_files_on_ray_equal_in_process(cluster, served, engine, tmp_path, capsys):
    from tensorforge.api.offline import offline_files
    from tensorforge.cli.main import main

    rng = np.random.default_rng(2)
    (tmp_path / "in").mkdir()
    np.save(tmp_path / "in" / "a.npy", rng.standard_normal((70, 64)).astype(np.float32))
    np.savez(tmp_path / "in" / "b.npz", input=rng.standard_normal((9, 64)).astype(np.float32))
    local = offline_files(engine, tmp_path / "in", tmp_path / "local", batch_size=16)
    # the command line's --ray path, on this two-node cluster: two actors, one per node
    assert main(["offline", str(engine), "--input", str(tmp_path / "in"), "--output", str(tmp_path / "ray"),
                 "--ray", "--address", cluster.address, "--concurrency", "2", "--batch-size", "16"]) == 0
    assert "79 samples from 2 file(s)" in capsys.readouterr().out and local.samples == 79
    for stem in ("a", "b"):
        with np.load(tmp_path / "ray" / f"{stem}.npz") as got, np.load(tmp_path / "local" / f"{stem}.npz") as want:
            assert got.files == want.files == ["logits"]
            _close(got["logits"], want["logits"])


def test_serve_ray_deploy_path_answers_tritonclient(cluster, served, engine, session):
    # what `tensorforge serve ENGINE --ray --replicas auto` runs: the app is redeployed in place, autoscaled,
    # with the command's batcher settings in every replica (seen through the KServe model-config endpoint)
    from tensorforge.api.serve import serve_on_ray
    from tensorforge.serve import BatcherConfig, ModelConfig

    port = int(served.rsplit(":", 1)[1])
    config = ModelConfig(batcher=BatcherConfig(max_batch_size=4, max_queue_delay_ms=1.0), threads_per_instance=1)
    where = serve_on_ray(engine, address=cluster.address, replicas="auto", http_port=port,
                         proxy_location="HeadOnly", model_config=config, num_cpus=0)
    assert where == served
    client = th.InferenceServerClient(where)
    assert client.is_model_ready("tiny_mlp")
    assert client.get_model_config("tiny_mlp")["max_batch_size"] == 4
    x = np.random.default_rng(4).standard_normal((3, 64)).astype(np.float32)
    inp = th.InferInput("input", [3, 64], "FP32")
    inp.set_data_from_numpy(x)
    _close(client.infer("tiny_mlp", [inp]).as_numpy("logits"), session.run(x)["logits"])
