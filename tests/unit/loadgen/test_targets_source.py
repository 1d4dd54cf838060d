"""In-process targets take any model source through the one resolver and keep its name; remote targets
read datatypes from the server's one KServe table."""

import pytest

from tensorforge.engine.runtime import Engine
from tensorforge.errors import InputError, ModelError
from tensorforge.loadgen.remote import _specs_from_metadata
from tensorforge.loadgen.targets import open_target


def test_a_zoo_name_is_built_in_memory_under_its_own_name():
    target = open_target("TINY_MLP")
    try:
        assert target.kind == "in-process" and target.name == "tiny_mlp"
        assert target.describe()["inputs"][0]["name"] == "input"
    finally:
        target.close()


def test_an_engine_file_keeps_its_recorded_name(engine_path):
    target = open_target(str(engine_path))
    try:
        assert target.name == Engine.load(engine_path).name
        assert target.describe()["engine"] == str(engine_path)
    finally:
        target.close()


def test_an_unknown_name_suggests_one():
    with pytest.raises(ModelError, match="Did you mean 'tiny_mlp'"):
        open_target("tiny_mlpp")


def test_remote_metadata_datatypes_come_from_the_kserve_table():
    specs, batched = _specs_from_metadata({"inputs": [{"name": "a", "datatype": "FP16", "shape": [-1, 4]},
                                                      {"name": "b", "datatype": "INT64", "shape": [-1, 2]}]}, "srv")
    assert [(s.name, s.dtype, s.shape) for s in specs] == [("a", "float16", ("N", 4)), ("b", "int64", ("N", 2))]
    assert batched
    with pytest.raises(InputError, match=r"numeric tensors only \(BOOL, UINT8.*FP64\)"):
        _specs_from_metadata({"inputs": [{"name": "s", "datatype": "BYTES", "shape": [-1]}]}, "srv")
