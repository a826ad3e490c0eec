"""Executes notebooks/discrete_qse.ipynb headless (small-problem setting) and checks its outputs."""

import pytest

from .._notebook import run_notebook


@pytest.mark.slow
def test_notebook_executes():
    _, images, text = run_notebook("discrete_qse.ipynb", timeout=120)
    assert len(images) >= 4  # value-vs-tau, regret, recovered model, MLE/offline panels
    assert "MLE slope" in text and "first-quarter regret" in text
