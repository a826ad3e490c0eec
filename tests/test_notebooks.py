"""The continuous-time notebooks execute headless and their checks hold."""

import pathlib

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[1] / "notebooks"


def _run(name: str, timeout: int = 600):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})  # fmt: skip
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    return outputs


def test_solver_quickstart_runs_and_matches_riccati():
    outputs = _run("solver_quickstart.ipynb")
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 4  # values/policies, history, temperature sweep, paths
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "relative L2 value error" in text and "MC cost" in text
