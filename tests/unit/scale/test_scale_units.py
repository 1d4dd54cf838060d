"""tensorforge.scale without a Ray cluster: settings, the engine blob, the Ray Data actor and the
replica's KServe ASGI app, each driven directly (the Ray-backed paths are tests/e2e/test_scale_ray.py)."""

from __future__ import annotations

import asyncio
import importlib.util
import json

import numpy as np
import pytest

import tensorforge
from tensorforge.core.tolerances import tolerance
from tensorforge.errors import BackendUnavailable, ConfigError, EngineFileError, InputError
from tensorforge.scale.blob import EngineBlob, require_ray
from tensorforge.scale.offline import ROW, EngineActor, OfflineResult, as_columns
from tensorforge.scale.online import KServeReplica, ProxiedApp, ReplicaSettings
from tensorforge.serve.config import ModelConfig


@pytest.fixture(scope="module")
def mlp_engine(tmp_path_factory):
    from tensorforge.engine.build import build

    out = tmp_path_factory.mktemp("scale") / "tiny_mlp.tfe"
    build("tiny_mlp", out)
    return out


def _close(got: np.ndarray, want: np.ndarray) -> None:
    err = float(np.max(np.abs(got - want)) / max(float(np.max(np.abs(want))), 1e-12))
    assert err <= tolerance("fp32", across_kernels=True), err


def test_replica_settings_become_a_model_config():
    cfg = ReplicaSettings(max_batch_size=16, batch_wait_timeout_s=0.002, instances=2, preferred_batch_sizes=(8,),
                          extra={"instance_kind": "thread"}).model_config()
    assert cfg["max_queue_delay_ms"] == pytest.approx(2.0) and "batch_wait_timeout_s" not in cfg
    assert "threads_per_instance" not in cfg           # None: the replica derives it from its CPUs
    mc = ModelConfig.from_dict(cfg)
    assert mc.batcher.max_batch_size == 16 and mc.batcher.instances == 2 and mc.batcher.preferred_batch_sizes == (8,)
    with pytest.raises(ConfigError, match="unknown"):
        ModelConfig.from_dict(ReplicaSettings(extra={"bogus": 1}).model_config())


def test_engine_blob_is_checked_bytes(mlp_engine, tmp_path):
    blob = EngineBlob.read(mlp_engine)
    assert blob.name == "tiny_mlp" and blob.data == mlp_engine.read_bytes() and len(blob.sha256) == 64
    assert EngineBlob.read(blob, "other").name == "other"
    path = blob.materialize(tmp_path)
    assert path.name == "tiny_mlp.tfe" and blob.load().name == tensorforge.Engine.load(mlp_engine).name
    bad = tmp_path / "bad.tfe"
    bad.write_bytes(b"not a zip")
    with pytest.raises(EngineFileError, match="not a TensorForge engine"):
        EngineBlob.read(bad)


def test_require_ray_names_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name.startswith("ray") else real(name))
    with pytest.raises(BackendUnavailable, match=r"tensorforge\[scale\]"):
        require_ray("serve")


def test_engine_actor_equals_the_session(mlp_engine):
    blob = EngineBlob.read(mlp_engine)
    actor = EngineActor(blob.name, blob.data, threads=1)
    x = np.random.default_rng(0).standard_normal((37, 64)).astype(np.float32)
    want = tensorforge.load(mlp_engine, threads=1).run(x)["logits"]
    _close(actor({"input": x})["logits"], want)
    _close(actor({"data": x})["logits"], want)             # ray.data.from_numpy's column feeds a one-input engine
    rows = np.arange(37)[::-1].copy()                       # the row index rides along, untouched
    out = actor({"input": x, ROW: rows})
    assert (out[ROW] == rows).all() and set(out) == {"logits", ROW}
    actor.limit = 10                                        # a fixed batch of 10: 37 rows do not split
    with pytest.raises(InputError, match="multiple of 10"):
        actor({"input": x})
    actor.limit = 1
    _close(actor({"input": x})["logits"], want)             # run one row at a time, then concatenated
    with pytest.raises(InputError, match=r"no column\(s\) \['input'\]"):
        actor({"x": x, "y": x})
    with pytest.raises(InputError, match="axis 1 must be 64"):   # Session.run's feed check, same words
        actor({"input": x[:, :8]})


def test_as_columns_checks_rows_and_names():
    x = np.zeros((4, 2), np.float32)
    assert as_columns(x, ["a"])["a"] is x
    assert as_columns(object(), ["a"]) is None             # a Ray Dataset passes through untouched
    with pytest.raises(InputError, match="pass a dict"):
        as_columns(x, ["a", "b"])
    with pytest.raises(InputError, match="same, non-zero number of rows"):
        as_columns({"a": x, "b": x[:3]}, ["a", "b"])
    with pytest.raises(InputError, match=r"no column\(s\) \['b'\]"):
        as_columns({"a": x}, ["a", "b"])
    r = OfflineResult(outputs={"y": np.zeros((4, 1))}, rows=4, seconds=2.0, concurrency=1, batch_size=2)
    assert r.samples_per_s == 2.0 and r.summary()["outputs"] == {"y": [4, 1]}


def test_replica_app_speaks_kserve_v2(mlp_engine):
    """The replica's ASGI app (what Ray Serve mounts as ingress), driven in-process through httpx."""
    httpx = pytest.importorskip("httpx")
    blob = EngineBlob.read(mlp_engine)
    replica = KServeReplica(blob.name, blob.data, ReplicaSettings(max_batch_size=4).model_config(), cpus=1)
    app = replica.__serve_build_asgi_app__()
    x = np.random.default_rng(1).standard_normal((3, 64)).astype(np.float32)
    want = tensorforge.load(mlp_engine, threads=1).run(x)["logits"]

    async def calls():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://replica") as c:
            good = await c.post("/v2/models/tiny_mlp/infer", json={"inputs": [
                {"name": "input", "shape": [3, 64], "datatype": "FP32", "data": x.ravel().tolist()}]})
            bad = await c.post("/v2/models/tiny_mlp/infer", json={"inputs": [
                {"name": "input", "shape": [3, 8], "datatype": "FP32", "data": x[:, :8].ravel().tolist()}]})
            big = await c.post("/v2/models/tiny_mlp/infer", json={"inputs": [
                {"name": "input", "shape": [5, 64], "datatype": "FP32", "data": [0.0] * 320}]})
            meta = await c.get("/v2/models/tiny_mlp")
            return good, bad, big, meta

    try:
        good, bad, big, meta = asyncio.run(calls())
        assert good.status_code == 200, good.text
        out = good.json()["outputs"][0]
        assert out["name"] == "logits" and out["shape"] == [3, 10]
        _close(np.asarray(out["data"], np.float32).reshape(3, 10), want)
        assert bad.status_code == 400 and "axis 1 must be 64" in json.loads(bad.text)["error"]
        assert big.status_code == 400 and "max batch 4" in big.json()["error"]
        assert meta.json()["inputs"][0]["shape"] == [-1, 64]
        replica.check_health()
        assert replica.stats()["success"] == 1 and replica.stats()["bad_request"] == 2
    finally:
        replica.__del__()


def test_proxied_app_reads_the_body_then_waits_locally():
    """Behind Ray's proxy, receive() after the body must not call the proxy again: it waits until cancelled."""
    calls = []

    async def receive():
        calls.append(1)
        return {"type": "http.request", "body": b"x", "more_body": False}

    async def app(scope, recv, send):
        assert (await recv())["body"] == b"x"
        waiter = asyncio.ensure_future(recv())
        await asyncio.sleep(0.05)
        assert not waiter.done()                  # no disconnect invented, no second proxy call
        waiter.cancel()

    asyncio.run(ProxiedApp(app)({"type": "http"}, receive, None))
    assert len(calls) == 1
