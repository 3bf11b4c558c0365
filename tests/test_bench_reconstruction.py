"""The images use case (distinv.solvers) through the runner: several ranks equal one."""

import pytest

from distinv.bench.config import BenchConfig
from distinv.bench.registry import get_use_case
from distinv.bench.runner import run_config
from distinv.bench.store import ResultsStore

FIXED = {"use_case": "images", "size": 48, "K": 2, "blur_sigma": [1.0, 0.5], "iterations": 2, "weights": "random",
         "patch": 16, "overlap": 8, "pinv_iterations": 2, "device": "cpu"}


def test_images_parameters_come_from_the_solver_defaults():
    params = get_use_case("images").parameters()
    assert params["progress"] is False and "solver" in params and "nprocs" not in params
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['blur'\]"):
        BenchConfig.from_dict({"name": "x", "fixed": {**FIXED, "blur": 1}})


def test_images_on_two_ranks_equal_one_rank(tmp_path):
    cfg = BenchConfig.from_dict({"name": "img", "results_dir": str(tmp_path), "timeout_s": 180, "fixed": FIXED,
                                 "grid": {"nprocs": [1, 2]}})
    summary = run_config(cfg, verbose=False)
    frame = ResultsStore(tmp_path).load()
    assert not summary.failed, frame.get("error")
    one = frame[frame.nprocs == 1].sort_values("iteration")
    two = frame[frame.nprocs == 2].sort_values("iteration")
    assert len(one) == 2 and two["psnr"].to_numpy() == pytest.approx(one["psnr"].to_numpy(), abs=1e-3)
    assert (two["comm_bytes"] > 0).all() and (one["t_total"] > 0).all()


def test_the_unrolled_network_runs_in_a_grid_like_every_solver(tmp_path):
    """Chapter 04's network through the runner's entry (the one chapter 10's grids use): its layers are the
    iterations, several ranks equal one, and the summary names each run by its solver."""
    from distinv.bench.summary import summarise_runs

    from distinv.solvers.unrolled import available_unrolled

    n_layers = available_unrolled()["unrolled-hqs-gray"]["architecture"]["n_layers"]
    iterations = 2 if n_layers != 2 else 3  # unlike the network's layer count, so that the test can tell them apart
    fixed = {**FIXED, "iterations": iterations}
    cfg = BenchConfig.from_dict({"name": "solvers", "results_dir": str(tmp_path), "timeout_s": 180, "fixed": fixed,
                                 "grid": {"solver": ["pnp-hqs", "unrolled"], "nprocs": [1, 2]}})
    summary = run_config(cfg, verbose=False)
    frame = ResultsStore(tmp_path).load()
    assert not summary.failed, frame.get("error")
    unrolled = frame[frame.solver == "unrolled"]
    layers = unrolled[unrolled.nprocs == 1].sort_values("iteration")
    assert len(layers) == n_layers  # the shipped network's layers replace the iterations
    on_two = unrolled[unrolled.nprocs == 2].sort_values("iteration")
    assert on_two["psnr"].to_numpy() == pytest.approx(layers["psnr"].to_numpy(), abs=1e-3)
    hqs = frame[(frame.solver == "pnp-hqs") & (frame.nprocs == 1)]
    assert len(hqs) == iterations
    same_count = min(iterations, n_layers) - 1  # the network after as many layers as PnP-HQS ran iterations
    assert layers["psnr"].iloc[same_count] != pytest.approx(hqs["psnr"].iloc[same_count], abs=1e-3)
    assert set(summarise_runs(frame)["variant"]) == {"pnp-hqs (replicated)", "unrolled (replicated)"}
