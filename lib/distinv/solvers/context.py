"""deepinv's distributed context with its collectives routed through distinv's communication ledger.

deepinv's ``DistributedStackedLinearPhysics``, ``DistributedDataFidelity`` and
``DistributedProcessing`` communicate only through their context's ``all_reduce`` / ``broadcast``.
:class:`AccountedContext` sends those through :mod:`distinv.distributed.comm` under a site name
(``"<site>.all_reduce"``, ``"<site>.broadcast"``), so that the time and bytes of, say, the
data-fidelity gradient and of the tiled prior appear as separate lines of the ledger. Autograd
collectives (tensors that require grad) keep deepinv's functional path and are not counted.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from deepinv.distributed import DistributedContext

from distinv.distributed import comm

__all__ = ["AccountedContext"]


class AccountedContext(DistributedContext):
    """A :class:`deepinv.distributed.DistributedContext` whose collectives are accounted under ``site``.

    It joins the process group that :func:`distinv.launch` (or torchrun) created and never destroys it.

    :param str site: ledger site prefix, e.g. ``"physics"`` or ``"prior"``.
    :param torch.device device: this rank's device (default: :func:`distinv.rank_device`).

    >>> with AccountedContext("demo", torch.device("cpu")) as ctx:
    ...     ctx.all_reduce(torch.ones(2), op=dist.ReduceOp.SUM).tolist()
    [1.0, 1.0]
    """

    def __init__(self, site: str, device: torch.device | None = None):
        if not isinstance(site, str) or not site:
            raise ValueError(f"site must be a non-empty string, got {site!r}")
        if device is None:
            from distinv.launch import rank_device

            device = rank_device()
        device = torch.device(device)
        super().__init__(cleanup=False, device_mode="gpu" if device.type == "cuda" else "cpu")
        self.site = site
        self._rank_device = device

    def __enter__(self) -> "AccountedContext":
        super().__enter__()
        self.device = self._rank_device
        return self

    def all_reduce(self, x: torch.Tensor, op: dist.ReduceOp = dist.ReduceOp.SUM, group=None) -> torch.Tensor:
        if not self.use_dist or x.requires_grad or group is not None:
            return super().all_reduce(x, op=op, group=group)
        return comm.all_reduce(x, site=f"{self.site}.all_reduce", op=op)

    def broadcast(self, x: torch.Tensor, src: int = 0, group=None) -> torch.Tensor:
        if not self.use_dist or x.requires_grad or group is not None:
            return super().broadcast(x, src=src, group=group)
        return comm.broadcast(x, src, site=f"{self.site}.broadcast")
