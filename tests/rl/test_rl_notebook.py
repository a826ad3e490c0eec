"""Executes notebooks/continuous_rl.ipynb headless (small-problem setting) and checks its outputs."""

import pathlib
import re

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = pathlib.Path(__file__).resolve().parents[2] / "notebooks" / "continuous_rl.ipynb"


@pytest.mark.slow
def test_notebook_executes():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert "SMALL = True" in nb.cells[1].source
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )  # fmt: skip
    client.execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # learning curves, temperature bars, regime-switching path
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert re.search(r"stackelberg\s+learner vs exact stackelberg", text) and "fallback" in text
