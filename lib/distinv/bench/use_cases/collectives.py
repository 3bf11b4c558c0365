"""The ``allreduce`` use case: the cost of summing a ``size × size`` float32 image over all ranks.

This is the collective that a replicated tiled prior (deepinv's ``DistributedProcessing``) and the
data-fidelity gradient :math:`\\sum_k A_k^\\top \\nabla d_k` pay once per iteration; the scaling model
(:mod:`distinv.bench.studies.scaling`) fits its latency and bandwidth to these runs.

>>> from distinv.bench.registry import COMMON_PARAMS
>>> result = run_allreduce({**COMMON_PARAMS, "size": 16, "iterations": 2, "device": "cpu"})
>>> [row["comm_bytes"] for row in result["history"]]  # one rank: nothing is sent
[0, 0]
"""

from __future__ import annotations

from typing import Any

import torch

from distinv.bench.measure import IterationClock, gather_objects, peak_memory_bytes, reset_peak_memory
from distinv.bench.provenance import device_name
from distinv.distributed import comm
from distinv.launch import rank_device

__all__ = ["run_allreduce"]


def run_allreduce(cfg: dict[str, Any]) -> dict[str, Any]:
    """Rank entry point: ``iterations`` timed all-reduces (after ``warmup`` untimed ones).

    :param dict cfg: ``size, iterations, warmup, device``.
    :return: ``{"history", "final", "per_rank"}`` (see :mod:`distinv.bench.registry`).
    """
    if not isinstance(cfg["size"], int) or cfg["size"] < 1:
        raise ValueError(f"size must be an integer >= 1, got {cfg['size']!r}")
    device = rank_device() if cfg["device"] in ("auto", None) else torch.device(cfg["device"])
    rank = comm.world()[0]
    buffer = torch.ones(cfg["size"], cfg["size"], device=device)
    clock = IterationClock(device)
    for _ in range(cfg["warmup"]):
        comm.all_reduce(buffer, site="bench.warmup")
    reset_peak_memory(device)
    history = []
    with comm.accounting() as ledger:
        for iteration in range(1, cfg["iterations"] + 1):
            clock.start()
            comm.all_reduce(buffer, site="allreduce")
            history.append({"iteration": iteration, **clock.stop()})
        local = ledger.summary()
    peak = peak_memory_bytes(device)
    per_rank = gather_objects({"rank": rank, "peak_mem_bytes": peak, "comm_bytes": local["bytes"],
                               "comm_seconds": local["seconds"]})
    for row in history:
        row["peak_mem_bytes"] = max(r["peak_mem_bytes"] for r in per_rank)
    return {"history": history, "final": {"message_bytes": buffer.numel() * buffer.element_size(),
                                          "device_name": device_name(device)},
            "per_rank": per_rank}
