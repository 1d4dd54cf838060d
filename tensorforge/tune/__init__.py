"""Auto-tuning: time backends × settings on this host, verified against the reference, with a timing cache.

>>> from tensorforge.tune import TuneOptions, tune                  # doctest: +SKIP
>>> result = tune(engine.model_bytes, engine.inputs, TuneOptions("latency"))   # doctest: +SKIP
"""

from .cache import TimingCache
from .search import CandidateResult, Payloads, TuneOptions, TuneResult, tune
from .space import OBJECTIVES, Candidate, default_space

__all__ = ["OBJECTIVES", "Candidate", "CandidateResult", "Payloads", "TimingCache", "TuneOptions", "TuneResult",
           "default_space", "tune"]
