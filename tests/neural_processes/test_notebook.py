"""notebooks/np_few_shot.ipynb runs top to bottom (executed with nbclient)."""

from pathlib import Path

import pytest

from neural_processes.checkpoint import available

NOTEBOOK = Path(__file__).parents[2] / "notebooks" / "np_few_shot.ipynb"


@pytest.mark.slow
@pytest.mark.skipif(not {"anp-rbf", "mpanp-rbf"} <= set(available()),
                    reason="shipped checkpoints anp-rbf / mpanp-rbf missing")
def test_notebook_executes():
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parents[1])}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not any(o.get("output_type") == "error" for o in outputs)
    assert any(o.get("output_type") == "display_data" for o in outputs)  # the figure
