"""OpenVINO's sparse weights decompression: the property the prune spec asks for, set only where the
CPU has AMX, and a value the real CPU plugin accepts (and one it refuses)."""

from __future__ import annotations

import numpy as np
import pytest

from tensorforge.core.host import isa_flags
from tensorforge.prune import openvino_sparse_support, speed_note
from tensorforge.prune.runtime_sparsity import OPENVINO_SPARSE_PROPERTY


def test_without_amx_it_is_unsupported_and_sets_nothing() -> None:
    support = openvino_sparse_support("2:4", flags=["sse4_2", "avx", "avx2", "fma"])
    assert not support.supported and support.properties == {}
    assert support.reason.startswith("unsupported here") and "AMX" in support.reason and "avx2" in support.reason


def test_with_amx_the_rate_fits_the_spec() -> None:
    assert openvino_sparse_support("2:4", flags=["avx512f", "amx_tile", "amx_int8"]).properties == {
        OPENVINO_SPARSE_PROPERTY: 0.49}
    support = openvino_sparse_support("unstructured:80%", flags=["amx_bf16"])
    assert support.supported and support.properties == {OPENVINO_SPARSE_PROPERTY: 0.79}
    assert not openvino_sparse_support("channels:30%", flags=["amx_int8"]).supported


def test_this_host_report_is_honest() -> None:
    support = openvino_sparse_support("unstructured:70%")
    assert support.supported == any(f.startswith("amx") for f in isa_flags())
    note = speed_note("2:4", "openvino")
    assert ("unsupported here" in note) == (not support.supported)


def test_the_cpu_plugin_accepts_the_rate_and_refuses_a_bad_one() -> None:
    ov = pytest.importorskip("openvino")
    core = ov.Core()
    assert OPENVINO_SPARSE_PROPERTY in core.get_property("CPU", "SUPPORTED_PROPERTIES")
    rate = openvino_sparse_support("2:4", flags=["amx_int8"]).properties[OPENVINO_SPARSE_PROPERTY]
    core.set_property("CPU", {OPENVINO_SPARSE_PROPERTY: rate})
    assert core.get_property("CPU", OPENVINO_SPARSE_PROPERTY) == pytest.approx(rate)
    with pytest.raises(Exception, match="SPARSE_WEIGHTS_DECOMPRESSION_RATE|val_f"):
        core.set_property("CPU", {OPENVINO_SPARSE_PROPERTY: 1.5})


def test_openvino_compile_properties_take_the_sparse_rate():
    pytest.importorskip("openvino")
    from tensorforge.backends.base import SessionConfig
    from tensorforge.backends.openvino import compile_properties
    from tensorforge.errors import BackendUnavailable

    props = compile_properties(SessionConfig(options={"sparse_weights_decompression_rate": 0.49}))
    assert props["CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE"] == 0.49
    with pytest.raises(BackendUnavailable, match="sparse_weights_decompression_rate must be a number in"):
        compile_properties(SessionConfig(options={"sparse_weights_decompression_rate": 1.5}))


@pytest.mark.parametrize("amx", [False, True])
def test_a_sparse_openvino_build_asks_for_packing_only_where_the_cpu_has_amx(tmp_path, monkeypatch, amx):
    pytest.importorskip("openvino")
    import tensorforge
    from tensorforge.prune import runtime_sparsity

    flags = ["avx2", "fma"] + (["amx_tile", "amx_int8", "amx_bf16"] if amx else [])
    monkeypatch.setattr(runtime_sparsity, "isa_flags", lambda: flags)
    engine, _ = tensorforge.build("tiny_mlp", tmp_path / "s.tfe",
                                  tensorforge.BuildOptions(prune="2:4", backend="openvino", verify=False))
    options = dict(engine.manifest.backend.settings.options)
    if amx:
        assert options["sparse_weights_decompression_rate"] == pytest.approx(0.49)
        engine.session().run(np.zeros((1, 64), np.float32))      # the real plugin accepts the property
    else:
        assert "sparse_weights_decompression_rate" not in options
