"""Tests of the communication ledger (``distinv.distributed.comm``).

Bytes are checked against the sizes of the tensors that really travel; the rank functions live at
module level so that the ranks (forkserver) can import them.
"""

import pytest
import torch
import torch.distributed as dist

import distinv
from distinv.distributed import comm

NUMEL = 37  # odd, so a per-element miscount cannot hide behind a round number


def _every_call_once() -> dict:
    """Each wrapper once inside ``accounting``; returns the ledger rows of every rank and the values."""
    rank, world = comm.world()
    nxt, prev = (rank + 1) % world, (rank - 1) % world
    reduced = torch.ones(NUMEL, dtype=torch.float64)
    to_send = torch.full((NUMEL,), float(rank), dtype=torch.float32)
    received = torch.empty(NUMEL, dtype=torch.float32)
    gathered = [torch.empty(NUMEL, dtype=torch.int32) for _ in range(world)]
    broadcast = torch.full((NUMEL,), float(rank), dtype=torch.float16)
    blocking = torch.full((NUMEL,), float(rank), dtype=torch.float64)
    objects = [None] * world
    with comm.accounting() as ledger:
        comm.all_reduce(reduced, site="test.all_reduce")
        comm.batch_isend_irecv(
            [comm.P2POp(dist.isend, to_send, nxt), comm.P2POp(dist.irecv, received, prev)], site="test.p2p"
        )
        comm.all_gather(gathered, torch.full((NUMEL,), rank, dtype=torch.int32), site="test.all_gather")
        comm.broadcast(broadcast, src=world - 1, site="test.broadcast")
        if rank == 0:
            comm.send(blocking, dst=1, site="test.send")
        elif rank == 1:
            comm.recv(blocking, src=0, site="test.recv")
        comm.all_gather_object(objects, {"rank": rank}, site="test.objects")
        comm.barrier(site="test.barrier")
    return {
        "rows": ledger.report(),
        "reduced": reduced,
        "received": received,
        "gathered": torch.stack(gathered),
        "broadcast": broadcast,
        "blocking": blocking,
        "objects": objects,
    }


def _calls_outside_accounting() -> dict:
    """Collectives with accounting off (after a block that was on): nothing may be recorded."""
    rank, world = comm.world()
    with comm.accounting() as ledger:
        pass
    tensor = torch.ones(NUMEL)
    comm.all_reduce(tensor, site="test.off")
    comm.batch_isend_irecv(
        [comm.P2POp(dist.isend, torch.ones(3), (rank + 1) % world),
         comm.P2POp(dist.irecv, torch.empty(3), (rank - 1) % world)],
        site="test.off",
    )
    comm.barrier(site="test.off")
    return {"totals": ledger.totals(), "enabled": ledger.enabled, "reduced": tensor}


def _iterations(iterations: int) -> list[dict]:
    """``iterations`` all-reduces of NUMEL float32 values; the report divided per iteration."""
    with comm.accounting() as ledger:
        for _ in range(iterations):
            comm.all_reduce(torch.ones(NUMEL), site="test.loop")
    return ledger.report(per=iterations)


def _one_rank_collectives() -> dict:
    tensor = torch.full((NUMEL,), 2.0)
    with comm.accounting() as ledger:
        comm.all_reduce(tensor, site="test.single")
        comm.broadcast(tensor, src=0, site="test.single")
        comm.barrier(site="test.single")
    return {"totals": ledger.totals(), "tensor": tensor, "world": comm.world()}


def _by_rank_site(rows: list[dict]) -> dict:
    return {(row["rank"], row["site"]): row for row in rows}


def test_bytes_counted_equal_tensor_sizes_on_two_ranks():
    out = distinv.launch(_every_call_once, nprocs=2, timeout=120)
    rows = _by_rank_site(out["rows"])
    for rank in (0, 1):
        assert rows[rank, "test.all_reduce"]["bytes"] == NUMEL * 8
        assert rows[rank, "test.p2p"]["bytes"] == 2 * NUMEL * 4  # one float32 send plus one receive
        assert rows[rank, "test.all_gather"]["bytes"] == NUMEL * 4  # received from the one other rank
        assert rows[rank, "test.broadcast"]["bytes"] == NUMEL * 2
        assert rows[rank, "test.objects"]["bytes"] == 0
        assert rows[rank, "test.barrier"]["bytes"] == 0
        for site in ("all_reduce", "p2p", "all_gather", "broadcast", "objects", "barrier"):
            assert rows[rank, f"test.{site}"]["calls"] == 1
            assert rows[rank, f"test.{site}"]["seconds"] > 0
    assert rows[0, "test.send"]["bytes"] == NUMEL * 8 and (0, "test.recv") not in rows
    assert rows[1, "test.recv"]["bytes"] == NUMEL * 8 and (1, "test.send") not in rows
    # the wrappers did the communication, not only the counting
    torch.testing.assert_close(out["reduced"], torch.full((NUMEL,), 2.0, dtype=torch.float64))
    torch.testing.assert_close(out["received"], torch.ones(NUMEL))
    torch.testing.assert_close(out["gathered"], torch.tensor([0, 1], dtype=torch.int32)[:, None].expand(2, NUMEL))
    torch.testing.assert_close(out["broadcast"], torch.ones(NUMEL, dtype=torch.float16))
    torch.testing.assert_close(out["blocking"], torch.zeros(NUMEL, dtype=torch.float64))
    assert out["objects"] == [{"rank": 0}, {"rank": 1}]


def test_all_gather_counts_bytes_received_from_every_other_rank():
    rows = _by_rank_site(distinv.launch(_every_call_once, nprocs=3, timeout=120)["rows"])
    for rank in range(3):
        assert rows[rank, "test.all_gather"]["bytes"] == 2 * NUMEL * 4


def test_accounting_off_records_nothing_and_still_communicates():
    out = distinv.launch(_calls_outside_accounting, nprocs=2, timeout=120)
    assert out["totals"] == {}
    assert out["enabled"] is False
    torch.testing.assert_close(out["reduced"], torch.full((NUMEL,), 2.0))


def test_report_per_iteration_divides_every_rank_totals():
    rows = distinv.launch(_iterations, 4, nprocs=2, timeout=120)
    assert [(row["rank"], row["site"]) for row in rows] == [(0, "test.loop"), (1, "test.loop")]
    for row in rows:
        assert row["calls"] == 1.0
        assert row["bytes"] == NUMEL * 4


def test_one_rank_collectives_are_free_and_unrecorded():
    out = distinv.launch(_one_rank_collectives, nprocs=1, timeout=120)
    assert out["world"] == (0, 1)
    assert out["totals"] == {}
    torch.testing.assert_close(out["tensor"], torch.full((NUMEL,), 2.0))


def test_world_without_process_group_is_single_rank():
    assert not dist.is_initialized()
    assert comm.world() == (0, 1)


def test_report_rejects_non_positive_per():
    with pytest.raises(ValueError, match=r"per must be >= 1, got 0"):
        comm.CommLedger().report(per=0)


def test_accounting_restores_previous_state_and_can_accumulate():
    ledger = comm.comm_ledger()
    assert ledger.enabled is False
    with comm.accounting() as outer:
        outer.add("test.a", nbytes=10, seconds=0.25)
        with comm.accounting(reset=False) as inner:
            inner.add("test.a", nbytes=6, seconds=0.25)
        assert outer.enabled is True  # the inner block gave back the outer state
    assert ledger.enabled is False
    assert ledger.totals() == {"test.a": {"calls": 2, "bytes": 16, "seconds": 0.5}}
    assert ledger.summary() == {"calls": 2, "bytes": 16, "seconds": 0.5}
    with comm.accounting():  # reset=True starts a fresh count
        pass
    assert ledger.totals() == {}


def test_overhead_benchmark_reports_every_variant_from_the_same_run():
    from distinv.bench.studies.comm_overhead import OverheadConfig, measure_comm_overhead

    result = measure_comm_overhead(OverheadConfig(nprocs=2, calls=3, repeats=2, warmup=1))
    assert set(result["median_us"]) == {"raw", "comm_off", "comm_on"}
    assert result["overhead_off_us"] == result["median_us"]["comm_off"] - result["median_us"]["raw"]
    low, high = result["raw_spread_us"]
    assert 0 < low <= result["median_us"]["raw"] <= high


@pytest.mark.parametrize("field, value", [("calls", 0), ("nprocs", 0), ("numel", 2.5), ("warmup", -1)])
def test_overhead_config_is_validated(field, value):
    from distinv.bench.studies.comm_overhead import OverheadConfig

    with pytest.raises(ValueError, match=rf"{field} must be an integer >= \d, got {value}"):
        OverheadConfig(**{field: value})
