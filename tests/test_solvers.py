"""Solvers: the same result on 1, 2 and 3 ranks, correct data-term maths, the result contract, bad input."""

import math

import pytest
import torch

import distinv
from distinv.problems.images import DeblurringConfig, ground_truth, make_physics, measure
from distinv.solvers import (
    PriorConfig, SolverConfig, StackedDataTerm, conjugate_gradient, default_config, run_reconstruction,
    split_config,
)
from distinv.solvers.context import AccountedContext
from distinv.solvers.prior import load_prior_denoiser, tiled_prior

TINY = dict(size=64, K=3, sigma_n=0.02, blur_sigma=[1.5, 0.5], iterations=2, weights="random", patch=32,
            overlap=8, progress=False, pinv_iterations=3, cg_iterations=3, tv_inner_iterations=10)
_REFERENCE: dict = {}


def _reference(solver: str) -> dict:
    if solver not in _REFERENCE:
        _REFERENCE[solver] = distinv.launch(run_reconstruction, dict(TINY, solver=solver), nprocs=1, timeout=120)
    return _REFERENCE[solver]


@pytest.mark.parametrize("nprocs", [2, 3])
@pytest.mark.parametrize("solver", ["pnp-pgd", "pnp-hqs", "tv"])
def test_ranks_agree_with_one_rank(solver, nprocs):
    reference = _reference(solver)
    result = distinv.launch(run_reconstruction, dict(TINY, solver=solver), nprocs=nprocs, timeout=120)
    for ref_row, row in zip(reference["history"], result["history"]):
        assert abs(ref_row["psnr"] - row["psnr"]) < 0.01
    assert torch.allclose(reference["x_hat_preview"], result["x_hat_preview"], atol=1e-4)
    assert result["final"]["nprocs"] == nprocs
    assert sorted(k for r in result["per_rank"] for k in r["operators"]) == [0, 1, 2]
    assert all(row["comm_bytes"] > 0 for row in result["history"])  # the gradient/CG all-reduces are counted
    for row in result["history"]:  # each phase's communication is attributed to it, the tiled prior's too
        assert row["t_comm_data"] > 0 and (row["t_comm_prior"] > 0) == (solver != "tv")
        assert row["t_comm"] >= row["t_comm_data"] + row["t_comm_prior"] - 1e-9
    assert reference["history"][0]["comm_bytes"] == 0


def test_result_contract():
    result = _reference("pnp-hqs")
    row = result["history"][0]
    for key in ("iteration", "psnr", "ssim", "t_total", "t_grad", "t_prior", "t_comm", "comm_bytes", "peak_mem_bytes"):
        assert key in row
    assert row["t_grad"] + row["t_prior"] <= row["t_total"] + 1e-6
    for key in ("psnr", "ssim", "psnr_init", "psnr_pinv", "t_per_iteration", "sqnorm", "peak_mem_bytes"):
        assert key in result["final"]
    assert set(result["per_rank"][0]) >= {"rank", "peak_mem_bytes", "comm_bytes", "comm_seconds"}
    assert result["x_hat_preview"].shape == (1, 64, 64)
    assert len(result["measurement_previews"]) == 3
    top, left, side = result["crops"]["box"]
    assert result["crops"]["x_hat"].shape == (1, side, side) and top == 32 - side // 2 if side < 64 else True
    assert result["config"]["solver"] == "pnp-hqs" and result["config"]["size"] == 64


def _problem():
    cfg = DeblurringConfig(size=40, K=3, sigma_n=0.05, blur_sigma=(1.5, 0.5), channels=1)
    x = ground_truth(cfg)
    ops = [make_physics(k, cfg) for k in range(cfg.K)]
    ys = [measure(k, x, ops[k], cfg) for k in range(cfg.K)]
    return cfg, x, ops, ys


def _data_term_products(_unused=None):
    from distinv.problems.images import distributed_problem

    cfg, x, ops, ys = _problem()
    with AccountedContext("physics", torch.device("cpu")) as ctx:
        physics, y = distributed_problem(cfg, ctx, x)
        term = StackedDataTerm(physics, y)
        v = torch.rand(x.shape, generator=torch.Generator().manual_seed(3))
        return {"grad": term.gradient(v), "normal": term.normal(v), "aty": term.back_projection(),
                "prox": term.proximal(v, 0.5, 50, term.back_projection())}


@pytest.mark.parametrize("nprocs", [1, 2])
def test_data_term_matches_single_process_maths(nprocs):
    cfg, x, ops, ys = _problem()
    v = torch.rand(x.shape, generator=torch.Generator().manual_seed(3))
    grad = sum(op.A_adjoint(op.A(v) - y) for op, y in zip(ops, ys))
    normal = sum(op.A_adjoint(op.A(v)) for op in ops)
    aty = sum(op.A_adjoint(y) for op, y in zip(ops, ys))
    out = distinv.launch(_data_term_products, nprocs=nprocs, timeout=120)
    assert torch.allclose(out["grad"], grad, atol=1e-5)
    assert torch.allclose(out["normal"], normal, atol=1e-5)
    assert torch.allclose(out["aty"], aty, atol=1e-5)
    # the HQS step solves (A^T A + mu I) z = A^T y + mu v
    residual = sum(op.A_adjoint(op.A(out["prox"])) for op in ops) + 0.5 * out["prox"] - (aty + 0.5 * v)
    assert residual.norm() / (aty + 0.5 * v).norm() < 1e-4


def test_conjugate_gradient_solves_spd_system():
    generator = torch.Generator().manual_seed(0)
    q = torch.randn(6, 6, generator=generator, dtype=torch.float64)
    m = q @ q.T + 6 * torch.eye(6, dtype=torch.float64)
    b = torch.randn(6, generator=generator, dtype=torch.float64)
    x = conjugate_gradient(lambda v: m @ v, b, torch.zeros(6, dtype=torch.float64), 6)
    assert torch.allclose(m @ x, b, atol=1e-8)


def _tiled_equals_whole(implementation: str, schedule: str = "static"):
    with AccountedContext("prior", torch.device("cpu")) as ctx:
        blend = "crop" if implementation == "deepinv" else "smooth"
        config = PriorConfig(implementation=implementation, patch=16, overlap=4, blend=blend, schedule=schedule)
        prior = tiled_prior(lambda x, sigma: 2 * x + sigma, config, ctx)
        x = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(0))
        return torch.allclose(prior(x, 0.5), 2 * x + 0.5)


@pytest.mark.parametrize("nprocs", [1, 2])
def test_tiled_prior_of_pointwise_map_is_exact(nprocs):
    assert distinv.launch(_tiled_equals_whole, "deepinv", nprocs=nprocs, timeout=120)
    assert distinv.launch(_tiled_equals_whole, "distinv", nprocs=nprocs, timeout=120)
    assert distinv.launch(_tiled_equals_whole, "distinv", "dynamic", nprocs=nprocs, timeout=120)
    assert distinv.launch(_tiled_equals_whole, "none", nprocs=1, timeout=120)


@pytest.mark.parametrize("implementation", ["distinv", "deepinv", "none"])
def test_channels_last_prior_converts_the_network_for_every_implementation(implementation):
    net = load_prior_denoiser(PriorConfig(weights="random"), 1, torch.device("cpu"))
    x = torch.rand(1, 1, 48, 40, generator=torch.Generator().manual_seed(1))
    blend = "crop" if implementation == "deepinv" else "smooth"
    with AccountedContext("prior", torch.device("cpu")) as ctx, torch.no_grad():
        reference = tiled_prior(net, PriorConfig(implementation=implementation, patch=16, overlap=8, blend=blend,
                                                 channels_last=False), ctx)(x, 0.1)
        prior = tiled_prior(net, PriorConfig(implementation=implementation, patch=16, overlap=8, blend=blend), ctx)
        assert all(p.is_contiguous(memory_format=torch.channels_last) for p in net.parameters() if p.ndim == 4)
        torch.testing.assert_close(prior(x, 0.1), reference, rtol=1e-4, atol=1e-5)


def test_sigma_schedule_is_geometric():
    sigmas = SolverConfig(solver="pnp-hqs", iterations=5, sigma_start=0.16, sigma_end=0.01).sigmas()
    assert sigmas[0] == pytest.approx(0.16) and sigmas[-1] == pytest.approx(0.01)
    ratios = [b / a for a, b in zip(sigmas, sigmas[1:])]
    assert all(math.isclose(r, 0.5) for r in ratios)


def test_default_config_round_trips():
    problem, solver, prior, options = split_config(default_config())
    assert (problem.size, solver.solver, prior.implementation, options.device) == (512, "pnp-hqs", "distinv", "auto")


@pytest.mark.parametrize("cfg, error, message", [
    ({"sise": 64}, ValueError, r"unknown config key\(s\) \['sise'\]"),
    ({"solver": "admm"}, ValueError, r"solver must be one of \('pnp-pgd', 'pnp-hqs', 'tv', .*\), got 'admm'"),
    ({"iterations": 0}, ValueError, r"iterations must be an integer > 0, got 0"),
    ({"step_scale": 2.5}, ValueError, r"step_scale must be in \(0, 2\), got 2.5"),
    ({"implementation": "mpi"}, ValueError, r"implementation must be one of .*got 'mpi'"),
    ({"blend": "linear"}, ValueError, r"blend must be 'smooth' or 'crop', got 'linear'"),
    ({"implementation": "deepinv", "blend": "smooth"}, ValueError, r"implementation='deepinv' crops .*got 'smooth'"),
    ({"layout": "sharded"}, ValueError, r"layout must be 'replicated' \(the solver keeps x on every rank\)"),
    ({"channels_last": "yes"}, TypeError, r"channels_last must be a bool, got 'yes'"),
    ({"schedule": "greedy"}, ValueError, r"schedule must be one of \('static', 'dynamic'\), got 'greedy'"),
    ({"implementation": "deepinv", "blend": "crop", "schedule": "dynamic"}, ValueError,
     r"schedule='dynamic' needs implementation='distinv' .*got 'deepinv'"),
    ({"device": "tpu"}, ValueError, r"device must be one of \('auto', 'cpu', 'cuda'\), got 'tpu'"),
    ({"K": 0}, ValueError, r"K must be an integer >= 1, got 0"),
    ({"sigma_n": -1.0}, ValueError, r"sigma_n must be a number >= 0, got -1.0"),
    ({"size": 16}, ValueError, r"size must be larger than the blur kernel"),
    ([1, 2], TypeError, r"cfg must be a dict, got list"),
])
def test_bad_config_is_named(cfg, error, message):
    with pytest.raises(error, match=message):
        split_config(cfg)
