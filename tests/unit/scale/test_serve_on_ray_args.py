"""`serve --ray`'s library entry point refuses a bad replica count before it touches a Ray cluster."""

from __future__ import annotations

import pytest

from tensorforge.errors import ConfigError

pytest.importorskip("ray")


@pytest.mark.parametrize("replicas", [0, -1, "many", True, 1.5])
def test_bad_replicas_name_the_parameter(replicas, tmp_path):
    from tensorforge.api.serve import serve_on_ray

    with pytest.raises(ConfigError, match="`replicas` must be a whole number >= 1 or 'auto'"):
        serve_on_ray(tmp_path / "model.tfe", replicas=replicas)
