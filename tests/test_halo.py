"""Halo exchange and its adjoint: distributed result == single-process numpy padding, on 1, 2 and 3 ranks."""

import numpy as np
import pytest
import torch

import distinv
from distinv.distributed import comm
from distinv.distributed.halo import HaloPlan, add_halo_rows, halo_accumulate, halo_exchange, halo_rows, source_row
from distinv.distributed.sharding import SlabLayout

NUMPY_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap", "zeros": "constant"}

# (shape, dim, before, after, mode); before/after may be per rank (then given as a function of world size)
CASES = [
    ((1, 2, 10, 5), 2, 2, 3, "reflect"),
    ((1, 2, 10, 5), 2, 1, 1, "replicate"),
    ((1, 1, 11, 3), 2, 3, 2, "circular"),
    ((2, 1, 9, 4), 2, 2, 2, "zeros"),
    ((1, 1, 9, 4), 2, 2, 5, "none"),
    ((1, 1, 4, 9), 3, 4, 1, "reflect"),          # last axis
    ((1, 1, 7, 4, 3), 2, 5, 4, "reflect"),       # 3D; halos longer than a neighbour's slab
    ((1, 1, 8, 3), 2, "per-rank", "per-rank", "zeros"),
]


def _halos(value, world_size, sign):
    if value == "per-rank":
        return tuple((r + 1 + sign) % 3 for r in range(world_size))
    return value


def _global(shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def halo_cases_rank(cases):
    """Every rank: exchange and accumulate each case; returns every rank's results (rank 0 gathers)."""
    rank, world_size = comm.world()
    results = []
    with comm.accounting() as ledger:
        for index, (shape, dim, before, after, mode) in enumerate(cases):
            before, after = _halos(before, world_size, 0), _halos(after, world_size, 1)
            layout = SlabLayout.balanced(shape[dim], world_size)
            x = _global(shape, index)
            local = x.narrow(dim, layout.start(rank), layout.length(rank))
            extended = halo_exchange(local, before, after, dim=dim, mode=mode, layout=layout)
            y = _global(extended.shape, 1000 + 10 * index + rank)
            back = halo_accumulate(y, before, after, dim=dim, mode=mode, layout=layout)
            # the same through the halo rows alone (no extended copy of the slab)
            head, tail = halo_rows(local, before, after, dim=dim, mode=mode, layout=layout)
            offset, length = head.shape[dim], local.shape[dim]
            y_own = y.narrow(dim, offset, length).clone()
            back_from_rows = add_halo_rows(y_own, y.narrow(dim, 0, offset), y.narrow(dim, offset + length, tail.shape[dim]),
                                           before, after, dim=dim, mode=mode, layout=layout)
            results.append((extended, y, back, torch.cat([head, local, tail], dim), back_from_rows))
        sites = {row["site"] for row in ledger.report() if row["bytes"] > 0}
    gathered = [results]
    if world_size > 1:
        gathered = [None] * world_size
        comm.all_gather_object(gathered, results, site="test")
    return gathered, sites


def _reference(x, dim, before, after, mode, layout, rank):
    """Rows of the numpy-padded global signal that rank's extended slab must hold."""
    array = x.numpy()
    if mode == "none":
        start, stop = max(0, layout.start(rank) - before), min(layout.n, layout.stop(rank) + after)
        return torch.from_numpy(array.take(range(start, stop), axis=dim))
    widths = [(0, 0)] * x.ndim
    big = layout.n + 20
    widths[dim] = (big, big)
    padded = np.pad(array, widths, mode=NUMPY_MODES[mode])
    rows = range(big + layout.start(rank) - before, big + layout.stop(rank) + after)
    return torch.from_numpy(padded.take(rows, axis=dim))


@pytest.mark.parametrize("nprocs", [1, 2, 3])
def test_exchange_and_adjoint_match_single_process(nprocs):
    gathered, sites = distinv.launch(halo_cases_rank, CASES, nprocs=nprocs, timeout=120)
    for index, (shape, dim, before, after, mode) in enumerate(CASES):
        befores = _halos(before, nprocs, 0)
        afters = _halos(after, nprocs, 1)
        befores = befores if isinstance(befores, tuple) else (befores,) * nprocs
        afters = afters if isinstance(afters, tuple) else (afters,) * nprocs
        layout = SlabLayout.balanced(shape[dim], nprocs)
        x = _global(shape, index).requires_grad_(True)
        # forward: each rank's extended slab equals the single-process padded signal's rows
        for rank in range(nprocs):
            extended = gathered[rank][index][0]
            expected = _reference(x.detach(), dim, befores[rank], afters[rank], mode, layout, rank)
            torch.testing.assert_close(extended, expected, rtol=0, atol=0, msg=f"case {index} rank {rank}")
        # adjoint: the accumulated slabs are the gradient of sum_r <E_r x, y_r> (numpy padding, torch autograd)
        total = 0
        for rank in range(nprocs):
            extended_ref = _reference_autograd(x, dim, befores[rank], afters[rank], mode, layout, rank)
            total = total + (extended_ref * gathered[rank][index][1]).sum()
        total.backward()
        back = torch.cat([gathered[rank][index][2] for rank in range(nprocs)], dim=dim)
        torch.testing.assert_close(back, x.grad, rtol=1e-12, atol=1e-12, msg=f"adjoint case {index}")
        for rank in range(nprocs):  # halo rows alone: the same rows, the same sums
            extended, _, back, from_rows, back_from_rows = gathered[rank][index]
            torch.testing.assert_close(from_rows, extended, rtol=0, atol=0, msg=f"halo rows case {index}")
            torch.testing.assert_close(back_from_rows, back, rtol=0, atol=0, msg=f"add halo rows case {index}")
    if nprocs > 1:
        assert {"halo.exchange", "halo.accumulate"} <= sites


def _reference_autograd(x, dim, before, after, mode, layout, rank):
    """Differentiable version of :func:`_reference`: index the global signal with numpy's padded indices."""
    n = layout.n
    index = np.arange(n)
    if mode == "none":
        rows = index[max(0, layout.start(rank) - before): min(n, layout.stop(rank) + after)]
        return x.index_select(dim, torch.as_tensor(rows))
    big = n + 20
    numpy_mode = NUMPY_MODES[mode]
    if mode == "zeros":
        padded_index = np.pad(index, big, mode="constant", constant_values=-1)
    else:
        padded_index = np.pad(index, big, mode=numpy_mode)
    rows = padded_index[big + layout.start(rank) - before: big + layout.stop(rank) + after]
    safe = torch.as_tensor(np.where(rows < 0, 0, rows))
    mask_shape = [1] * x.ndim
    mask_shape[dim] = len(rows)
    mask = torch.as_tensor(rows >= 0, dtype=x.dtype).view(mask_shape)
    return x.index_select(dim, safe) * mask


def autograd_rank():
    """Backward of the exchange is the accumulate (and vice versa), on every rank."""
    rank, world_size = comm.world()
    layout = SlabLayout.balanced(9, world_size)
    local = _global((1, 2, layout.length(rank), 3), rank).requires_grad_(True)
    extended = halo_exchange(local, 2, 3, layout=layout, mode="reflect")
    weight = _global(extended.shape, 50 + rank)
    (extended * weight).sum().backward()
    expected = halo_accumulate(weight, 2, 3, layout=layout, mode="reflect")
    torch.testing.assert_close(local.grad, expected, rtol=0, atol=0)
    ext = weight.clone().requires_grad_(True)
    back = halo_accumulate(ext, 2, 3, layout=layout, mode="reflect")
    probe = _global(back.shape, 70 + rank)
    (back * probe).sum().backward()
    torch.testing.assert_close(ext.grad, halo_exchange(probe, 2, 3, layout=layout, mode="reflect"), rtol=0, atol=0)
    # the halo rows alone: backward of halo_rows is add_halo_rows, and the reverse
    local.grad = None
    head, tail = halo_rows(local, 2, 3, layout=layout, mode="reflect")
    offset, length = head.shape[2], local.shape[2]
    w_head, w_tail = weight.narrow(2, 0, offset), weight.narrow(2, offset + length, tail.shape[2])
    ((head * w_head).sum() + (tail * w_tail).sum()).backward()
    expected_rows = add_halo_rows(torch.zeros_like(local.detach()), w_head, w_tail, 2, 3, layout=layout)
    torch.testing.assert_close(local.grad, expected_rows, rtol=0, atol=0)
    parts = [t.clone().requires_grad_(True) for t in (weight.narrow(2, offset, length), w_head, w_tail)]
    summed = add_halo_rows(parts[0] * 1, parts[1], parts[2], 2, 3, layout=layout)
    (summed * probe).sum().backward()
    probe_head, probe_tail = halo_rows(probe, 2, 3, layout=layout)
    for part, expected_grad in zip(parts, (probe, probe_head, probe_tail)):
        torch.testing.assert_close(part.grad, expected_grad, rtol=0, atol=0)
    # the default layout (gathered from slab lengths) is the same as the explicit one
    torch.testing.assert_close(halo_exchange(local.detach(), 2, 3), extended.detach(), rtol=0, atol=0)
    return True


def test_autograd_backward_is_adjoint_on_two_ranks():
    assert distinv.launch(autograd_rank, nprocs=2, timeout=120)


def mismatched_layout_rank():
    rank, world_size = comm.world()
    layout = SlabLayout.balanced(8, world_size)
    local = torch.zeros(1, 1, layout.length(rank) + rank, 2)  # rank 1 has one row too many
    halo_exchange(local, 1, 1, layout=layout)


def test_mismatched_slab_raises():
    with pytest.raises(distinv.RankError, match="mismatched shard shapes"):
        distinv.launch(mismatched_layout_rank, nprocs=2, timeout=120)


def test_source_row_matches_numpy_padding():
    n = 5
    index = np.arange(n)
    for mode, numpy_mode in [("reflect", "reflect"), ("replicate", "edge"), ("circular", "wrap")]:
        padded = np.pad(index, 13, mode=numpy_mode)
        assert [source_row(i, n, mode) for i in range(-13, n + 13)] == padded.tolist()
    assert source_row(-1, n, "zeros") is None
    assert source_row(-3, 1, "reflect") == 0


def test_bad_arguments_raise_clear_errors():
    x = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match="mode must be one of"):
        halo_exchange(x, 1, 1, mode="mirror")
    with pytest.raises(ValueError, match="before must hold integers >= 0"):
        halo_exchange(x, -1, 1)
    with pytest.raises(ValueError, match=r"after must be an integer or one integer per rank \(1\)"):
        halo_exchange(x, 1, (1, 2))
    with pytest.raises(ValueError, match=r"dim must be in \[-4, 3\]"):
        halo_exchange(x, 1, 1, dim=4)
    with pytest.raises(ValueError, match="mismatched shard shapes: extended slab has 4 rows"):
        halo_accumulate(x, 1, 1, layout=SlabLayout(((0, 4),)))
    with pytest.raises(ValueError, match=r"mismatched shard shapes: tail has shape \(1, 1, 2, 4\), expected \(1, 1, 1, 4\)"):
        add_halo_rows(x, torch.zeros(1, 1, 1, 4), torch.zeros(1, 1, 2, 4), 1, 1)
    with pytest.raises(ValueError, match="needs the layout"):
        halo_accumulate(x, 1, 1, mode="none")
    with pytest.raises(TypeError, match="layout must be a SlabLayout"):
        HaloPlan.build([(0, 4)], 1, 1)


def test_single_rank_reflect_halo_longer_than_signal():
    x = torch.arange(3.0).view(1, 1, 3)
    out = halo_exchange(x, 5, 0, dim=2, mode="reflect")
    expected = np.pad(np.arange(3.0), (5, 0), mode="reflect")
    assert out.flatten().tolist() == expected.tolist()
