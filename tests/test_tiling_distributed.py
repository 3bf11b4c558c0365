"""Tiled denoiser across 1, 2 and 3 gloo ranks == the single-process tiled denoiser; sharded == replicated
== the dynamic schedule."""

import dataclasses
import time

import pytest
import torch

import distinv
from distinv.distributed import comm
from distinv.distributed.sharding import SlabLayout, gather_slabs, slab_bounds
from distinv.tiling import TiledDenoiser, TilingConfig
from nets import DownUpNet, ThreeConvNet

NETS = {"three": ThreeConvNet, "downup": DownUpNet}
SIGMA = 0.2

# (net, shape, config): odd sizes, 2D and 3D, blended and crop, exact, a rank without tile rows (40 rows)
CASES = [
    ("three", (1, 2, 75, 61), TilingConfig(patch=24, overlap=6, align=1)),
    ("three", (2, 2, 75, 61), TilingConfig(patch=24, overlap=5, blend="crop", align=4, max_batch_size=2)),
    ("three", (1, 1, 40, 30), TilingConfig(patch=24, overlap=4, align=8)),
    ("downup", (1, 1, 333, 517), TilingConfig(patch=128, overlap=6, blend="crop", exact=True, align=2)),
    ("three", (1, 1, 37, 45, 53), TilingConfig(patch=16, overlap=4, align=2)),
    ("downup", (1, 1, 37, 45, 53), TilingConfig(patch=16, overlap=6, blend="crop", exact=True, align=2)),
]


def _signal(shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _net(name, shape):
    return NETS[name](channels=shape[1], dim=len(shape) - 2).double()


def _sharded(config):
    return dataclasses.replace(config, layout="sharded")


def _dynamic(config):
    return dataclasses.replace(config, schedule="dynamic")


def tiled_rank(cases):
    """Every case in both layouts and with the dynamic schedule; rank 0 returns the full outputs and the
    accounted sites."""
    rank, world_size = comm.world()
    outputs = []
    with comm.accounting() as ledger:
        for name, shape, config in cases:
            net, x = _net(name, shape), _signal(shape)
            replicated = TiledDenoiser(net, config)(x, SIGMA)
            start, stop = slab_bounds(shape[2], world_size, rank)
            local = TiledDenoiser(net, _sharded(config))(x[:, :, start:stop], SIGMA)
            dynamic = TiledDenoiser(net, _dynamic(config))(x, SIGMA)
            outputs.append((replicated, gather_slabs(local, dst=0), dynamic))
        sites = {row["site"] for row in ledger.report() if row["bytes"] > 0}
    return outputs, sites


@pytest.mark.parametrize("nprocs", [1, 2, 3])
def test_distributed_equals_single_process_in_both_layouts(nprocs):
    outputs, sites = distinv.launch(tiled_rank, CASES, nprocs=nprocs, timeout=120)
    for (name, shape, config), (replicated, sharded, dynamic) in zip(CASES, outputs):
        net, x = _net(name, shape), _signal(shape)
        reference = TiledDenoiser(net, config)(x, SIGMA)
        if config.exact:
            torch.testing.assert_close(reference, net(x, SIGMA), rtol=0, atol=1e-12)
        torch.testing.assert_close(replicated, reference, rtol=0, atol=1e-12, msg=f"replicated {name} {shape}")
        torch.testing.assert_close(sharded, reference, rtol=0, atol=1e-12, msg=f"sharded {name} {shape}")
        torch.testing.assert_close(dynamic, reference, rtol=0, atol=1e-12, msg=f"dynamic {name} {shape}")
    if nprocs > 1:
        assert {"tiling.allreduce", "tiling.halo", "tiling.accumulate", "tiling.claim"} <= sites


GRAD_SHAPE = (1, 2, 70, 58)
GRAD_CONFIGS = (
    TilingConfig(patch=24, overlap=6, align=2),
    # 2 tiles: on 3 ranks one rank has no tile (replicated), and one holds no tile's core centre (sharded)
    TilingConfig(patch=(48, 64), overlap=6, align=2),
)


def gradient_rank():
    """Gradients wrt the signal and the parameters, replicated and sharded, summed over ranks."""
    rank, world_size = comm.world()
    results = []
    for config in [c for base in GRAD_CONFIGS for c in (base, _sharded(base), _dynamic(base))]:
        net = _net("three", GRAD_SHAPE)
        x, probe = _signal(GRAD_SHAPE), _signal(GRAD_SHAPE, 9)
        if config.layout == "sharded":
            start, stop = slab_bounds(GRAD_SHAPE[2], world_size, rank)
            x, probe = x[:, :, start:stop].clone(), probe[:, :, start:stop]
        x.requires_grad_(True)
        (TiledDenoiser(net, config)(x, SIGMA) * probe).sum().backward()
        grad_x = x.grad if config.layout == "replicated" else gather_slabs(x.grad, dst=None)
        # a rank without tiles never calls the network: its share of the parameters' gradient is zero
        grads = [comm.all_reduce(torch.zeros_like(p) if p.grad is None else p.grad.clone(), site="test")
                 for p in net.parameters()]
        results.append([grad_x] + grads)
    return results


@pytest.mark.parametrize("nprocs", [2, 3])
def test_backward_equals_single_process_gradient(nprocs):
    results = distinv.launch(gradient_rank, nprocs=nprocs, timeout=120)
    expected = {}
    for base in GRAD_CONFIGS:
        net = _net("three", GRAD_SHAPE)
        x = _signal(GRAD_SHAPE).requires_grad_(True)
        (TiledDenoiser(net, base)(x, SIGMA) * _signal(GRAD_SHAPE, 9)).sum().backward()
        expected[base] = [x.grad] + [p.grad for p in net.parameters()]
    configs = [c for base in GRAD_CONFIGS for c in ((base, "replicated"), (base, "sharded"), (base, "dynamic"))]
    for index, (base, layout) in enumerate(configs):
        for got, want in zip(results[index], expected[base]):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10, msg=f"{layout} {base.patch}")
    grid = TiledDenoiser(lambda x, s: x, GRAD_CONFIGS[1]).grid(GRAD_SHAPE)
    if nprocs == 3:  # the second config leaves a rank without tiles, in both layouts
        assert min(len(tiles) for tiles in grid.split_replicated(3)) == 0
        assert min(len(rows) for rows in grid.first_axis_rows(SlabLayout.balanced(GRAD_SHAPE[2], 3))) == 0


class _PacedIdentity(torch.nn.Module):
    """The identity, taking ``seconds`` per call; counts the tiles it ran."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds, self.tiles = seconds, 0

    def forward(self, x, sigma):
        time.sleep(self.seconds)
        self.tiles += x.shape[0]
        return x


def paced_rank(schedule):
    """Rank 1's network is 15x slower than rank 0's: tiles run per rank, and whether the output is exact."""
    rank, world_size = comm.world()
    net = _PacedIdentity(0.002 if rank == 0 else 0.03)
    x = torch.rand(1, 1, 96, 96, generator=torch.Generator().manual_seed(0))
    config = TilingConfig(patch=16, overlap=4, align=1, max_batch_size=1, schedule=schedule)
    out = TiledDenoiser(net, config)(x, SIGMA)
    return comm.all_gather_object([None] * world_size, net.tiles, site="test"), torch.allclose(out, x, atol=1e-6)


def claim_counters_rank():
    """Which claim counters of the first 100 dynamically scheduled calls are in the store, during the third
    of three calls (seen from inside the network) and after it."""
    from torch.distributed import distributed_c10d

    from distinv.tiling.denoiser import CLAIMS_KEY_PREFIX

    store = distributed_c10d._get_default_store()
    keys = [f"{CLAIMS_KEY_PREFIX}{n}" for n in range(100)]

    def present():
        return [key for key in keys if store.check([key])]

    seen = []
    network = lambda x, sigma: seen.append(present()) or x  # noqa: E731
    tiled = TiledDenoiser(network, TilingConfig(patch=16, overlap=4, align=1, schedule="dynamic"))
    for _ in range(3):
        seen.clear()
        tiled(torch.rand(1, 1, 40, 40), SIGMA)
    during = comm.all_gather_object([None] * comm.world()[1], seen[0] if seen else None, site="test")
    return [keys for keys in during if keys is not None], present()


def test_dynamic_schedule_leaves_no_counter_in_the_store():
    during, after = distinv.launch(claim_counters_rank, nprocs=3, timeout=120)
    # a rank that ran a tile of the third call saw that call's counter only (the two before were deleted)
    assert during and all(len(keys) == 1 and keys[0].startswith("distinv/tiling/claims/") for keys in during)
    assert after == []


def test_dynamic_schedule_gives_the_slow_rank_fewer_tiles():
    static, static_exact = distinv.launch(paced_rank, "static", nprocs=2, timeout=120)
    dynamic, dynamic_exact = distinv.launch(paced_rank, "dynamic", nprocs=2, timeout=120)
    assert static == [18, 18] and static_exact
    # every tile ran once; the fast rank claimed most of them (about 15 of every 16 with these paces)
    assert sum(dynamic) == 36 and dynamic[0] >= 27 and dynamic_exact


def cuda_pacing_rank(n_batches):
    """The dynamic schedule's claims on a CUDA device, with ``torch.cuda.Event`` replaced by a fake that
    logs its records and synchronisations: what this rank did, in order."""
    from distinv.tiling import denoiser

    log = []

    class LoggedEvent:
        made = 0

        def __init__(self):
            self.number, LoggedEvent.made = LoggedEvent.made, LoggedEvent.made + 1

        def record(self):
            log.append(("record", self.number))

        def synchronize(self):
            log.append(("sync", self.number))

    real_event, torch.cuda.Event = torch.cuda.Event, LoggedEvent
    try:
        batches = [[(index,)] for index in range(n_batches)]
        key = f"{denoiser.CLAIMS_KEY_PREFIX}cuda-pacing-test"
        for batch in TiledDenoiser._claimed(batches, key, torch.device("cuda"), comm.world()[1]):
            log.append(("run", batch[0][0]))
    finally:
        torch.cuda.Event = real_event
    return comm.all_gather_object([None] * comm.world()[1], log, site="test")


@pytest.mark.parametrize("nprocs", [1, 2])
def test_dynamic_schedule_on_cuda_claims_with_at_most_two_batches_queued(nprocs):
    from distinv.tiling.denoiser import _QUEUED_BATCHES

    logs = distinv.launch(cuda_pacing_rank, 9, nprocs=nprocs, timeout=120)
    assert sorted(index for log in logs for step, index in log if step == "run") == list(range(9))
    for log in logs:
        runs = [index for step, index in log if step == "run"]
        assert runs == sorted(runs)  # a rank claims in order
        recorded, waited = [], []
        for step, number in log:
            if step == "run":  # a batch is claimed (then run) only while fewer than 2 batches are queued
                assert len(recorded) - len(waited) < _QUEUED_BATCHES, log
            elif step == "record":
                assert number == len(recorded)  # one event after each batch
                recorded.append(number)
            else:
                assert number == len(waited)  # oldest first
                waited.append(number)
        assert len(recorded) == len(runs)
        # before its last (empty) claim a rank waits until at most one batch is queued
        assert len(recorded) - len(waited) == min(len(runs), _QUEUED_BATCHES - 1)


def mismatched_shards_rank():
    rank, _ = comm.world()
    local = torch.zeros(1, 1, 16, 32 + rank)
    TiledDenoiser(lambda x, s: x, TilingConfig(patch=16, overlap=4, layout="sharded"))(local, 0.1)


def test_mismatched_shard_shapes_raise():
    with pytest.raises(distinv.RankError, match=r"mismatched shard shapes.*rank 1 has \(1, 1, 16, 33\)"):
        distinv.launch(mismatched_shards_rank, nprocs=2, timeout=120)


def test_fewer_slab_rows_than_ranks_says_how_many_ranks_at_most():
    with pytest.raises(ValueError, match="use at most 2 ranks"):
        slab_bounds(2, 3, 0)
