"""Peers measured in the same run as TensorForge — here, bare ONNX Runtime.

The peer is deliberately *not* our backend: a plain ``InferenceSession`` on the
original model with default settings, the way a user would call it. It takes the same
thread count as our engine when one is given, so the comparison is like for like.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np


def bare_onnxruntime(model_bytes: bytes, threads: int | None = None) -> Callable[[Mapping[str, np.ndarray]], Any]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads is not None:
        opts.intra_op_num_threads = threads
    session = ort.InferenceSession(model_bytes, sess_options=opts, providers=["CPUExecutionProvider"])

    def run(feeds: Mapping[str, np.ndarray]) -> Any:
        return session.run(None, feeds)

    return run


def ort_version() -> str:
    import onnxruntime as ort

    return str(ort.__version__)
