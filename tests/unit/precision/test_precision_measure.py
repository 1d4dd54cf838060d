"""precision's default measure: FP32 timed alone once, every other model paired against it."""

from __future__ import annotations

import math
from dataclasses import replace

import onnx

from tensorforge.core.timing import paired_timing
from tensorforge.precision import api, default_measure


def test_fp32_is_timed_once_and_others_are_paired_with_it(conv_bn_model, monkeypatch):
    calls: list[bool] = []

    def spy(ours, peer, rounds, **kw):
        calls.append(peer is not None)
        p = paired_timing(ours, peer, rounds, **kw)
        return p if peer is None else replace(p, median=2.0)      # the candidate: 2x FP32 in every round

    monkeypatch.setattr(api, "paired_timing", spy)
    measure = default_measure(conv_bn_model, None, threads=1, repeats=3)
    fp32_s = measure(conv_bn_model.SerializeToString())
    assert measure(conv_bn_model.SerializeToString()) == fp32_s and calls == [False]   # cached, timed alone

    other = onnx.ModelProto()
    other.CopyFrom(conv_bn_model)
    other.doc_string = "another model"                # other bytes: timed in rounds paired with FP32
    assert measure(other.SerializeToString()) == fp32_s / 2.0 and calls == [False, True]
    assert math.isfinite(fp32_s) and fp32_s > 0
