"""Chapter 02 executes end to end under papermill with the tiny profile (2 ranks, untrained prior)."""

from pathlib import Path

import nbformat

from distinv.book.execute import load_profile, notebook_parameters

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "02_tomography.py"


def _glued(outputs: list) -> dict:
    """The values the notebook glued (myst-nb stores them as display data with ``scrapbook`` metadata)."""
    values = {}
    for output in outputs:
        name = output.get("metadata", {}).get("scrapbook", {}).get("name")
        if name is not None:
            data = output["data"]
            values[name] = data.get("application/papermill.record/text/plain", data.get("text/plain"))
    return values


def test_notebook_runs_with_the_tiny_profile(tmp_path):
    import jupytext
    import papermill

    parameters = notebook_parameters(load_profile(ROOT / "notebooks" / "profiles" / "tiny.yaml"), "02_tomography")
    source = tmp_path / "02.ipynb"
    notebook = jupytext.read(NOTEBOOK)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, source)
    out = tmp_path / "02_out.ipynb"
    papermill.execute_notebook(str(source), str(out), parameters=parameters, kernel_name="python3",
                               cwd=str(ROOT / "notebooks"), progress_bar=False, execution_timeout=300)
    executed = nbformat.read(out, as_version=4)
    outputs = [o for cell in executed.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    plotly_outputs = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(plotly_outputs) >= 6  # planes, sinogram, PSNR, time breakdown, TV grid, memory
    glued = _glued(outputs)
    assert float(glued["ct_gap"]) < 0.01  # 1 and 2 ranks, slabs and angles: the same iterates
    assert float(glued["ct_psnr_fbp"]) > 10 and int(glued["ct_size"]) == parameters["size"]
    tables = [o for o in outputs if "text/html" in o.get("data", {}) and "PSNR (dB)" in o["data"]["text/html"]]
    assert len(tables) >= 2, "the distribution and quality tables are missing"
