"""Chapter 03 executes end to end under papermill with the tiny profile: the external simulator in its own environment writes the Measurement Set, 2 ranks read it (untrained prior)."""

from pathlib import Path

import nbformat

from distinv.book.execute import load_profile, notebook_parameters

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "03_radio_interferometry.py"


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

    profile = load_profile(ROOT / "notebooks" / "profiles" / "tiny.yaml")
    parameters = notebook_parameters(profile, "03_radio_interferometry")
    source = tmp_path / "03.ipynb"
    notebook = jupytext.read(NOTEBOOK)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, source)
    out = tmp_path / "03_out.ipynb"
    papermill.execute_notebook(str(source), str(out), parameters=parameters, kernel_name="python3",
                               cwd=str(ROOT / "notebooks"), progress_bar=False, execution_timeout=300)
    executed = nbformat.read(out, as_version=4)
    outputs = [o for cell in executed.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    plotly_outputs = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(plotly_outputs) >= 6
    glued = _glued(outputs)
    assert float(glued["radio_rank_gap"]) < 0.01  # 1 and 2 ranks: the same SNR and logSNR at every iteration
    assert int(glued["radio_dishes"]) == 64 and int(glued["radio_visibilities"]) > 0
    assert float(glued["radio_snr_dirty"]) < float(glued["radio_snr_wavelet"])  # the baseline improves on the dirty image
    # the quality section reads the stored benchmark: its comparisons are consistent with the document's targets
    assert float(glued["radio_q_logsnr_vs_snr_tuned"]) >= float(glued["radio_q_gain_logsnr"])
    assert float(glued["radio_q_logsnr_tuned_snr_cost"]) >= 0
