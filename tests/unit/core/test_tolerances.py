"""The one tolerance table (core/tolerances.py) and the one precision list (core/precisions.py):
the build's verification, its FP16/BF16 check and the tuner all read them."""

from __future__ import annotations

import argparse

import pytest

from tensorforge.core import tolerances
from tensorforge.core.precisions import BUILD_PRECISIONS, LOW_FLOATS, PRECISIONS
from tensorforge.core.tolerances import TOLERANCES, tolerance
from tensorforge.errors import InputError


def test_every_precision_has_a_tolerance_and_fp32_two():
    assert set(TOLERANCES) == set(PRECISIONS) | {"fp32-kernels"}
    # tighter where fewer bits are lost: the graph passes, then other kernels, then the reduced formats
    assert (TOLERANCES["fp32"] < TOLERANCES["fp32-kernels"] < TOLERANCES["fp16"] < TOLERANCES["bf16"]
            < TOLERANCES["int8"])


def test_the_table_cannot_be_changed_in_place():
    with pytest.raises(TypeError):
        TOLERANCES["fp32"] = 1.0      # type: ignore[index]


def test_tolerance_reads_the_table():
    assert tolerance("fp32") == TOLERANCES["fp32"]
    assert tolerance("fp32", across_kernels=True) == TOLERANCES["fp32-kernels"]
    assert tolerance("fp16", across_kernels=True) == tolerance("fp16") == TOLERANCES["fp16"]
    assert tolerance("int8+bf16") == TOLERANCES["int8"]
    with pytest.raises(InputError, match="no tolerance for precision 'fp8'"):
        tolerance("fp8")


def test_build_and_tuner_read_the_same_table():
    from tensorforge.engine.build import BuildOptions
    from tensorforge.tune import TuneOptions, search

    assert search.tolerances.TOLERANCES is tolerances.TOLERANCES
    assert BuildOptions().rtol == TOLERANCES["fp32"]
    assert BuildOptions(rtol=1e-3).rtol == 1e-3                       # the user's option still wins
    assert TuneOptions().tolerance == TOLERANCES["fp32-kernels"]
    assert TuneOptions(precision="bf16").tolerance == TOLERANCES["bf16"]
    assert TuneOptions(rtol=0.5).tolerance == 0.5


def test_one_precision_list_everywhere():
    from tensorforge.cli.main import make_parser
    from tensorforge.precision import PrecisionOptions

    assert BUILD_PRECISIONS == PRECISIONS + ("best",) and set(LOW_FLOATS) < set(PRECISIONS)
    for precision in BUILD_PRECISIONS:
        assert PrecisionOptions(precision).precision == precision
    parser = make_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    flag = next(a for a in sub.choices["build"]._actions if "--precision" in a.option_strings)
    assert tuple(flag.choices) == BUILD_PRECISIONS
