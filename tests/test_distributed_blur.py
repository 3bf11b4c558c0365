"""ShardedBlur on 1, 2 and 3 gloo ranks == deepinv's single-process Blur; adjointness across ranks;
every byte through the accounted wrappers; clear errors for bad input."""

import functools

import pytest
import torch
import torch.distributed as dist

import distinv
from distinv.distributed import comm
from distinv.distributed.blur import ShardedBlur, filter_reach
from distinv.distributed.sharding import SlabLayout, gather_slabs
from physics_registry import BLUR_CASES, TOLERANCE

DTYPES = (torch.float32, torch.float64)
WORLD_SIZES = (1, 2, 3)
_COLLECTIVES = ("all_reduce", "all_gather", "all_gather_object", "broadcast", "send", "recv",
                "batch_isend_irecv", "barrier")


def _narrow(t: torch.Tensor, layout: SlabLayout, rank: int) -> torch.Tensor:
    return t.narrow(2, layout.start(rank), layout.length(rank)).contiguous()


def blur_cases_rank() -> dict:
    """Every registry case in both dtypes on this rank; rank 0 returns the gathered results."""
    rank, world_size = comm.world()
    results = {}
    for case in BLUR_CASES:
        for dtype in DTYPES:
            physics = case.sharded(dtype, world_size)
            x, y = case.signal(dtype), case.measurement(dtype)
            x_local = _narrow(x, physics.layout, rank)
            y_local = _narrow(y, physics.measurement_layout(), rank)
            ax, aty = physics.A(x_local), physics.A_adjoint(y_local)
            sums = torch.stack([(ax * y_local).sum(), (x_local * aty).sum()])
            comm.all_reduce(sums, site="test.dots")
            torch.manual_seed(rank)  # a different random pair on every rank
            relative_error = physics.adjointness_test(x_local, num_samples=2)
            results[case.name, dtype] = {
                "A": gather_slabs(ax, dst=0), "A_adjoint": gather_slabs(aty, dst=0),
                "dots": sums, "adjointness": relative_error,
            }
    return results


def sharded_blur_rank() -> dict:
    """One launch per rank count (rank start-up dominates the run time): cases, accounting, errors."""
    return {"cases": blur_cases_rank(), "accounting": accounting_rank(),
            "errors": errors_rank() if comm.world()[1] == 3 else None}


def _counting_collectives(counts: dict) -> dict:
    """Replace torch.distributed's collectives with counting wrappers; returns the originals."""
    originals = {name: getattr(dist, name) for name in _COLLECTIVES}
    for name, fn in originals.items():
        def counted(*args, _fn=fn, _name=name, **kwargs):
            counts[_name] = counts.get(_name, 0) + 1
            return _fn(*args, **kwargs)
        setattr(dist, name, counted)
    return originals


def accounting_rank() -> dict:
    """A and A_adjoint under accounting, with torch.distributed's own calls counted independently."""
    rank, world_size = comm.world()
    case = next(c for c in BLUR_CASES if c.name == "37x53-k7x5-reflect")
    physics = case.sharded(torch.float64, world_size)
    x_local = _narrow(case.signal(torch.float64), physics.layout, rank)
    counts: dict = {}
    originals = _counting_collectives(counts)
    try:
        with comm.accounting() as ledger:
            physics.A_adjoint(physics.A(x_local))
    finally:
        for name, fn in originals.items():
            setattr(dist, name, fn)
    return {"rows": ledger.report(), "raw_calls": counts}


def errors_rank() -> dict:
    """Construction and call errors on 3 ranks (each rank raises the same; rank 0 reports them)."""
    rank, world_size = comm.world()
    messages = {}
    attempts = {
        "valid-empty-rank": lambda: ShardedBlur(torch.ones(1, 1, 29, 5), layout=37, padding="valid"),
        # one row too many on every rank (a rank that passed the check would wait for the others)
        "rows-mismatch": lambda: ShardedBlur(torch.ones(1, 1, 3, 3), layout=37).A(
            torch.ones(1, 1, SlabLayout.balanced(37, world_size).length(rank) + 1, 9)),
        "layout-ranks": lambda: ShardedBlur(torch.ones(1, 1, 3, 3), layout=SlabLayout.balanced(37, 2)),
    }
    one_rank_only = ShardedBlur(torch.ones(1, 1, 3, 3) / 9, layout=37, padding="circular")
    x_local = torch.ones(1, 1, one_rank_only.layout.length(rank), 9)
    attempts["prox_l2"] = lambda: one_rank_only.prox_l2(x_local, x_local, gamma=1.0)
    attempts["A_dagger"] = lambda: one_rank_only.A_dagger(x_local)
    for name, attempt in attempts.items():
        try:
            attempt()
            messages[name] = None
        except (ValueError, TypeError, NotImplementedError) as exc:
            messages[name] = f"{type(exc).__name__}: {exc}"
    return messages


@functools.lru_cache(maxsize=None)
def blur_run(nprocs: int) -> dict:
    return distinv.launch(sharded_blur_rank, nprocs=nprocs, timeout=120)


@functools.lru_cache(maxsize=None)
def reference(name: str, dtype: torch.dtype) -> dict:
    case = next(c for c in BLUR_CASES if c.name == name)
    blur, x, y = case.reference(dtype), case.signal(dtype), case.measurement(dtype)
    return {"A": blur.A(x), "A_adjoint": blur.A_adjoint(y), "x": x, "y": y}


CASE_IDS = [case.name for case in BLUR_CASES]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", CASE_IDS)
@pytest.mark.parametrize("nprocs", WORLD_SIZES)
def test_sharded_blur_equals_deepinv_blur(nprocs, name, dtype):
    out, ref = blur_run(nprocs)["cases"][name, dtype], reference(name, dtype)
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(out["A"], ref["A"], rtol=tol, atol=tol)
    torch.testing.assert_close(out["A_adjoint"], ref["A_adjoint"], rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", CASE_IDS)
@pytest.mark.parametrize("nprocs", WORLD_SIZES)
def test_sharded_blur_is_adjoint_across_ranks(nprocs, name, dtype):
    out, ref = blur_run(nprocs)["cases"][name, dtype], reference(name, dtype)
    tol = TOLERANCE[dtype]
    ax_y, x_aty = out["dots"]
    # the all-reduced inner products are the global ones, and they agree
    expected = (ref["A"] * ref["y"]).sum()
    assert ax_y.item() == pytest.approx(expected.item(), rel=10 * tol, abs=10 * tol)
    assert x_aty.item() == pytest.approx(ax_y.item(), rel=10 * tol, abs=10 * tol)
    assert out["adjointness"].item() < 10 * tol


def test_halo_bytes_are_accounted_at_blur_sites():
    out = blur_run(2)["accounting"]
    rows = {(row["rank"], row["site"]): row for row in out["rows"]}
    assert {site for _, site in rows} == {"blur.halo", "blur.halo_adjoint"}
    batch, channels, _, width = (2, 3, 37, 53)
    before, after = filter_reach(7)
    row_bytes = batch * channels * width * 8
    for rank in (0, 1):
        # reflect: the outer borders are mirrored locally; each rank sends and receives one interior halo
        interior = after if rank == 0 else before
        assert rows[rank, "blur.halo"]["calls"] == 1
        assert rows[rank, "blur.halo"]["bytes"] == 2 * interior * row_bytes
        assert rows[rank, "blur.halo_adjoint"]["calls"] == 1
        assert rows[rank, "blur.halo_adjoint"]["bytes"] == 2 * interior * row_bytes
    # every torch.distributed call on rank 0 went through the ledger
    assert sum(out["raw_calls"].values()) == rows[0, "blur.halo"]["calls"] + rows[0, "blur.halo_adjoint"]["calls"]


def test_bad_layouts_on_three_ranks_raise_clear_errors():
    messages = blur_run(3)["errors"]
    assert messages["valid-empty-rank"].startswith("ValueError: padding='valid' leaves rank 0 no measurement row")
    assert "rows [0, 13) but a filter of 29 taps is centred only on rows [14, 23)" in messages["valid-empty-rank"]
    assert messages["rows-mismatch"] == (
        "ValueError: mismatched shard shapes: x has 14 rows along dim=2 on rank 0, but the layout gives it 13 "
        "(rows (0, 13) of 37)"
    )
    assert messages["layout-ranks"] == "ValueError: layout has 2 slabs but there are 3 ranks"
    for method in ("prox_l2", "A_dagger"):
        assert messages[method].startswith(f"NotImplementedError: ShardedBlur.{method} on 3 ranks: deepinv's")


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"padding": "wrap"}, ValueError, r"padding must be one of \('valid', 'circular', .*\), got 'wrap'"),
        ({"filter": torch.ones(9, 9)}, ValueError, r"filter must be 4-D \(b, c, h, w\) or 5-D .*got shape \(9, 9\)"),
        ({"filter": [[1.0]]}, TypeError, r"filter must be a torch.Tensor, got list"),
        ({"filter": torch.ones(1, 1, 40, 3)}, ValueError,
         r"filter has 40 taps along the split axis but the signal has 37 rows: a filter larger than the signal"),
        ({"layout": "37"}, TypeError, r"layout must be a SlabLayout or a number of rows, got str"),
    ],
)
def test_bad_arguments_raise_errors_naming_the_parameter(kwargs, error, message):
    arguments = {"filter": torch.ones(1, 1, 3, 3), "layout": 37, "padding": "reflect", **kwargs}
    with pytest.raises(error, match=message):
        ShardedBlur(**arguments)


def test_filter_wider_than_signal_is_rejected_at_call():
    physics = ShardedBlur(torch.ones(1, 1, 3, 9), layout=10, padding="circular")
    with pytest.raises(ValueError, match=r"filter \(1, 1, 3, 9\) is larger than the signal along axis 3"):
        physics.A(torch.ones(1, 1, 10, 8))


def test_filter_given_at_call_is_stored_and_checked():
    physics = ShardedBlur(torch.ones(1, 1, 3, 3) / 9, layout=8, padding="reflect")
    new = torch.rand(1, 1, 5, 3)
    x = torch.randn(1, 1, 8, 6)
    y = physics.A(x, filter=new)
    assert torch.equal(physics.filter, new)
    torch.testing.assert_close(y, ShardedBlur(new, layout=8, padding="reflect").A(x))
    with pytest.raises(ValueError, match=r"filter has 9 taps along the split axis but the signal has 8 rows"):
        physics.A(x, filter=torch.ones(1, 1, 9, 3))


def test_least_squares_methods_work_on_one_rank():
    physics = ShardedBlur(torch.ones(1, 1, 3, 3, dtype=torch.float64) / 9, layout=8, padding="circular")
    x = torch.randn(1, 1, 8, 8, dtype=torch.float64)
    # x minimises ||A u - A x||^2 / 2 + ||u - x||^2 / 2: the prox of consistent data is x itself
    torch.testing.assert_close(physics.prox_l2(x, physics.A(x), gamma=1.0), x, rtol=1e-4, atol=1e-4)
