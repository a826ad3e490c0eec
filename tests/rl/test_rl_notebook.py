"""Executes notebooks/continuous_rl.ipynb headless (small-problem setting) and checks its outputs."""

import re

import pytest

from .._notebook import run_notebook


@pytest.mark.slow
def test_notebook_executes():
    _, images, text = run_notebook("continuous_rl.ipynb", timeout=600, loop_level=0)
    assert len(images) >= 3  # learning curves, temperature bars, regime-switching path
    assert re.search(r"stackelberg\s+learner vs exact stackelberg", text) and "fallback" in text
