"""Chapter 01 executes end to end under papermill with tiny parameters (2 ranks, untrained prior)."""

import ast
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "01_natural_images.py"
TINY = dict(size=64, K=2, blur_sigma=[1.5, 0.5], iterations=2, patch=32, overlap=8, weights="random",
            nprocs=2, device="cpu")


def _glued(outputs: list) -> dict:
    """The values the notebook glued, as Python values (myst-nb stores their text under a mime prefix)."""
    values = {}
    for output in outputs:
        record = output.get("metadata", {}).get("scrapbook", {})
        if "name" in record:
            text = output["data"][record.get("mime_prefix", "") + "text/plain"]
            values[record["name"]] = ast.literal_eval(text) if text not in ("nan", "inf") else float(text)
    return values


def test_notebook_runs_with_tiny_parameters(tmp_path):
    import jupytext
    import papermill

    source = tmp_path / "01.ipynb"
    notebook = jupytext.read(NOTEBOOK)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, source)
    out = tmp_path / "01_out.ipynb"
    papermill.execute_notebook(str(source), str(out), parameters=TINY, kernel_name="python3",
                               cwd=str(ROOT), progress_bar=False, execution_timeout=300)
    executed = nbformat.read(out, as_version=4)
    outputs = [o for cell in executed.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    plotly_outputs = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(plotly_outputs) >= 5  # measurements, images, zoom, PSNR, time breakdown
    glued = _glued(outputs)
    assert glued["nat_rank_gap_db"] < 0.01 and glued["nat_final_gap_db"] <= glued["nat_rank_gap_db"]
    tables = [o for o in outputs if "text/html" in o.get("data", {}) and "PSNR (dB)" in o["data"]["text/html"]]
    assert tables, "the results table is missing"
    assert f"{glued['nat_psnr']:.2f}" in tables[0]["data"]["text/html"]  # the prose and the table show one number
    assert glued["nat_gain_tv"] == pytest.approx(glued["nat_psnr"] - glued["nat_psnr_tv"])
    assert (glued["nat_ranks"], glued["nat_size"], glued["nat_solver"]) == (2, TINY["size"], "pnp-hqs")
    referenced = set(re.findall(r"\{glue:text\}`(\w+)", "".join(c.source for c in executed.cells
                                                                   if c.cell_type == "markdown")))
    assert referenced and referenced <= set(glued)  # every number of the prose was glued
    assert not [o for o in outputs if o.get("output_type") == "execute_result" and "plotly_mimetype" in str(o["data"])]
