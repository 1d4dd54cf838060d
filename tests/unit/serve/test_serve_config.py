"""Model and server settings: JSON files, validation with the fix in the message."""

import pytest

from tensorforge.errors import ConfigError
from tensorforge.serve.batching import BatcherConfig
from tensorforge.serve.config import ModelConfig, ServerConfig


def test_model_config_from_json_over_a_base(tmp_path):
    base = ModelConfig(batcher=BatcherConfig(max_batch_size=4, instances=2), threads_per_instance=1)
    path = tmp_path / "config.json"
    path.write_text('{"max_queue_delay_ms": 2, "preferred_batch_sizes": [2, 4], "version_policy": [3, 1]}')
    cfg = ModelConfig.from_file(path, base=base)
    assert cfg.batcher.max_batch_size == 4 and cfg.batcher.instances == 2 and cfg.batcher.max_queue_delay_ms == 2
    assert cfg.batcher.preferred_batch_sizes == (2, 4) and cfg.version_policy == (1, 3)
    assert cfg.threads_per_instance == 1
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("text,message", [
    ('{"max_batch": 3}', "unknown model config key"),
    ('{"instance_kind": "gpu"}', "instance_kind must be one of"),
    ('{"version_policy": "newest"}', "version_policy must be"),
    ('{"version_policy": [0]}', "version numbers >= 1"),
    ('{"threads_per_instance": 0}', "threads_per_instance must be >= 1"),
    ('{"max_queue_delay_ms": -1}', "`max_queue_delay_ms` must be >= 0"),
    ('[1, 2]', "must be a JSON object"),
    ('{"max_batch_size": 2,', "not valid JSON"),
])
def test_bad_model_configs(text, message):
    with pytest.raises(ConfigError, match=message):
        ModelConfig.from_json(text)


def test_threads_default_shares_the_cores():
    cfg = ModelConfig(batcher=BatcherConfig(instances=64))
    assert cfg.threads() == 1


@pytest.mark.parametrize("kwargs,message", [
    ({"http_port": 70000}, "http_port must be 0..65535"),
    ({"max_request_bytes": 10}, "max_request_bytes"),
    ({"auth_token": "  "}, "auth_token is empty"),
    ({"drain_timeout_s": -1}, "drain_timeout_s"),
])
def test_bad_server_configs(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ServerConfig(**kwargs)


def test_server_config_defaults_to_loopback():
    d = ServerConfig().to_dict()
    assert d["host"] == "127.0.0.1" and d["auth"] is False
