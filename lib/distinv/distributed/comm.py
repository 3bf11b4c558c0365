"""Accounted communication: every collective and point-to-point that distinv issues goes through here.

Each call names its *site* (``"halo.exchange"``, ``"tiling.allreduce"``, ...). When accounting is on,
the ledger records per site the number of calls, the bytes this rank sent or received and the seconds
spent in the call (synchronous wall time; for CUDA tensors the stream is synchronised first so the
time is the communication's, not queued compute). When it is off, the wrappers forward to
``torch.distributed`` after one boolean test: no measurable overhead.

>>> ledger = CommLedger()
>>> ledger.add("demo", nbytes=8, seconds=0.5)
>>> ledger.totals()["demo"]["bytes"]
8
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import torch
import torch.distributed as dist

__all__ = [
    "CommLedger", "comm_ledger", "accounting", "all_reduce", "all_gather", "all_gather_object",
    "broadcast", "send", "recv", "batch_isend_irecv", "barrier", "world", "P2POp", "counter_add",
    "counter_delete",
]


@dataclass
class _SiteStats:
    calls: int = 0
    bytes: int = 0
    seconds: float = 0.0


@dataclass
class CommLedger:
    """Per-site totals of communication issued by this rank."""

    sites: dict[str, _SiteStats] = field(default_factory=lambda: defaultdict(_SiteStats))
    enabled: bool = False

    def add(self, site: str, nbytes: int, seconds: float) -> None:
        stats = self.sites[site]
        stats.calls += 1
        stats.bytes += int(nbytes)
        stats.seconds += float(seconds)

    def reset(self) -> None:
        self.sites.clear()

    def totals(self) -> dict[str, dict[str, float]]:
        """``{site: {"calls", "bytes", "seconds"}}`` for this rank."""
        return {name: {"calls": s.calls, "bytes": s.bytes, "seconds": s.seconds} for name, s in self.sites.items()}

    def summary(self) -> dict[str, float]:
        """Totals over all sites: ``{"calls", "bytes", "seconds"}``."""
        stats = self.sites.values()
        return {"calls": sum(s.calls for s in stats), "bytes": sum(s.bytes for s in stats),
                "seconds": sum(s.seconds for s in stats)}

    def report(self, per: int = 1) -> list[dict]:
        """Every rank's per-site totals divided by ``per`` (e.g. the number of iterations).

        A collective call: every rank must call it. Returns one row per (rank, site).
        """
        if per < 1:
            raise ValueError(f"per must be >= 1, got {per}")
        local = self.totals()
        gathered = [local]
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            gathered = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, local)
        return [
            {"rank": rank, "site": site, "calls": s["calls"] / per, "bytes": s["bytes"] / per,
             "seconds": s["seconds"] / per}
            for rank, sites in enumerate(gathered) for site, s in sorted(sites.items())
        ]


_LEDGER = CommLedger()


def comm_ledger() -> CommLedger:
    """The process-wide ledger."""
    return _LEDGER


@contextmanager
def accounting(reset: bool = True) -> Iterator[CommLedger]:
    """Record communication inside the block; yields the ledger.

    >>> with accounting() as ledger:
    ...     pass
    >>> ledger.summary()["calls"]
    0
    """
    previous = _LEDGER.enabled
    if reset:
        _LEDGER.reset()
    _LEDGER.enabled = True
    try:
        yield _LEDGER
    finally:
        _LEDGER.enabled = previous


def world() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` when no process group is initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def _sync(tensors: Sequence[torch.Tensor]) -> None:
    if any(t.is_cuda for t in tensors):
        torch.cuda.synchronize()


class _Timed:
    """Context that records one call in the ledger when accounting is on."""

    __slots__ = ("site", "nbytes", "tensors", "start")

    def __init__(self, site: str, nbytes: int, tensors: Sequence[torch.Tensor]):
        self.site, self.nbytes, self.tensors = site, nbytes, tensors

    def __enter__(self):
        _sync(self.tensors)
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        _sync(self.tensors)
        _LEDGER.add(self.site, self.nbytes, time.perf_counter() - self.start)


def _issue(site: str, nbytes: int, tensors: Sequence[torch.Tensor], call) -> None:
    """Run ``call()``; when accounting is on, record it under ``site`` with ``nbytes``."""
    if not _LEDGER.enabled:
        call()
        return
    with _Timed(site, nbytes, tensors):
        call()


def all_reduce(tensor: torch.Tensor, *, site: str, op=dist.ReduceOp.SUM) -> torch.Tensor:
    """In-place all-reduce of ``tensor`` (sum by default); a no-op on one rank."""
    if world()[1] > 1:
        _issue(site, _nbytes(tensor), [tensor], lambda: dist.all_reduce(tensor, op=op))
    return tensor


def all_gather(tensors: list[torch.Tensor], tensor: torch.Tensor, *, site: str) -> list[torch.Tensor]:
    """All-gather equally shaped tensors into ``tensors``; bytes counted are those received."""
    if world()[1] == 1:
        tensors[0].copy_(tensor)
    else:
        _issue(site, _nbytes(tensor) * (len(tensors) - 1), [tensor], lambda: dist.all_gather(tensors, tensor))
    return tensors


def all_gather_object(objects: list, obj, *, site: str) -> list:
    """All-gather picklable objects (small metadata); bytes are not counted, calls and time are."""
    if world()[1] == 1:
        objects[0] = obj
    else:
        _issue(site, 0, [], lambda: dist.all_gather_object(objects, obj))
    return objects


def broadcast(tensor: torch.Tensor, src: int, *, site: str) -> torch.Tensor:
    """Broadcast ``tensor`` from ``src`` in place."""
    if world()[1] > 1:
        _issue(site, _nbytes(tensor), [tensor], lambda: dist.broadcast(tensor, src=src))
    return tensor


def send(tensor: torch.Tensor, dst: int, *, site: str) -> None:
    """Blocking point-to-point send."""
    _issue(site, _nbytes(tensor), [tensor], lambda: dist.send(tensor, dst=dst))


def recv(tensor: torch.Tensor, src: int, *, site: str) -> torch.Tensor:
    """Blocking point-to-point receive into ``tensor``."""
    _issue(site, _nbytes(tensor), [tensor], lambda: dist.recv(tensor, src=src))
    return tensor


P2POp = dist.P2POp


def batch_isend_irecv(ops: list[dist.P2POp], *, site: str) -> None:
    """Issue a batch of sends/receives and wait for all of them (e.g. both halos at once).

    Bytes counted are those sent plus those received by this rank.
    """
    if not ops:
        return
    tensors = [op.tensor for op in ops]

    def run() -> None:
        for work in dist.batch_isend_irecv(ops):
            work.wait()

    _issue(site, sum(_nbytes(t) for t in tensors), tensors, run)


def barrier(*, site: str = "barrier") -> None:
    """Barrier across ranks; a no-op on one rank."""
    if world()[1] > 1:
        _issue(site, 0, [], dist.barrier)


def _store() -> "dist.Store":
    """The key-value store the default process group was initialised with (shared by every rank)."""
    from torch.distributed import distributed_c10d

    try:
        return distributed_c10d._get_default_store()
    except (AttributeError, RuntimeError, ValueError) as exc:
        raise RuntimeError(f"a counter shared by the ranks needs the default process group's store: {exc}") from exc


def counter_add(key: str, amount: int, *, site: str) -> int:
    """Add ``amount`` to the integer counter ``key`` shared by every rank (atomic; starts at 0) and return
    its new value. Counted as one call of 8 bytes."""
    result = []
    _issue(site, 8, [], lambda: result.append(_store().add(key, amount)))
    return result[0]


def counter_delete(key: str, *, site: str) -> None:
    """Delete the counter ``key`` from the store (once nobody reads it any more). Counted as one call of
    0 bytes."""
    _issue(site, 0, [], lambda: _store().delete_key(key))
