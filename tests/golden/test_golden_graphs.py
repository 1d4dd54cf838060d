"""Optimized zoo graphs change only on purpose (see golden_graphs.py to re-record)."""

from __future__ import annotations

import json

import pytest
from golden_graphs import GOLDEN, MODELS, record


@pytest.mark.parametrize("name", MODELS)
def test_optimized_graph_matches_record(name):
    expected = json.loads(GOLDEN.read_text())[name]
    got = json.loads(json.dumps(record(name)))
    assert got == expected, (f"the default pipeline now makes a different {name} graph; if intended, run "
                             "`python tests/golden/golden_graphs.py` and commit the new record")
