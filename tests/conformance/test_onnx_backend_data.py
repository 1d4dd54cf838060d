"""Conformance (issue #18): every model with test data inside the ``onnx`` package is built (verification
on), loaded, run on its shipped inputs and compared with its shipped outputs.

Each result is a pass, or the typed refusal listed with its reason in ``expected_<backend>.json``
(or a wrong answer the backend is known to give, marked ``"known_failure"`` with its cause, tracked
until fixed); a new failure, a different refusal or an unexpected pass fails. An entry with ``"environment"``
depends on this machine (e.g. a locale onnxruntime needs): there a pass is allowed too.
Update an expectations file with ``python tests/conformance/conformance_cases.py [backend]``, which
prints every result (and writes them to /tmp/conformance_<backend>.json).
"""

from __future__ import annotations

import pytest
from conformance_cases import Case, cases, expectations, run_case, summary

import tensorforge.errors as errors
from tensorforge.backends.registry import get_backend

CASES = cases()
BACKENDS = ("onnxruntime", "openvino", "torch")


def test_every_folder_has_cases():
    folders = {c.folder for c in CASES}
    assert {"pytorch-converted", "pytorch-operator", "simple"} <= folders, folders


def _backend_or_skip(name: str) -> None:
    why = get_backend(name).availability()
    if why:
        pytest.skip(f"{name} is not usable here: {why}")


def _check(case: Case, backend: str) -> None:
    expected = expectations(backend).get(case.key)
    if expected is None:
        run_case(case, backend)          # any exception is a new failure
        return
    if "known_failure" in expected:      # a wrong answer the backend gives: tracked until fixed
        error: type[BaseException] = AssertionError
    else:
        error = getattr(errors, expected["error"])
        assert isinstance(error, type) and issubclass(error, errors.TensorForgeError), expected
    try:
        run_case(case, backend)
    except error as exc:
        assert expected["reason"] in str(exc), f"refused for another reason: {exc}"
        return
    if "environment" in expected:
        return                           # passes where the environment allows it
    pytest.fail(f"{case.key} now passes on {backend}: remove it from expected_{backend}.json")


@pytest.mark.parametrize("case", CASES, ids=[c.key for c in CASES])
def test_onnxruntime(case: Case):
    _check(case, "onnxruntime")


# The other backends run every folder but ``light`` (full-size networks with generated weights: most of
# the suite's time, and already covered on ONNX Runtime), to keep the suite within its time budget.
OTHER = [c for c in CASES if c.folder != "light"]


@pytest.mark.parametrize("case", OTHER, ids=[c.key for c in OTHER])
def test_openvino(case: Case):
    _backend_or_skip("openvino")
    _check(case, "openvino")


@pytest.mark.parametrize("case", OTHER, ids=[c.key for c in OTHER])
def test_torch(case: Case):
    _backend_or_skip("torch")
    _check(case, "torch")


def test_expectations_name_real_cases():
    keys = {c.key for c in CASES}
    for backend in BACKENDS:
        stale = sorted(set(expectations(backend)) - keys)
        assert not stale, f"expected_{backend}.json lists models that are not in the suite: {stale}"


def test_the_packaged_summary_matches_the_expectations():
    """`tensorforge backends` shows tensorforge/backends/conformance.json: it must say what this suite says.
    Regenerate it with: cd tests/conformance && python -c "import json, conformance_cases as c;
    print(json.dumps(c.summary(), indent=1))" > ../../tensorforge/backends/conformance.json"""
    from tensorforge.backends.registry import conformance

    packaged = conformance()
    assert packaged["backends"] == summary()["backends"], "regenerate tensorforge/backends/conformance.json"
