"""The PyTorch backend on real torch: our ONNX → torch converter on the zoo's ops, eager and compiled,
a torch.nn.Module through the API into `tensorforge.build`, and clear refusals. Skips without torch."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

torch = pytest.importorskip("torch")

from tensorforge.backends.base import SessionConfig  # noqa: E402
from tensorforge.backends.registry import get_backend  # noqa: E402
from tensorforge.backends.torch import compiler_missing, module_session, module_to_onnx  # noqa: E402
from tensorforge.engine.build import BuildOptions, build  # noqa: E402
from tensorforge.errors import BackendUnavailable, ModelError  # noqa: E402


def _agree(model_bytes: bytes, feeds: dict, config: SessionConfig = SessionConfig(), rtol: float = 1e-4) -> None:
    got = get_backend("torch").create_session(model_bytes, config).run(feeds)
    want = get_backend("onnxruntime").create_session(model_bytes, SessionConfig()).run(feeds)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * np.abs(w).max())


@pytest.mark.parametrize("name", ["tiny_cnn", "tiny_googlenet", "tiny_mobilenet", "tiny_mlp"])
def test_converter_matches_onnxruntime_on_the_tiny_zoo(name):
    engine, _ = build(name, options=BuildOptions(verify=False))
    spec = engine.inputs[0]
    shape = [3 if isinstance(d, str) else d for d in spec.shape]
    _agree(engine.model_bytes, {spec.name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)})


def test_unbuilt_model_with_batchnorm_dropout_identity(conv_bn_model):
    _agree(conv_bn_model.SerializeToString(), {"x": np.random.default_rng(1).standard_normal((2, 3, 16, 16))
                                               .astype(np.float32)})


def test_asymmetric_pads_and_lrn():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 9, 9])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    w = onnx.numpy_helper.from_array(np.random.default_rng(2).standard_normal((4, 4, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[0, 1, 1, 0]),
             helper.make_node("LRN", ["c"], ["l"], size=3, alpha=1e-3, beta=0.75, bias=2.0),
             helper.make_node("MaxPool", ["l"], ["m"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 0, 1]),
             helper.make_node("AveragePool", ["m"], ["y"], kernel_shape=[2, 2], ceil_mode=1)]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], [w]),
                              opset_imports=[helper.make_opsetid("", 17)])
    _agree(model.SerializeToString(), {"x": np.random.default_rng(3).standard_normal((2, 4, 9, 9))
                                       .astype(np.float32)})


def test_unsupported_op_named_in_the_error():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    model = helper.make_model(helper.make_graph([helper.make_node("Erf", ["x"], ["y"])], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ModelError, match="cannot convert op 'Erf'"):
        get_backend("torch").create_session(model.SerializeToString(), SessionConfig())


def test_bad_options_and_devices(conv_bn_model):
    data = conv_bn_model.SerializeToString()
    with pytest.raises(BackendUnavailable, match="mode must be"):
        get_backend("torch").create_session(data, SessionConfig(options={"mode": "jit"}))
    with pytest.raises(BackendUnavailable, match="cuda_graphs needs device 'cuda'"):
        get_backend("torch").create_session(data, SessionConfig(options={"cuda_graphs": True}))
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailable, match="sees none"):
            get_backend("torch").create_session(data, SessionConfig(device="cuda"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here): CUDA graphs path unverified")
def test_cuda_graphs_on_gpu(conv_bn_model):        # pragma: no cover - runs only where a GPU is lent
    _agree(conv_bn_model.SerializeToString(), {"x": np.ones((2, 3, 16, 16), np.float32)},
           SessionConfig(device="cuda", options={"cuda_graphs": True}), rtol=1e-3)


@pytest.mark.slow
@pytest.mark.skipif(compiler_missing() is not None, reason="torch.compile needs a C++ compiler")
def test_compiled_session_matches_at_two_batch_sizes(conv_bn_model):
    data = conv_bn_model.SerializeToString()
    session = get_backend("torch").create_session(data, SessionConfig(options={"mode": "compile",
                                                                               "freezing": True}))
    ort = get_backend("onnxruntime").create_session(data, SessionConfig())
    for batch in (1, 4):
        x = {"x": np.random.default_rng(batch).standard_normal((batch, 3, 16, 16)).astype(np.float32)}
        want = ort.run(x)[0]
        np.testing.assert_allclose(session.run(x)[0], want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).mean((2, 3)))


def test_module_from_the_api_runs_directly_and_builds_into_an_engine(tmp_path):
    torch.manual_seed(0)
    net = _Net().eval()
    x = np.random.default_rng(4).standard_normal((3, 3, 8, 8)).astype(np.float32)
    want = net(torch.from_numpy(x)).detach().numpy()
    direct = module_session(net, ["input"], ["output"]).run({"input": x})[0]
    np.testing.assert_allclose(direct, want, rtol=1e-5, atol=1e-6)
    assert onnx.load_from_string(module_to_onnx(net, torch.zeros(1, 3, 8, 8))).graph.input[0].name == "input"
    engine, report = build((net, torch.zeros(1, 3, 8, 8)), tmp_path / "net.tfe")
    assert report.source == "torch module _Net" and engine.inputs[0].shape[0] == "N"
    np.testing.assert_allclose(engine.session().run(x)["output"], want, rtol=1e-4, atol=1e-5)


def test_reduced_dtype_keeps_the_fp32_interface(conv_bn_model):
    data = conv_bn_model.SerializeToString()
    x = {"x": np.random.default_rng(5).standard_normal((2, 3, 16, 16)).astype(np.float32)}
    want = get_backend("onnxruntime").create_session(data, SessionConfig()).run(x)[0]
    got = get_backend("torch").create_session(data, SessionConfig(options={"dtype": "bfloat16"})).run(x)[0]
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.abs(got - want).max() / np.abs(want).max() < 6e-2       # bfloat16: 8 bits of mantissa
    assert np.abs(got - want).max() > 0                                # it really ran in bfloat16


def test_dtype_and_tf32_checked(conv_bn_model):
    data = conv_bn_model.SerializeToString()
    with pytest.raises(BackendUnavailable, match="dtype must be one of"):
        get_backend("torch").create_session(data, SessionConfig(options={"dtype": "float8"}))
    with pytest.raises(BackendUnavailable, match="tf32 needs device 'cuda'"):
        get_backend("torch").create_session(data, SessionConfig(options={"tf32": True}))
