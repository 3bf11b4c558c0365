"""A catalogue of wrong inputs across the public surface.

Each case calls one public function or constructor with one wrong value and pins the error type and a
message that names the parameter, the value given and what is allowed. The last tests feed NaN into an
image file and into the measurements: the run stops with a clear error before its first iteration, not
with a NaN PSNR after it.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import distinv
from distinv.bench.config import BenchConfig
from distinv.book.execute import execute_all, execute_notebook, load_profile, notebook_parameters
from distinv.distributed import ShardedBlur
from distinv.models import load_denoiser
from distinv.problems import register_problem
from distinv.problems import _REGISTRY as PROBLEMS
from distinv.problems.ct import CTConfig
from distinv.problems.images import DeblurringConfig, ground_truth
from distinv.problems.radio import RadioConfig
from distinv.radio.nufft import RadioNUFFT, check_cell
from distinv.solvers import PriorConfig, SolverConfig, run_reconstruction
from distinv.tiling import TiledDenoiser, TilingConfig
from distinv.tomography import ParallelBeamGeometry, ramp_filter, view_groups
from rank_functions_validation import NAN_PROBLEM, solve_nan_problem


ROOT = Path(__file__).resolve().parents[1]


def _noop():
    return None


def _profile(tmp_path, text: str):
    path = tmp_path / "profile.yaml"
    path.write_text(text)
    return path


UV = torch.zeros(10, 2)
BENCH = {"use_case": "denoise"}

# (id, call, error type, message pattern); ``call`` takes pytest's tmp_path.
CASES = [
    # ---- launching ranks
    ("launch-nprocs-zero", lambda _: distinv.launch(_noop, nprocs=0), ValueError,
     r"nprocs must be an integer >= 1, got 0"),
    ("launch-nprocs-text", lambda _: distinv.launch(_noop, nprocs="2"), TypeError,
     r"nprocs must be an integer >= 1, got '2'"),
    ("launch-timeout-negative", lambda _: distinv.launch(_noop, nprocs=1, timeout=-1), ValueError,
     r"timeout must be a positive number of seconds or None, got -1"),
    ("launch-device", lambda _: distinv.launch(_noop, nprocs=1, device="tpu"), ValueError,
     r"device must be one of \('auto', 'cpu', 'cuda'\), got 'tpu'"),
    ("launch-start-method", lambda _: distinv.launch(_noop, nprocs=1, start_method="thread"), ValueError,
     r"start_method must be one of \('auto', 'fork', 'forkserver', 'spawn'\), got 'thread'"),
    ("launch-threads-zero", lambda _: distinv.launch(_noop, nprocs=1, threads=0), ValueError,
     r"threads must be an integer >= 1 or None, got 0"),
    ("launch-memory-limit", lambda _: distinv.launch(_noop, nprocs=1, memory_limit_bytes=-1), ValueError,
     r"memory_limit_bytes must be None or an integer number of bytes >= 1048576, got -1"),
    ("launch-fn-not-callable", lambda _: distinv.launch(3, nprocs=1), TypeError, r"fn must be callable, got int"),
    ("resolve-nprocs-negative", lambda _: distinv.resolve_nprocs(-2, "cpu"), ValueError,
     r"nprocs must be -1 \(one rank per GPU\) or an integer >= 1, got -2"),
    # ---- tiling
    ("tiling-patch-zero", lambda _: TilingConfig(patch=0), ValueError, r"patch must be >= 1, got 0"),
    ("tiling-overlap-negative", lambda _: TilingConfig(patch=32, overlap=-1), ValueError,
     r"overlap must be >= 0, got -1"),
    ("tiling-overlap-past-patch", lambda _: TilingConfig(patch=32, overlap=40), ValueError,
     r"overlap must be smaller than patch \(axis 0\): got overlap=40 >= patch=32"),
    ("tiling-blend", lambda _: TilingConfig(patch=32, blend="average"), ValueError,
     r"blend must be one of \('smooth', 'crop'\), got 'average'"),
    ("tiling-schedule", lambda _: TilingConfig(patch=32, schedule="greedy"), ValueError,
     r"schedule must be one of \('static', 'dynamic'\), got 'greedy'"),
    ("tiling-ramp", lambda _: TilingConfig(patch=32, ramp=2.0), ValueError,
     r"ramp must be a number in \(0, 1\], got 2.0"),
    ("tiling-batch-zero", lambda _: TilingConfig(patch=32, max_batch_size=0), ValueError,
     r"max_batch_size must be >= 1, got 0"),
    ("tiled-denoiser-not-a-module", lambda _: TiledDenoiser("drunet", TilingConfig(patch=32, overlap=8)), TypeError,
     r"denoiser must be a module called \(x, sigma\), got str"),
    # ---- physics
    ("blur-padding", lambda _: ShardedBlur(torch.ones(1, 1, 3, 3) / 9, 16, padding="mirror"), ValueError,
     r"padding must be one of \('valid', 'circular', .*\), got 'mirror'"),
    ("blur-filter-1d", lambda _: ShardedBlur(torch.ones(3), 16), ValueError,
     r"filter must be 4-D \(b, c, h, w\) or 5-D \(b, c, d, h, w\), got shape \(3,\)"),
    ("blur-filter-nan", lambda _: ShardedBlur(torch.full((1, 1, 3, 3), math.nan), 16), ValueError,
     r"filter must be finite \(no NaN or Inf\), got 9 NaN and 0 Inf among 9 values"),
    ("blur-layout-text", lambda _: ShardedBlur(torch.ones(1, 1, 3, 3) / 9, "16"), TypeError,
     r"layout must be a SlabLayout or a number of rows, got str"),
    ("ct-geometry-size", lambda _: ParallelBeamGeometry(size=8, views=10), ValueError,
     r"size must be an integer in \[16, 1024\], got 8"),
    ("ct-geometry-views", lambda _: ParallelBeamGeometry(size=16, views=0), ValueError,
     r"views must be an integer >= 1, got 0"),
    ("ct-geometry-arc", lambda _: ParallelBeamGeometry(size=16, views=10, arc_degrees=0), ValueError,
     r"arc_degrees must be a number in \(0, 360\], got 0"),
    ("ct-view-groups", lambda _: view_groups(4, 8), ValueError,
     r"parts must be <= views=4 \(every group needs a view\), got parts=8"),
    ("ct-ramp-filter", lambda _: ramp_filter(torch.zeros(1, 4, 8), filter="hann2"), ValueError,
     r"filter must be one of \('ram-lak', .*\), got 'hann2'"),
    ("radio-nufft-npix", lambda _: RadioNUFFT(UV, npix=0, cell_rad=1e-5), ValueError,
     r"npix must be an integer >= 2, got 0"),
    ("radio-nufft-uv", lambda _: RadioNUFFT(torch.zeros(10, 3), npix=16, cell_rad=1e-5), ValueError,
     r"uv must have shape \(K, 2\) with K >= 1, got \(10, 3\)"),
    ("radio-nufft-backend", lambda _: RadioNUFFT(UV, npix=16, cell_rad=1e-5, backend="fftw"), ValueError,
     r"backend must be one of \('finufft', 'deepinv'.*\), got 'fftw'"),
    ("radio-nufft-eps", lambda _: RadioNUFFT(UV, npix=16, cell_rad=1e-5, eps=0), ValueError,
     r"eps must be a float in \(0, 1\), got 0"),
    ("radio-cell-aliases", lambda _: check_cell(1e-3, 1e6), ValueError,
     r"cell=206.3 arcsec is too large .* needs cell <= 1/\(2 max\|u\|\) = 0.1031 arcsec"),
    # ---- problems
    ("images-size", lambda _: DeblurringConfig(size=0), ValueError, r"size must be an integer in \[8, 8192\], got 0"),
    ("images-frames", lambda _: DeblurringConfig(K=0), ValueError, r"K must be an integer >= 1, got 0"),
    ("images-noise-nan", lambda _: DeblurringConfig(sigma_n=math.nan), ValueError,
     r"sigma_n must be a number >= 0, got nan"),
    ("images-blur-sigma", lambda _: DeblurringConfig(blur_sigma=(1.0, -1.0)), ValueError,
     r"blur_sigma must be two numbers > 0 \(major, minor\), got \(1.0, -1.0\)"),
    ("images-downsample", lambda _: DeblurringConfig(downsample=3), ValueError, r"downsample must be 1 or 2, got 3"),
    ("images-channels", lambda _: DeblurringConfig(channels=2), ValueError,
     r"channels must be 1 \(gray\) or 3 \(color\), got 2"),
    ("images-image", lambda _: DeblurringConfig(image="no_such_picture"), ValueError,
     r"image must be one of \('astronaut', .*\) or an existing image file, got 'no_such_picture'"),
    ("ct-size", lambda _: CTConfig(size=8), ValueError, r"size must be an integer in \[16, 512\], got 8"),
    ("ct-noise", lambda _: CTConfig(noise=-1), ValueError, r"noise must be a number >= 0 .*, got -1"),
    ("ct-phantom", lambda _: CTConfig(phantom="cube"), ValueError,
     r"phantom must be one of \('textured', 'shepp-logan'.*\), got 'cube'"),
    ("ct-distribution", lambda _: CTConfig(distribution="rows"), ValueError,
     r"distribution must be one of \('angles', 'slabs'.*\), got 'rows'"),
    ("ct-view-groups-config", lambda _: CTConfig(distribution="angles", view_groups=0), ValueError,
     r"view_groups must be an integer in \[1, 60\], got 0"),
    ("radio-npix", lambda _: RadioConfig(npix=0), ValueError, r"npix must be an integer in \[16, 8192\], got 0"),
    ("radio-cell", lambda _: RadioConfig(cell_arcsec=-1), ValueError, r"cell_arcsec must be a number > 0, got -1"),
    ("radio-denoiser-sigma", lambda _: RadioConfig(denoiser_sigma=0), ValueError,
     r"denoiser_sigma must be a number > 0, got 0"),
    # ---- solvers
    ("solver-name", lambda _: SolverConfig(solver="admm"), ValueError,
     r"solver must be one of \('pnp-pgd', 'pnp-hqs', 'tv', .*\), got 'admm'"),
    ("solver-iterations", lambda _: SolverConfig(iterations=0), ValueError,
     r"iterations must be an integer > 0, got 0"),
    ("solver-step", lambda _: SolverConfig(step_scale=2.5), ValueError, r"step_scale must be in \(0, 2\), got 2.5"),
    ("solver-cg", lambda _: SolverConfig(cg_iterations=0), ValueError, r"cg_iterations must be an integer > 0, got 0"),
    ("solver-sigma", lambda _: SolverConfig(sigma_start=-1.0), ValueError,
     r"sigma_start must be a number > 0, got -1.0"),
    ("prior-implementation", lambda _: PriorConfig(implementation="torch"), ValueError,
     r"implementation must be one of \('distinv', 'deepinv', .*\), got 'torch'"),
    ("prior-overlap-past-patch", lambda _: PriorConfig(patch=32, overlap=32), ValueError,
     r"overlap must be smaller than patch \(0 <= overlap < patch\), got overlap=32 >= patch=32"),
    ("prior-blend", lambda _: PriorConfig(blend="average"), ValueError,
     r"blend must be 'smooth' or 'crop', got 'average'"),
    ("prior-schedule", lambda _: PriorConfig(schedule="greedy"), ValueError,
     r"schedule must be one of \('static', 'dynamic'\), got 'greedy'"),
    ("run-unknown-key", lambda _: run_reconstruction({"sizee": 64}), ValueError,
     r"unknown config key\(s\) \['sizee'\] for problem 'images'; accepted keys: \['K', .*'size'"),
    ("run-problem", lambda _: run_reconstruction({"problem": "mri"}), ValueError,
     r"problem must be one of \['ct', 'images', 'radio'.*\], got 'mri'"),
    ("run-config-type", lambda _: run_reconstruction([("size", 64)]), TypeError, r"cfg must be a dict, got list"),
    ("run-device", lambda _: run_reconstruction({"device": "tpu"}), ValueError,
     r"device must be one of \('auto', 'cpu', 'cuda'\), got 'tpu'"),
    # ---- benchmark configurations
    ("bench-no-use-case", lambda _: BenchConfig(name="x", fixed={"nprocs": 1}), ValueError,
     r"parameter 'use_case' is missing: give it in 'fixed' or 'grid' \(registered use cases: \[.*'denoise'"),
    ("bench-use-case", lambda _: BenchConfig(name="x", fixed={"use_case": "mri"}), ValueError,
     r"unknown use case 'mri'; registered use cases are \[.*'denoise'.*\]"),
    ("bench-nprocs", lambda _: BenchConfig(name="x", fixed=BENCH, grid={"nprocs": [1, 0]}), ValueError,
     r"nprocs must be an integer >= 1, got 0"),
    ("bench-empty-grid", lambda _: BenchConfig(name="x", fixed=BENCH, grid={"size": []}), ValueError,
     r"grid parameter\(s\) \['size'\] have an empty list of values"),
    ("bench-unknown-parameter", lambda _: BenchConfig(name="x", fixed={**BENCH, "sizee": 64}), ValueError,
     r"unknown parameter\(s\) \['sizee'\] for use case\(s\) \['denoise'\]; allowed parameters are \[.*'size'"),
    ("bench-timeout", lambda _: BenchConfig(name="x", fixed=BENCH, timeout_s=0), ValueError,
     r"timeout_s must be a positive number of seconds or null, got 0"),
    ("bench-top-level-key", lambda _: BenchConfig.from_dict({"name": "x", "grids": {}}), ValueError,
     r"unknown configuration key\(s\) \['grids'\]; allowed keys are \['name', .*'grid'"),
    ("bench-not-a-mapping", lambda _: BenchConfig.from_dict(["denoise"]), TypeError,
     r"a benchmark configuration must be a mapping, got list"),
    # ---- book execution profiles
    ("profile-not-a-mapping", lambda tmp: load_profile(_profile(tmp, "- nprocs: 2\n")), ValueError,
     r"must map section names \('defaults' or a notebook stem\) to mappings of parameters, got a list"),
    ("profile-section-scalar", lambda tmp: load_profile(_profile(tmp, "defaults: 2\n")), ValueError,
     r"section 'defaults' must be a mapping of parameters \(NAME: value\), got a int"),
    ("profile-overrides", lambda _: notebook_parameters({"defaults": {}}, "00_x", overrides="size=64"), TypeError,
     r"overrides must be a mapping of parameter names to values or None, got str 'size=64'"),
    ("profile-unknown-notebook", lambda tmp: execute_all(ROOT / "notebooks", tmp, ROOT / "notebooks/profiles/tiny.yaml",
                                                         only=["99_nothing"]), ValueError,
     r"only names unknown notebooks \['99_nothing'\]; known: \['00_distributed_basics'"),
    ("execute-timeout", lambda tmp: execute_notebook(ROOT / "notebooks/00_distributed_basics.py", tmp / "out.ipynb",
                                                     timeout=-1), ValueError,
     r"timeout must be a positive number of seconds per cell or None, got -1"),
    # ---- weights
    ("weights-name", lambda _: load_denoiser("drunet-huge"), ValueError,
     r"unknown denoiser name 'drunet-huge'; available: \[.*'drunet-small-gray'.*\]"),
    ("weights-source", lambda _: load_denoiser(source="ftp"), ValueError,
     r"unknown source 'ftp': expected one of \['shipped', 'download'\] or a path to a weights file"),
    ("weights-name-type", lambda _: load_denoiser(3), TypeError, r"name must be a str, got int"),
    ("weights-device", lambda _: load_denoiser(device="tpu"), ValueError,
     r"device must be a torch device or its name \('cpu', 'cuda', 'cuda:1', ...\), got 'tpu'"),
]


@pytest.mark.parametrize("call, error, message", [pytest.param(*case[1:], id=case[0]) for case in CASES])
def test_a_wrong_input_is_refused_naming_the_parameter_and_what_is_allowed(call, error, message, tmp_path):
    with pytest.raises(error, match=message):
        call(tmp_path)


def test_the_catalogue_covers_the_public_surface():
    areas = {case[0].split("-")[0] for case in CASES}
    assert len(CASES) >= 25 and len({case[0] for case in CASES}) == len(CASES)
    assert {"launch", "tiling", "blur", "ct", "radio", "images", "solver", "prior", "run", "bench", "profile",
            "weights"} <= areas


# ------------------------------------------------------------------------ NaN and Inf in the data


def test_an_image_file_with_a_nan_pixel_is_refused_before_any_measurement(tmp_path):
    import skimage.io

    picture = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    picture[5, 7] = np.nan
    path = tmp_path / "picture.tif"
    skimage.io.imsave(path, picture, check_contrast=False)
    config = DeblurringConfig(size=32, image=str(path))
    with pytest.raises(ValueError, match=re.escape(f"image {str(path)!r} must be finite (no NaN or Inf), "
                                                   "got 1 NaN and 0 Inf among 1024 values")):
        ground_truth(config)
    picture[5, 7] = 0.5
    skimage.io.imsave(path, picture, check_contrast=False)
    assert ground_truth(config).isfinite().all()  # the same file without the NaN is accepted


@pytest.fixture
def nan_problem():
    register_problem(NAN_PROBLEM, replace=True)
    yield NAN_PROBLEM.name
    PROBLEMS.pop(NAN_PROBLEM.name, None)


def test_a_nan_measurement_stops_the_run_before_the_first_iteration(nan_problem):
    cfg = {"problem": nan_problem, "solver": "pnp-pgd", "weights": "random", "progress": False}
    with pytest.raises(ValueError, match=re.escape("measurements y[1] must be finite (no NaN or Inf), got 1 NaN and "
                                                   "0 Inf among 64 values")):
        distinv.launch(run_reconstruction, cfg, nprocs=1)


def test_a_nan_on_one_rank_is_reported_with_that_rank(nan_problem):
    cfg = {"problem": nan_problem, "size": 8, "operators": 2, "bad": [0, 1], "solver": "pnp-pgd",
           "weights": "random", "progress": False}
    # each rank holds one operator (y = [x, None] on rank 0, [None, x] on rank 1), both with a NaN; forked ranks
    # start with this process's modules instead of importing the solvers again (seconds on a loaded machine)
    with pytest.raises(distinv.RankError, match=r"rank [01].*ValueError.*measurements y\[[01]\] must be finite "
                                                r"\(no NaN or Inf\), got 1 NaN and 0 Inf among 64 values"):
        distinv.launch(solve_nan_problem, cfg, nprocs=2, timeout=60, start_method="fork")
