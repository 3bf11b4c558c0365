"""Chapter 01 executes end to end under papermill with tiny parameters (2 ranks, untrained prior)."""

from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "01_natural_images.py"
TINY = dict(size=64, K=2, blur_sigma=[1.5, 0.5], iterations=2, patch=32, overlap=8, weights="random",
            nprocs=2, device="cpu")


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
    text = "".join(o.get("text", "") for o in outputs)
    assert "largest PSNR difference between 1 and 2 ranks" in text
    gap = float(text.split("over all iterations: ")[1].split(" dB")[0])
    assert gap < 0.01
    tables = [o for o in outputs if "text/html" in o.get("data", {}) and "PSNR (dB)" in o["data"]["text/html"]]
    assert tables, "the results table is missing"
    markdown = [o.get("data", {}).get("text/markdown", "") for o in outputs]
    summary = [text for text in markdown if "learned prior reaches" in text]
    assert len(summary) == 1 and "On 2 ranks the final PSNR differs from one rank by" in summary[0]
    assert not [o for o in outputs if o.get("output_type") == "execute_result" and "plotly_mimetype" in str(o["data"])]
