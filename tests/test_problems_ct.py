"""The tomography problem through the one runner: distributions and rank counts equal one process."""

import json

import pytest
import torch

import distinv
from distinv.problems.ct import CTConfig, SliceDenoiser, inflate_to_3d
from distinv.solvers.run import default_config, main, run_reconstruction, split_config

TINY = dict(problem="ct", size=19, views=12, noise=0.01, seed=3, iterations=2, weights="random", progress=False,
            pinv_iterations=3, cg_iterations=4, max_batch_size=4)


def _run(nprocs: int, **cfg) -> dict:
    return distinv.launch(run_reconstruction, {**TINY, **cfg}, nprocs=nprocs, timeout=300)


_CACHE: dict = {}


def _pnp(distribution: str, nprocs: int) -> dict:
    """PnP-HQS on the tiny problem (cached: several tests compare the same runs)."""
    if (distribution, nprocs) not in _CACHE:
        extra = {"distribution": distribution, "view_groups": 3} if distribution == "angles" else {}
        _CACHE[distribution, nprocs] = _run(nprocs, **extra)
    return _CACHE[distribution, nprocs]


@pytest.mark.parametrize("distribution", ["slabs", "angles"])
def test_one_two_three_ranks_give_the_same_reconstruction(distribution):
    results = [_pnp(distribution, n) for n in (1, 2, 3)]
    reference = results[0]
    for result in results[1:]:
        for key in ("psnr", "ssim", "psnr_fbp", "psnr_cgls"):
            assert result["final"][key] == pytest.approx(reference["final"][key], abs=1e-4), key
        for a, b in zip(result["history"], reference["history"]):
            assert a["psnr"] == pytest.approx(b["psnr"], abs=1e-4)
        for name in ("truth", "reconstruction"):
            for plane in ("axial", "coronal", "sagittal"):
                assert torch.allclose(result["planes"][name][plane], reference["planes"][name][plane], atol=1e-4)
    # the slabs partition the volume; view groups partition the views
    per_rank = results[2]["per_rank"]
    if distribution == "slabs":
        assert [r["slices"] for r in per_rank] == [[0, 7], [7, 13], [13, 19]]
        assert (results[2]["final"]["comm_bytes_per_iteration"]
                < results[2]["final"]["iterations"] * 19 ** 3 * 4)  # scalars only, never a volume
    else:
        assert sum(r["views"] for r in per_rank) == 12
    assert results[0]["final"]["psnr_fbp"] > 15 and results[0]["final"]["psnr_cgls"] > 15
    assert results[0]["sinogram"].shape == (12, results[0]["sinogram"].shape[1])


def test_slabs_and_angles_solve_the_same_problem():
    slabs, angles = _pnp("slabs", 2), _pnp("angles", 2)
    assert angles["final"]["psnr_fbp"] == pytest.approx(slabs["final"]["psnr_fbp"], abs=1e-4)
    assert angles["final"]["psnr"] == pytest.approx(slabs["final"]["psnr"], abs=1e-4)
    assert torch.allclose(angles["sinogram"], slabs["sinogram"], atol=1e-5)
    # the angle split all-reduces volumes, the slab split only scalars
    assert angles["final"]["comm_bytes_per_iteration"] > 20 * slabs["final"]["comm_bytes_per_iteration"]


def test_tv_baseline_is_rank_independent():
    one, two = _run(1, solver="tv", iterations=3, tv_inner_iterations=5), _run(2, solver="tv", iterations=3,
                                                                              tv_inner_iterations=5)
    assert two["final"]["psnr"] == pytest.approx(one["final"]["psnr"], abs=1e-4)
    assert one["final"]["psnr"] > one["final"]["psnr_fbp"]


# a trained network (local, unlike random weights): tiles with halos must agree with the whole volume
VOLUME = dict(size=24, prior_mode="volume", patch=16, overlap=8, iterations=1, blend="crop", pinv_iterations=0,
              weights="drunet-small-gray")


@pytest.fixture(scope="module")
def volume_runs():
    return {"untiled": _run(1, **{**VOLUME, "implementation": "none", "distribution": "angles"}),
            1: _run(1, **VOLUME)}


@pytest.mark.parametrize("nprocs", [2, 3])
def test_volume_prior_tiled_in_3d_is_rank_independent_and_close_to_the_whole_network(nprocs, volume_runs):
    tiled, one, whole = _run(nprocs, **VOLUME), volume_runs[1], volume_runs["untiled"]
    # the same tiles on any number of ranks (slabs exchange halos): equal to float rounding
    assert tiled["final"]["psnr"] == pytest.approx(one["final"]["psnr"], abs=1e-4)
    for plane in ("coronal", "sagittal"):
        assert torch.allclose(tiled["planes"]["reconstruction"][plane], one["planes"]["reconstruction"][plane],
                              atol=1e-4)
        # against the untiled 3D network: the tile approximation only (overlap 8, crop)
        difference = tiled["planes"]["reconstruction"][plane] - whole["planes"]["reconstruction"][plane]
        assert float(difference.abs().mean()) < 5e-3 and float(difference.abs().max()) < 0.08, plane
    assert tiled["final"]["psnr"] == pytest.approx(whole["final"]["psnr"], abs=0.1)


# the memory-lean settings: weights recomputed per product, slices tiled in-plane (patch < size)
LEAN = dict(projector="matrix-free", patch=8, overlap=4, max_batch_size=1, weights="drunet-small-gray")


@pytest.fixture(scope="module")
def lean_one_rank():
    return _run(1, **LEAN)


@pytest.mark.parametrize("nprocs, distribution", [(3, "slabs"), (2, "angles")])
def test_matrix_free_projector_and_in_plane_tiles_are_rank_independent(nprocs, distribution, lean_one_rank):
    extra = {"distribution": distribution, "view_groups": 3} if distribution == "angles" else {}
    lean = _run(nprocs, **LEAN, **extra)
    assert lean["final"]["psnr"] == pytest.approx(lean_one_rank["final"]["psnr"], abs=1e-4)
    for a, b in zip(lean["history"], lean_one_rank["history"]):
        assert a["psnr"] == pytest.approx(b["psnr"], abs=1e-4)
    for plane in ("coronal", "sagittal"):
        assert torch.allclose(lean["planes"]["reconstruction"][plane],
                              lean_one_rank["planes"]["reconstruction"][plane], atol=1e-4)


def test_matrix_free_projector_solves_the_stored_matrix_problem(lean_one_rank):
    stored = _run(1, **{**LEAN, "projector": "matrix"})
    # the same operator to ASTRA's float32 weights: FBP and the reconstruction agree closely
    assert lean_one_rank["final"]["psnr_fbp"] == pytest.approx(stored["final"]["psnr_fbp"], abs=1e-3)
    assert lean_one_rank["final"]["psnr"] == pytest.approx(stored["final"]["psnr"], abs=1e-3)
    # in-plane tiles (patch 8 < size 19) are not the whole-slice network: a different, close reconstruction
    whole = _run(1, **{**LEAN, "patch": 256})
    assert whole["final"]["psnr"] != pytest.approx(lean_one_rank["final"]["psnr"], abs=1e-6)
    assert whole["final"]["psnr"] == pytest.approx(lean_one_rank["final"]["psnr"], abs=0.5)


def test_slice_denoiser_is_the_2d_network_on_every_slice():
    net = torch.nn.Conv2d(1, 1, 3, padding=1)
    volume = torch.rand(1, 1, 5, 8, 8)
    out = SliceDenoiser(lambda x, sigma: net(x), batch=2)(volume, 0.1)
    expected = torch.stack([net(volume[:, :, z]) for z in range(5)], dim=2)
    assert torch.allclose(out, expected, atol=1e-6)


def test_inflated_3d_network_sees_a_z_constant_volume_like_the_2d_one():
    from distinv.solvers.config import PriorConfig
    from distinv.solvers.prior import load_prior_denoiser

    net2d = load_prior_denoiser(PriorConfig(weights="random"), 1, torch.device("cpu"))
    net3d = inflate_to_3d(net2d)
    image = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        out2d = net2d(image, 0.1)
        out3d = net3d(image[:, :, None].expand(1, 1, 16, 16, 16).contiguous(), 0.1)
    # axial inflation: every 3D kernel is the 2D kernel in its central slice, so on a volume constant
    # along z the 3D network's central slice is the 2D network's output
    assert torch.allclose(out3d[:, :, 8], out2d, atol=1e-4)


def test_cli_prints_the_same_json_as_the_images_problem(capsys):
    result = main(["--problem", "ct", "--nprocs", "1", "--set", "size=16", "views=6", "iterations=1",
                   "weights=random", "solver=tv", "tv_inner_iterations=2"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["final"]["psnr"] == pytest.approx(result["final"]["psnr"])
    assert printed["config"]["problem"] == "ct" and set(printed) == {"config", "final", "per_rank", "history"}


def test_defaults_and_split():
    cfg = default_config("ct")
    assert cfg["problem"] == "ct" and cfg["distribution"] == "slabs" and cfg["size"] == 96
    problem, solver, prior, options = split_config({"problem": "ct", "size": 17, "views": 5})
    assert isinstance(problem, CTConfig) and problem.size == 17


@pytest.mark.parametrize("cfg, message", [
    ({"views": 0}, r"views must be an integer >= 1, got 0"),
    ({"noise": -0.1}, r"noise must be a number >= 0"),
    ({"size": 8}, r"size must be an integer in \[16, 512\], got 8"),
    ({"distribution": "rows"}, r"distribution must be one of \('angles', 'slabs'\), got 'rows'"),
    ({"seed": 10_000_000}, r"seed"),
    ({"view_groups": 13, "views": 12}, r"view_groups must be an integer in \[1, 12\], got 13"),
    ({"prior_mode": "cube"}, r"prior_mode must be one of"),
    ({"projector": "lazy"}, r"projector must be one of \('matrix', 'matrix-free'\), got 'lazy'"),
])
def test_bad_configs_are_refused_with_the_parameter_named(cfg, message):
    with pytest.raises(ValueError, match=message):
        CTConfig(**cfg)


def test_more_ranks_than_slices_or_views_is_refused():
    with pytest.raises(ValueError, match=r"at most one rank per slice: 17 ranks for size=16"):
        CTConfig(size=16).check_world(17)
    with pytest.raises(ValueError, match=r"at most one rank per view: 3 ranks for views=2"):
        CTConfig(views=2, distribution="angles").check_world(3)
    with pytest.raises(ValueError, match=r"view_groups must be >= the number of ranks \(3\), got 2"):
        CTConfig(views=6, distribution="angles", view_groups=2).check_world(3)


def test_fbp_solver_returns_the_start_point_and_is_refused_for_images():
    result = _run(2, solver="fbp", pinv_iterations=0)
    assert result["final"]["psnr"] == pytest.approx(result["final"]["psnr_fbp"])
    assert result["final"]["iterations"] == 0 and len(result["history"]) == 1
    with pytest.raises(ValueError, match=r"solver='fbp' is a direct reconstruction that problem 'images' does not have"):
        distinv.launch(run_reconstruction, {"size": 32, "solver": "fbp", "weights": "random", "progress": False},
                       nprocs=1)
