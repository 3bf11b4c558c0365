"""Chapter 02 executes end to end under papermill with the tiny profile (2 ranks, untrained prior)."""

from chapters import execute_chapter, glue_references


def test_notebook_runs_with_the_tiny_profile(tmp_path):
    outputs, glued, parameters = execute_chapter("02_tomography", tmp_path)
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert glue_references("02_tomography") <= set(glued)  # every number of the prose was glued
    plotly_outputs = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(plotly_outputs) >= 6  # planes, sinogram, PSNR, time breakdown, TV grid, memory
    assert float(glued["ct_gap"]) < 0.01  # 1 and 2 ranks, slabs and angles: the same iterates
    assert float(glued["ct_psnr_fbp"]) > 10 and int(glued["ct_size"]) == parameters["size"]
    tables = [o for o in outputs if "text/html" in o.get("data", {}) and "PSNR (dB)" in o["data"]["text/html"]]
    assert len(tables) >= 2, "the distribution and quality tables are missing"
