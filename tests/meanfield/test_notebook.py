"""Executes notebooks/stackelberg_mfg.ipynb headless (small setting) and checks its outputs."""

import pytest

from .._notebook import run_notebook


@pytest.mark.slow
def test_notebook_executes():
    _, images, text = run_notebook("stackelberg_mfg.ipynb", timeout=600, loop_level=0)
    assert len(images) == 3  # revenue curves, learning curves, alignment ratio
    assert "theta* = " in text and "final median gap" in text
