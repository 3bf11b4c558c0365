"""Slab layouts, scatter and gather: distributed result == the single-process signal, on 1, 2 and 3 ranks."""

import pytest
import torch

import distinv
from distinv.distributed import comm
from distinv.distributed.sharding import SlabLayout, gather_slabs, scatter_slabs, slab_bounds


@pytest.mark.parametrize("n, world_size, align", [(10, 3, 1), (333, 2, 8), (517, 3, 8), (5, 5, 1), (17, 3, 4)])
def test_balanced_slabs_partition_the_rows(n, world_size, align):
    bounds = [slab_bounds(n, world_size, r, align) for r in range(world_size)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    assert all(start % align == 0 and stop > start for start, stop in bounds)
    units = [-(-(stop - start) // align) for start, stop in bounds]
    assert max(units) - min(units) <= 1
    assert units == sorted(units, reverse=True)  # the first ranks take the extra units


def test_too_many_ranks_says_how_many_at_most():
    with pytest.raises(ValueError, match="use at most 3 ranks"):
        slab_bounds(17, 4, 0, align=8)
    with pytest.raises(ValueError, match="use at most 2 ranks"):
        SlabLayout.balanced(2, 3)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match=r"rank must be in \[0, 1\], got 2"):
        slab_bounds(8, 2, 2)
    with pytest.raises(TypeError, match="n must be an integer >= 1, got 2.5"):
        slab_bounds(2.5, 1, 0)
    with pytest.raises(ValueError, match="align must be an integer >= 1, got 0"):
        slab_bounds(8, 1, 0, align=0)
    with pytest.raises(ValueError, match=r"rank 1 has \(4, 4\)"):
        SlabLayout(((0, 4), (4, 4)))
    with pytest.raises(ValueError, match=r"row must be in \[0, 4\)"):
        SlabLayout(((0, 4),)).owner(4)


def _signal(shape):
    return torch.randn(shape, generator=torch.Generator().manual_seed(sum(shape)))


def scatter_gather_rank(shape, dim, align):
    rank, world_size = comm.world()
    x = _signal(shape)
    local = scatter_slabs(x if rank == 1 % world_size else None, src=1 % world_size, dim=dim, align=align)
    start, stop = slab_bounds(shape[dim], world_size, rank, align)
    torch.testing.assert_close(local, x.narrow(dim, start, stop - start), rtol=0, atol=0)
    everywhere = gather_slabs(local, dst=None, dim=dim)
    torch.testing.assert_close(everywhere, x, rtol=0, atol=0)
    on_last = gather_slabs(local, dst=world_size - 1, dim=dim)
    assert (on_last is None) == (rank != world_size - 1)
    if on_last is not None:
        torch.testing.assert_close(on_last, x, rtol=0, atol=0)
    return gather_slabs(local, dst=0, dim=dim)


@pytest.mark.parametrize("nprocs", [1, 2, 3])
@pytest.mark.parametrize("shape, dim, align", [((1, 2, 37, 5), 2, 8), ((2, 1, 7, 4, 3), 2, 1), ((1, 1, 4, 11), 3, 2)])
def test_scatter_then_gather_returns_the_signal(nprocs, shape, dim, align):
    full = distinv.launch(scatter_gather_rank, shape, dim, align, nprocs=nprocs, timeout=120)
    torch.testing.assert_close(full, _signal(shape), rtol=0, atol=0)


def mismatched_gather_rank():
    rank, _ = comm.world()
    gather_slabs(torch.zeros(1, 1, 3, 4 + rank))


def test_gather_of_mismatched_shards_raises():
    with pytest.raises(distinv.RankError, match=r"mismatched shard shapes.*rank 1 has \(1, 1, 3, 5\)"):
        distinv.launch(mismatched_gather_rank, nprocs=2, timeout=120)
