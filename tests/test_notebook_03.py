"""Chapter 03 executes end to end under papermill with the tiny profile: the external simulator in its own environment writes the Measurement Set, 2 ranks read it (untrained prior)."""

from chapters import execute_chapter, glue_references


def test_notebook_runs_with_the_tiny_profile(tmp_path):
    outputs, glued, parameters = execute_chapter("03_radio_interferometry", tmp_path)
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert glue_references("03_radio_interferometry") <= set(glued)  # every number of the prose was glued
    plotly_outputs = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(plotly_outputs) >= 6
    assert float(glued["radio_rank_gap"]) < 0.01  # 1 and 2 ranks: the same SNR and logSNR at every iteration
    assert int(glued["radio_dishes"]) == 64 and int(glued["radio_visibilities"]) > 0
    assert float(glued["radio_snr_dirty"]) < float(glued["radio_snr_wavelet"])  # the baseline improves on the dirty image
    # the quality section reads the stored benchmark: its comparisons are consistent with the document's targets
    assert float(glued["radio_q_logsnr_vs_snr_tuned"]) >= float(glued["radio_q_gain_logsnr"])
    assert float(glued["radio_q_logsnr_tuned_snr_cost"]) >= 0
