"""Executes notebooks/stackelberg_mfg.ipynb headless (small setting) and checks its outputs."""

import pathlib

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = pathlib.Path(__file__).resolve().parents[2] / "notebooks" / "stackelberg_mfg.ipynb"


@pytest.mark.slow
def test_notebook_executes():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert "SMALL = True" in nb.cells[1].source
    client = nbclient.NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 3  # revenue curves, learning curves, alignment ratio
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "theta* = " in text and "final median gap" in text
