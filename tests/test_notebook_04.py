"""Chapter 04 executes end to end under papermill with the tiny profile (2 ranks), and what it glues holds."""

from pathlib import Path

import nbformat

from distinv.book.execute import load_profile, notebook_parameters

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "04_training.py"


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

    parameters = notebook_parameters(load_profile(ROOT / "notebooks" / "profiles" / "tiny.yaml"), "04_training")
    source = tmp_path / "04.ipynb"
    notebook = jupytext.read(NOTEBOOK)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, source)
    out = tmp_path / "04_out.ipynb"
    papermill.execute_notebook(str(source), str(out), parameters=parameters, kernel_name="python3",
                               cwd=str(ROOT / "notebooks"), progress_bar=False, execution_timeout=300)
    executed = nbformat.read(out, as_version=4)
    outputs = [o for cell in executed.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    plotly_outputs = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(plotly_outputs) == 4  # loss curves, PSNR against time, images, memory
    glued = _glued(outputs)
    assert float(glued["tr_gradient_worst"]) < 1e-9  # float64: 1 rank and 2 give the same gradient
    assert float(glued["tr_gradient_spread"]) == 0.0  # every rank holds the same gradient after the all-reduce
    assert float(glued["tr_live_gap"]) < 1e-3  # the live training's loss curves on 1 and 2 ranks
    assert int(glued["tr_live_steps"]) == parameters["live_steps"]
    assert 0 < float(glued["tr_mem_ckpt_ratio"]) < 1  # read from the results file: checkpointing saves memory
    tables = [o for o in outputs if "text/html" in o.get("data", {})]
    assert any("unrolled, 8 layers (dB)" in o["data"]["text/html"] for o in tables)
    assert any("denoiser weights" in o["data"]["text/html"] for o in tables)
