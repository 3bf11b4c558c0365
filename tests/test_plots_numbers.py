"""The numbers chapters 00 and 01 glue into their prose (plots.basics, plots.images), against hand-computed values."""

import math

import pytest

from distinv.plots.basics import equality_numbers
from distinv.plots.images import run_label, summary_numbers
from distinv.problems.images import DeblurringConfig


def test_equality_numbers_leave_the_untiled_comparison_out_of_the_worst_difference():
    rows = [dict(quantity="forward A x", max_abs_diff=0.0, psnr_db=math.inf),
            dict(quantity="adjoint Aᵀ y", max_abs_diff=2e-7, psnr_db=140.0),
            dict(quantity="tiled denoiser vs same tiling on 1 rank", max_abs_diff=5e-7, psnr_db=130.0),
            dict(quantity="tiled denoiser vs untiled", max_abs_diff=0.1, psnr_db=44.3)]
    numbers = equality_numbers({"rows": rows, "world_size": 3})
    assert numbers == {"ranks": 3, "max_abs_diff": 5e-7, "tiling_psnr_db": 44.3}
    assert all(type(value) in (int, float) for value in numbers.values())  # glue needs Python numbers


def _result(psnrs, seconds, **final):
    final = dict(psnr=psnrs[-1], ssim=0.8, psnr_init=21.0, psnr_pinv=24.0, t_per_iteration=seconds,
                 device="cpu (x86_64)", threads=2, **final)
    return {"final": final, "history": [{"iteration": i + 1, "psnr": p} for i, p in enumerate(psnrs)]}


def test_summary_numbers_compare_pnp_with_tv_and_one_rank_with_several():
    runs = {run_label("pnp-pgd", 3): _result([25.0, 27.0, 28.0], 0.4), run_label("pnp-pgd", 1): _result(
        [25.0, 27.5, 28.1], 1.0), run_label("tv", 3): _result([24.0, 25.0, 26.5], 0.1)}
    problem = DeblurringConfig(size=600, K=3, sigma_n=0.02, image="chelsea")  # chelsea's short side: 300 pixels
    numbers = summary_numbers(runs, "pnp-pgd", 3, problem)
    assert (numbers["size"], numbers["frames"], numbers["sigma_n"], numbers["image"], numbers["solver"]) == (
        600, 3, 0.02, "chelsea", "pnp-pgd")
    assert (numbers["psnr"], numbers["psnr_tv"], numbers["gain_tv"]) == (28.0, 26.5, 1.5)
    assert (numbers["psnr_init"], numbers["psnr_pinv"], numbers["ssim"]) == (21.0, 24.0, 0.8)
    assert numbers["rank_gap_db"] == pytest.approx(0.5) and numbers["final_gap_db"] == pytest.approx(0.1)
    assert (numbers["t_iteration"], numbers["t_iteration_one_rank"], numbers["speedup"]) == (0.4, 1.0, 2.5)
    assert (numbers["ranks"], numbers["device"], numbers["threads"]) == (3, "cpu (x86_64)", 2)
    assert (numbers["native_side"], numbers["resize_factor"]) == (300, 2.0)
    assert all(type(value) in (int, float, str) for value in numbers.values())  # glue needs Python values


def test_summary_numbers_without_a_one_rank_run_are_nan():
    runs = {run_label("pnp-hqs", 2): _result([30.0], 0.5), run_label("tv", 2): _result([29.0], 0.2)}
    numbers = summary_numbers(runs, "pnp-hqs", 2, DeblurringConfig(size=64, image="camera"))
    assert all(math.isnan(numbers[key]) for key in ("rank_gap_db", "final_gap_db", "t_iteration_one_rank", "speedup"))
    assert numbers["resize_factor"] == 64 / 512  # camera is 512², downsampled here
