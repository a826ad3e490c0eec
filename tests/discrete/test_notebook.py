"""Executes notebooks/discrete_qse.ipynb headless (small-problem setting) and checks its outputs."""

import pathlib

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = pathlib.Path(__file__).resolve().parents[2] / "notebooks" / "discrete_qse.ipynb"


def test_notebook_executes():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert "SMALL = True" in nb.cells[1].source
    client = nbclient.NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 4  # value-vs-tau, regret, recovered model, MLE/offline panels
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "MLE slope" in text and "first-quarter regret" in text
