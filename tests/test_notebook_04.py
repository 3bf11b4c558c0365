"""Chapter 04 executes end to end under papermill with the tiny profile (2 ranks), and what it glues holds."""

from chapters import execute_chapter, glue_references


def test_notebook_runs_with_the_tiny_profile(tmp_path):
    outputs, glued, parameters = execute_chapter("04_training", tmp_path)
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert glue_references("04_training") <= set(glued)  # every number of the prose was glued
    plotly_outputs = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(plotly_outputs) == 4  # loss curves, PSNR against time, images, memory
    assert float(glued["tr_gradient_worst"]) < 1e-9  # float64: 1 rank and 2 give the same gradient
    assert float(glued["tr_gradient_spread"]) == 0.0  # every rank holds the same gradient after the all-reduce
    assert float(glued["tr_live_gap"]) < 1e-3  # the live training's loss curves on 1 and 2 ranks
    assert int(glued["tr_live_steps"]) == parameters["live_steps"]
    assert 0 < float(glued["tr_mem_ckpt_ratio"]) < 1  # read from the results file: checkpointing saves memory
    tables = [o for o in outputs if "text/html" in o.get("data", {})]
    from distinv.solvers.unrolled import available_unrolled

    n_layers = available_unrolled()["unrolled-hqs-gray"]["architecture"]["n_layers"]
    assert any(f"unrolled, {n_layers} layers (dB)" in o["data"]["text/html"] for o in tables)
    assert any("denoiser weights" in o["data"]["text/html"] for o in tables)
