"""The example notebook runs from top to bottom (with tiny settings in place of its parameter cell)."""

import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "examples", "alanine_dipeptide_workflow.ipynb")

#: Replaces the cell tagged "parameters": the whole chain in well under a minute.
TINY = """\
OUTPUT = "notebook-run"
N_RUNS = 2
N_STEPS = 1000
SAVE_EVERY = 20
EPOCHS = 3
REPLICAS = 2
CG_STEPS = 500
LAGTIME = 2
"""


def test_alanine_workflow_notebook(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    tagged = [i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, "the notebook needs exactly one cell tagged 'parameters'"
    notebook.cells[tagged[0]].source = TINY
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                      for output in cell.get("outputs", []))
    assert "phi/psi JS (2-D)" in outputs and "validation force MSE" in outputs
    assert any(output.get("data", {}).get("image/png") for cell in notebook.cells if cell.cell_type == "code"
               for output in cell.get("outputs", []))
    for name in ("training-cg.h5", "reference-cg.h5", "priors.json", "trained.pt", "priors-only.pt",
                 "trained-run.h5", "priors-only-run.h5"):
        assert (tmp_path / "notebook-run" / name).exists(), name
