"""Chapter 01 executes end to end under papermill with tiny parameters (2 ranks, untrained prior)."""

from pathlib import Path

import pytest
from chapters import execute_chapter, glue_references

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(size=64, K=2, blur_sigma=[1.5, 0.5], iterations=2, patch=32, overlap=8, weights="random",
            nprocs=2, device="cpu")


def test_notebook_runs_with_tiny_parameters(tmp_path):
    outputs, glued, _ = execute_chapter("01_natural_images", tmp_path, TINY, cwd=ROOT)
    assert not [o for o in outputs if o.get("output_type") == "error"]
    plotly_outputs = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(plotly_outputs) >= 5  # measurements, images, zoom, PSNR, time breakdown
    assert glued["nat_rank_gap_db"] < 0.01 and glued["nat_final_gap_db"] <= glued["nat_rank_gap_db"]
    tables = [o for o in outputs if "text/html" in o.get("data", {}) and "PSNR (dB)" in o["data"]["text/html"]]
    assert tables, "the results table is missing"
    assert f"{glued['nat_psnr']:.2f}" in tables[0]["data"]["text/html"]  # the prose and the table show one number
    assert glued["nat_gain_tv"] == pytest.approx(glued["nat_psnr"] - glued["nat_psnr_tv"])
    assert (glued["nat_ranks"], glued["nat_size"], glued["nat_solver"]) == (2, TINY["size"], "pnp-hqs")
    referenced = glue_references("01_natural_images")
    assert referenced and referenced <= set(glued)  # every number of the prose was glued
    assert not [o for o in outputs if o.get("output_type") == "execute_result" and "plotly_mimetype" in str(o["data"])]
