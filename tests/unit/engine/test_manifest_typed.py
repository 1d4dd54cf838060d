"""The manifest is a typed, immutable object: parsed once on load, JSON again only through ``to_dict()``."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from tensorforge.engine.format import read_engine
from tensorforge.engine.manifest import Manifest, ModelInfo, freeze, parse_manifest, thaw
from tensorforge.engine.runtime import Engine
from tensorforge.errors import EngineFileError


def test_parse_of_to_dict_gives_the_same_manifest(engine_path):
    manifest, payloads = read_engine(engine_path)
    again = parse_manifest("again", json.loads(json.dumps(manifest.to_dict())), payloads["model.onnx"])
    assert again == manifest
    assert again.backend.settings.session_config().device == "cpu"
    assert isinstance(again.build.host["isa_flags"], tuple)          # nested JSON is frozen too


def test_a_changed_manifest_is_a_new_object(engine_path):
    engine = Engine.load(engine_path)
    renamed = replace(engine.manifest, model=replace(engine.manifest.model, name="renamed"))
    assert Engine(renamed, engine.model_bytes).name == "renamed" and engine.name != "renamed"


def test_in_memory_manifest_has_no_format_fields_until_written():
    d = Manifest(model=ModelInfo(name="m")).to_dict()
    assert "format" not in d and "payloads" not in d and d["model"]["name"] == "m"
    assert "streams" not in d["backend"]["settings"]          # written only when the tuner chose a stream count


def test_freeze_and_thaw_are_inverse_on_json():
    value = {"a": [1, {"b": [2, 3]}], "c": None}
    frozen = freeze(value)
    with pytest.raises(TypeError):
        frozen["a"] = 0
    assert thaw(frozen) == value


@pytest.mark.parametrize("raw", [None, [], "manifest"])
def test_a_manifest_that_is_not_an_object_is_an_engine_file_error(raw):
    with pytest.raises(EngineFileError, match="expected an object"):
        parse_manifest("x.tfe", raw)
