"""Runs a notebook of notebooks/ headless and returns what it printed and drew."""

import pathlib

import pytest

from stackjax._xla_flags import LOOP_LEVEL_VARIABLE

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[1] / "notebooks"


def run_notebook(name: str, timeout: int, small: bool = True, loop_level: int | None = None):
    """Executes ``notebooks/<name>``; fails on any error output.

    With ``small``, the notebook's second cell must set ``SMALL = True`` (the CI-sized setting).
    ``loop_level``: the kernel's `LOOP_LEVEL_VARIABLE` (0 for notebooks whose
    training loops are short in the small setting: tests/_loops.py).

    Returns:
      ``(outputs, images, text)``: every code-cell output, the PNG outputs, and the printed text.
    """
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    if small:
        assert "SMALL = True" in nb.cells[1].source
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        if loop_level is not None:  # the kernel inherits the environment
            patch.setenv(LOOP_LEVEL_VARIABLE, str(loop_level))
        client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    return outputs, images, text
