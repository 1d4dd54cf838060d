"""The one model-source resolver: every kind of source, its name, and the errors for what is not one."""

import onnx
import pytest

from tensorforge.engine.build import BuildOptions, build
from tensorforge.engine.runtime import Engine
from tensorforge.engine.source import ModelSource, resolve_source
from tensorforge.errors import EngineFileError, ModelError
from tensorforge.models import datasets


def test_zoo_names_exact_prefixed_and_any_case():
    for text in ("tiny_mlp", "zoo:tiny_mlp", "TINY_MLP", "Tiny_Mlp"):
        src = resolve_source(text)
        assert (src.kind, src.name, src.origin, src.path) == ("zoo", "tiny_mlp", "zoo:tiny_mlp", None)
        assert isinstance(src.model, onnx.ModelProto) and src.engine is None and src.precision == "fp32"


@pytest.mark.skipif("mnist_cnn" not in datasets.trained_models(), reason="no shipped trained model")
def test_trained_model_names():
    for text in ("mnist_cnn", "trained:mnist_cnn", "MNIST_CNN"):
        src = resolve_source(text)
        assert (src.kind, src.name, src.origin) == ("trained", "mnist_cnn", "trained:mnist_cnn")
        assert src.path is not None and src.path.name == "mnist_cnn.onnx"


def test_onnx_file_is_named_after_its_stem(conv_bn_path):
    src = resolve_source(conv_bn_path)
    assert (src.kind, src.name, src.path) == ("onnx", "conv_bn", conv_bn_path)
    assert src.onnx_model() is src.model


def test_in_memory_models_keep_their_graph_name_or_the_given_one(conv_bn_model):
    assert (resolve_source(conv_bn_model).kind, resolve_source(conv_bn_model).name) == ("proto", "conv_bn")
    from_bytes = resolve_source(conv_bn_model.SerializeToString())
    assert (from_bytes.kind, from_bytes.name) == ("proto", "conv_bn")
    assert resolve_source(conv_bn_model, name="mine").name == "mine"
    unnamed = onnx.ModelProto()
    unnamed.CopyFrom(conv_bn_model)
    unnamed.graph.name = ""
    assert resolve_source(unnamed).name == "model"


def test_engines_by_path_and_object(engine_path):
    src = resolve_source(engine_path)
    assert src.kind == "engine" and src.model is None and isinstance(src.engine, Engine)
    assert src.name == src.engine.name and src.precision == "fp32"
    assert isinstance(src.onnx_model(), onnx.ModelProto)
    again = resolve_source(src.engine)
    assert again.kind == "engine" and again.engine is src.engine


def test_a_resolved_source_passes_through_and_can_be_renamed():
    src = resolve_source("tiny_mlp")
    assert resolve_source(src) is src
    renamed = resolve_source(src, name="edge")
    assert isinstance(renamed, ModelSource) and renamed.name == "edge" and renamed.model is src.model


def test_unknown_name_suggests_the_closest_zoo_names():
    with pytest.raises(ModelError, match="neither an ONNX file nor a zoo model") as info:
        resolve_source("tiny_cnnn")
    assert "Did you mean 'tiny_cnn'" in str(info.value)
    with pytest.raises(ModelError, match="Zoo models: alexnet") as info:
        resolve_source("no_such_model_anywhere")
    assert "Did you mean" not in str(info.value)


def test_missing_files_and_bad_types(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        resolve_source(tmp_path / "nope.onnx")
    with pytest.raises(EngineFileError):
        resolve_source(tmp_path / "nope.tfe")
    with pytest.raises(ModelError, match="got int"):
        resolve_source(42)
    with pytest.raises(ModelError, match="not a serialized ONNX model"):
        resolve_source(b"\xff\xfe definitely not protobuf")


def test_build_keeps_the_source_name_without_patching(conv_bn_model, engine_path):
    engine, report = build(conv_bn_model, options=BuildOptions(verify=False))
    assert engine.name == "conv_bn" == report.name and report.source == "in-memory ModelProto"
    named, _ = build(conv_bn_model, options=BuildOptions(verify=False), name="detector")
    assert named.name == "detector"
    zoo_engine, _ = build(resolve_source("TINY_MLP"), options=BuildOptions(verify=False))
    assert zoo_engine.name == "tiny_mlp" and zoo_engine.manifest.model.source == "zoo:tiny_mlp"
    with pytest.raises(ModelError, match="already built"):
        build(engine_path)
