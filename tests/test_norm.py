"""Exact distributed ||A||^2 by power iteration, against a dense single-process reference."""

import functools

import pytest
import torch
from deepinv.distributed import DistributedContext
from deepinv.distributed.framework.distributed_physics import DistributedStackedLinearPhysics
from deepinv.physics import Blur, Inpainting

import distinv
from distinv.distributed import comm
from distinv.distributed.norm import PowerIteration, SqNormEstimate, sharded_sqnorm, stacked_sqnorm

SHAPE = (1, 1, 9, 11)
NUM_OPERATORS = 4
OPTIONS = PowerIteration(max_iter=2000, tol=1e-13)


def stacked_operator(index: int, device=None, factory_kwargs=None):
    """Operator ``index`` of the stack (a deepinv factory): three blurs and an inpainting, float64."""
    gen = torch.Generator().manual_seed(100 + index)
    if index == 3:
        mask = (torch.rand(SHAPE[1:], generator=gen) > 0.4).double()
        return Inpainting(img_size=SHAPE[1:], mask=mask)
    filter_shape, padding = [((3, 3), "reflect"), ((5, 3), "valid"), ((4, 4), "circular")][index]
    return Blur(torch.rand(1, 1, *filter_shape, generator=gen, dtype=torch.float64), padding=padding)


def dense_matrix(operator, shape=SHAPE) -> torch.Tensor:
    """The matrix of a linear operator, column by column (small signals only)."""
    n = int(torch.tensor(shape).prod())
    basis = torch.eye(n, dtype=torch.float64).reshape(n, *shape[1:])
    return torch.stack([operator(basis[i : i + 1]).flatten() for i in range(n)], dim=1)


def start_vector() -> torch.Tensor:
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def _stacked_rank() -> dict:
    rank, world = comm.world()
    with DistributedContext(device_mode="cpu") as ctx:
        physics = DistributedStackedLinearPhysics(ctx, NUM_OPERATORS, stacked_operator, dtype=torch.float64)
        # every rank starts from its own vector: the broadcast must make them agree
        x0 = start_vector() + rank
        with comm.accounting() as ledger:
            estimate = stacked_sqnorm(physics, x0, OPTIONS)
        totals = ledger.totals()
        values = [None] * world
        comm.all_gather_object(values, estimate.value.item(), site="test.values")
        upper = physics.compute_sqnorm(start_vector(), local_only=True, max_iter=500, tol=1e-10, verbose=False)
    return {"estimate": estimate, "values": values, "totals": totals, "upper": upper.item(), "world": world}


def _norm_rank() -> dict:
    return {"stacked": _stacked_rank(), "sharded": _sharded_rank()}


@functools.lru_cache(maxsize=None)
def norm_run(nprocs: int) -> dict:
    """One launch per rank count (rank start-up dominates), shared by the tests that read it."""
    return distinv.launch(_norm_rank, nprocs=nprocs, timeout=120)


@pytest.fixture(scope="module")
def stacked_reference() -> dict:
    matrices = [dense_matrix(stacked_operator(k).A) for k in range(NUM_OPERATORS)]
    normal = sum(m.T @ m for m in matrices)
    return {
        "exact": torch.linalg.eigvalsh(normal)[-1].item(),
        "sum_of_norms": sum(torch.linalg.matrix_norm(m, ord=2).item() ** 2 for m in matrices),
    }


@pytest.mark.parametrize("nprocs", [1, 2, 3])
def test_stacked_sqnorm_equals_dense_norm_of_full_stack(nprocs, stacked_reference):
    out = norm_run(nprocs)["stacked"]
    estimate = out["estimate"]
    assert estimate.converged
    assert estimate.value.item() == pytest.approx(stacked_reference["exact"], rel=1e-10)
    assert out["values"] == [estimate.value.item()] * nprocs  # every rank holds the same figure
    if nprocs > 1:
        x_bytes = torch.tensor(SHAPE).prod().item() * 8
        assert out["totals"]["norm.normal"] == {
            "calls": estimate.iterations, "bytes": estimate.iterations * x_bytes,
            "seconds": out["totals"]["norm.normal"]["seconds"],
        }
        assert out["totals"]["norm.start"]["calls"] == 1
        assert set(out["totals"]) == {"norm.normal", "norm.start"}


@pytest.mark.parametrize("nprocs", [1, 3])
def test_deepinv_local_only_norm_is_an_upper_bound(nprocs, stacked_reference):
    out = norm_run(nprocs)["stacked"]
    # deepinv sums the operators' own norms: the triangle-inequality bound, not the norm
    assert out["upper"] == pytest.approx(stacked_reference["sum_of_norms"], rel=1e-6)
    assert out["upper"] > 1.05 * out["estimate"].value.item()


def test_sharded_sqnorm_on_one_process_is_the_plain_power_iteration(stacked_reference):
    physics = stacked_operator(2)  # one deepinv operator, no process group: no communication
    estimate = sharded_sqnorm(physics, start_vector(), OPTIONS)
    matrix = dense_matrix(physics.A)
    assert estimate.converged
    assert estimate.value.item() == pytest.approx(torch.linalg.matrix_norm(matrix, ord=2).item() ** 2, rel=1e-10)


def test_power_iteration_reports_non_convergence():
    with pytest.warns(RuntimeWarning, match=r"did not converge in max_iter=2"):
        estimate = sharded_sqnorm(stacked_operator(0), start_vector(), PowerIteration(max_iter=2, tol=0.0))
    assert estimate == SqNormEstimate(estimate.value, 2, False)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"max_iter": 0}, r"max_iter must be an integer >= 1, got 0"),
     ({"max_iter": 2.5}, r"max_iter must be an integer >= 1, got 2.5"),
     ({"tol": -1e-3}, r"tol must be a number >= 0, got -0.001")],
)
def test_power_iteration_options_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PowerIteration(**kwargs)


def test_zero_start_vector_is_rejected():
    with pytest.raises(ValueError, match=r"x0 must be a nonzero start vector"):
        sharded_sqnorm(stacked_operator(0), torch.zeros(SHAPE, dtype=torch.float64))


def test_wrong_operator_types_are_rejected():
    with pytest.raises(TypeError, match=r"physics must be a deepinv DistributedStackedLinearPhysics, got Blur"):
        stacked_sqnorm(stacked_operator(0), start_vector())
    with pytest.raises(TypeError, match=r"physics must be a deepinv LinearPhysics, got function"):
        sharded_sqnorm(lambda x: x, start_vector())


SHARDED_SHAPE = (1, 1, 23, 17)


def sharded_blur() -> "ShardedBlur":
    from distinv.distributed.blur import ShardedBlur

    gen = torch.Generator().manual_seed(7)
    taps = torch.rand(1, 1, 5, 4, generator=gen, dtype=torch.float64)
    return ShardedBlur(taps - taps.mean() / 2, layout=SHARDED_SHAPE[2], padding="reflect")


def sharded_start() -> torch.Tensor:
    return torch.randn(SHARDED_SHAPE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def _sharded_rank() -> dict:
    rank, _ = comm.world()
    physics = sharded_blur()
    start = sharded_start().narrow(2, physics.layout.start(rank), physics.layout.length(rank))
    with comm.accounting() as ledger:
        estimate = sharded_sqnorm(physics, start, OPTIONS)
    return {"estimate": estimate, "totals": ledger.totals(),
            "deepinv_api": physics.compute_sqnorm(start, max_iter=2000, tol=1e-13).item()}


@pytest.mark.parametrize("nprocs", [1, 2, 3])
def test_sharded_sqnorm_equals_single_process_power_iteration(nprocs):
    from deepinv.physics import Blur

    out = norm_run(nprocs)["sharded"]
    physics = sharded_blur()
    single = sharded_sqnorm(Blur(physics.filter, padding="reflect"), sharded_start(), OPTIONS)
    dense = torch.linalg.matrix_norm(dense_matrix(physics.A, SHARDED_SHAPE), ord=2).item() ** 2
    estimate = out["estimate"]
    assert estimate.converged and estimate.iterations == single.iterations
    assert estimate.value.item() == pytest.approx(single.value.item(), rel=1e-12)
    assert estimate.value.item() == pytest.approx(dense, rel=1e-9)
    assert out["deepinv_api"] == pytest.approx(dense, rel=1e-9)  # ShardedBlur.compute_sqnorm, deepinv's signature
    if nprocs > 1:
        totals = out["totals"]
        # one 2-scalar all-reduce per iteration (plus the start vector's norm), one halo each way
        assert totals["norm.dot"]["calls"] == estimate.iterations + 1
        assert totals["norm.dot"]["bytes"] == 16 * (estimate.iterations + 1)
        assert totals["blur.halo"]["calls"] == totals["blur.halo_adjoint"]["calls"] == estimate.iterations


def test_large_float32_signal_converges_to_the_exact_norm():
    """Four normalised blurs with circular padding: ||A||^2 is exactly 4 (at the zero frequency). Over
    3 x 1024² float32 samples the inner products must accumulate in float64: float32 sums overshot
    the true norm and needed twice the iterations (never converging at 2048²)."""
    from distinv.problems.images import DeblurringConfig, make_physics

    config = DeblurringConfig(size=1024, K=4, channels=3)
    operators = [make_physics(k, config) for k in range(4)]

    class Stack(Blur):
        def A_adjoint_A(self, x, **kwargs):
            return sum(op.A_adjoint_A(x) for op in operators)

    x0 = 1 + 0.1 * torch.rand(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(0))
    estimate = sharded_sqnorm(Stack(operators[0].filter), x0, PowerIteration(max_iter=50, tol=1e-6))
    assert estimate.value.dtype == torch.float32
    assert estimate.converged and estimate.iterations <= 6
    assert 4 - 1e-5 <= estimate.value.item() <= 4 + 1e-6
