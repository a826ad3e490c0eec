"""The continuous-time solver notebook executes headless and its checks hold."""

import pytest

from ._notebook import run_notebook


@pytest.mark.slow
def test_solver_quickstart_runs_and_matches_riccati():
    _, images, text = run_notebook("solver_quickstart.ipynb", timeout=600, small=False)
    assert len(images) >= 4  # values/policies, history, temperature sweep, paths
    assert "relative L2 value error" in text and "MC cost" in text
