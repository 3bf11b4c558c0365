"""Slabs: a signal split along one axis into contiguous pieces, one per rank.

A *slab layout* of ``n`` rows over ``W`` ranks is a list of half-open row intervals
``[start_r, stop_r)`` with ``start_0 = 0``, ``stop_r = start_{r+1}`` and ``stop_{W-1} = n``. The
balanced rule (:func:`slab_bounds`) cuts the rows into ``u = ceil(n / align)`` units of ``align``
rows (the last unit may be shorter) and gives rank ``r`` ``floor(u / W)`` units, plus one more for the
first ``u mod W`` ranks. Every slab is non-empty, so at most ``u`` ranks can share ``n`` rows.

:func:`scatter_slabs` and :func:`gather_slabs` move a whole signal to and from its slabs (for plots
and metrics; a sharded solver never needs them).

>>> slab_bounds(10, 3, 0), slab_bounds(10, 3, 1), slab_bounds(10, 3, 2)
((0, 4), (4, 7), (7, 10))
>>> SlabLayout.balanced(10, 3, align=4).bounds
((0, 4), (4, 8), (8, 10))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.distributed as dist

from distinv.distributed import comm

__all__ = ["SlabLayout", "slab_bounds", "scatter_slabs", "gather_slabs", "check_dim"]


def _check_int(name: str, value, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


def check_dim(tensor: torch.Tensor, dim: int, name: str = "dim") -> int:
    """``dim`` as a non-negative axis of ``tensor``; ValueError when out of range.

    :param torch.Tensor tensor: the tensor the axis refers to.
    :param int dim: axis, negative counts from the end.
    :param str name: parameter name used in the error message.

    >>> check_dim(torch.zeros(1, 1, 4, 4), -2)
    2
    """
    if not isinstance(dim, int) or isinstance(dim, bool):
        raise TypeError(f"{name} must be an integer axis, got {dim!r}")
    if not -tensor.ndim <= dim < tensor.ndim:
        raise ValueError(f"{name} must be in [{-tensor.ndim}, {tensor.ndim - 1}] for a {tensor.ndim}-D tensor, got {dim}")
    return dim % tensor.ndim


@dataclass(frozen=True)
class SlabLayout:
    """Row intervals ``[start, stop)`` of every rank's slab along the split axis.

    :param tuple bounds: one ``(start, stop)`` per rank, contiguous, starting at 0, non-empty.

    >>> layout = SlabLayout(((0, 3), (3, 5)))
    >>> layout.n, layout.world_size, layout.owner(4), layout.length(0)
    (5, 2, 1, 3)
    """

    bounds: tuple[tuple[int, int], ...]

    def __post_init__(self):
        bounds = tuple((int(a), int(b)) for a, b in self.bounds)
        if not bounds:
            raise ValueError("bounds must hold at least one (start, stop) pair, got an empty sequence")
        expected = 0
        for rank, (start, stop) in enumerate(bounds):
            if start != expected or stop <= start:
                raise ValueError(
                    f"bounds must be contiguous non-empty intervals starting at 0; rank {rank} has "
                    f"({start}, {stop}) but should start at {expected} and be non-empty"
                )
            expected = stop
        object.__setattr__(self, "bounds", bounds)

    @property
    def n(self) -> int:
        """Total number of rows."""
        return self.bounds[-1][1]

    @property
    def world_size(self) -> int:
        return len(self.bounds)

    def start(self, rank: int) -> int:
        return self.bounds[rank][0]

    def stop(self, rank: int) -> int:
        return self.bounds[rank][1]

    def length(self, rank: int) -> int:
        return self.bounds[rank][1] - self.bounds[rank][0]

    def owner(self, row: int) -> int:
        """The rank whose slab holds global ``row`` (``0 <= row < n``)."""
        if not 0 <= row < self.n:
            raise ValueError(f"row must be in [0, {self.n}), got {row}")
        for rank, (start, stop) in enumerate(self.bounds):
            if start <= row < stop:
                return rank
        raise AssertionError("unreachable")  # pragma: no cover

    @classmethod
    def balanced(cls, n: int, world_size: int, align: int = 1) -> "SlabLayout":
        """The balanced layout of :func:`slab_bounds` for every rank.

        :param int n: number of rows, ``>= 1``.
        :param int world_size: number of ranks, ``1 <= world_size <= ceil(n / align)``.
        :param int align: slab starts are multiples of ``align``.
        """
        _check_int("n", n, 1)
        _check_int("world_size", world_size, 1)
        _check_int("align", align, 1)
        units = -(-n // align)
        if world_size > units:
            raise ValueError(
                f"cannot split {n} rows into {world_size} non-empty slabs of whole {align}-row units: "
                f"use at most {units} ranks (world_size={world_size})"
            )
        base, extra = divmod(units, world_size)
        bounds, start_unit = [], 0
        for rank in range(world_size):
            stop_unit = start_unit + base + (1 if rank < extra else 0)
            bounds.append((min(n, start_unit * align), min(n, stop_unit * align)))
            start_unit = stop_unit
        return cls(tuple(bounds))

    @classmethod
    def from_lengths(cls, lengths: Sequence[int]) -> "SlabLayout":
        """Layout from every rank's slab length, in rank order."""
        bounds, start = [], 0
        for length in lengths:
            bounds.append((start, start + int(length)))
            start += int(length)
        return cls(tuple(bounds))

    @classmethod
    def from_local(cls, local: torch.Tensor, dim: int = 2, *, site: str = "sharding.layout") -> "SlabLayout":
        """Layout from every rank's local slab (collective: one small all-gather of shapes).

        Checks that every rank's slab has the same shape apart from ``dim``.

        :param torch.Tensor local: this rank's slab.
        :param int dim: the split axis.
        :param str site: accounting site of the all-gather.
        :raises ValueError: slab shapes differ elsewhere than along ``dim``, or a slab is empty.
        """
        dim = check_dim(local, dim)
        shapes = gather_shapes(local, site=site)
        _check_same_shapes(shapes, dim)
        return cls.from_lengths([shape[dim] for shape in shapes])


def slab_bounds(n: int, world_size: int, rank: int, align: int = 1) -> tuple[int, int]:
    """Rows ``[start, stop)`` of ``rank``'s slab in the balanced layout of ``n`` rows.

    Rows are cut into ``ceil(n / align)`` units of ``align`` rows; every rank gets ``floor(units / W)``
    units and the first ``units mod W`` ranks one more. Slab starts are multiples of ``align``.

    :param int n: number of rows, ``>= 1``.
    :param int world_size: number of ranks ``W``, ``1 <= W <= ceil(n / align)``.
    :param int rank: ``0 <= rank < W``.
    :param int align: slab starts are multiples of it (e.g. a network's downsampling factor).
    :return: ``(start, stop)``.
    :raises ValueError: more ranks than units (the message says how many ranks at most).

    >>> slab_bounds(1024, 2, 1)
    (512, 1024)
    """
    layout = SlabLayout.balanced(n, world_size, align)
    _check_int("rank", rank, 0)
    if rank >= world_size:
        raise ValueError(f"rank must be in [0, {world_size - 1}], got {rank}")
    return layout.bounds[rank]


# --------------------------------------------------------------------------- collectives


def gather_shapes(local: torch.Tensor, *, site: str = "sharding.layout") -> list[tuple[int, ...]]:
    """Every rank's ``local.shape`` (collective; no communication on one rank)."""
    _, world_size = comm.world()
    if world_size == 1:
        return [tuple(local.shape)]
    shapes: list = [None] * world_size
    comm.all_gather_object(shapes, tuple(local.shape), site=site)
    return [tuple(s) for s in shapes]


def _check_same_shapes(shapes: list[tuple[int, ...]], dim: int) -> None:
    reference = shapes[0]
    for rank, shape in enumerate(shapes):
        if len(shape) != len(reference) or any(a != b for i, (a, b) in enumerate(zip(shape, reference)) if i != dim):
            raise ValueError(
                f"mismatched shard shapes: slabs must agree on every axis except dim={dim}, but rank 0 has "
                f"{reference} and rank {rank} has {shape}"
            )
        if shape[dim] < 1:
            raise ValueError(f"mismatched shard shapes: rank {rank} has an empty slab {shape} along dim={dim}")


def _p2p_ok(tensor: torch.Tensor) -> bool:
    """gloo moves CPU tensors only: stage CUDA tensors through host memory."""
    return not (tensor.is_cuda and dist.get_backend() == "gloo")


def p2p_batch(sends: list[tuple[torch.Tensor, int]], recvs: list[tuple[torch.Tensor, int]], *, site: str) -> None:
    """Post ``sends`` (tensor, dst) and ``recvs`` (buffer, src) as one accounted batch and wait.

    Buffers in ``recvs`` are filled in place; CUDA tensors travel through the host under gloo. Order
    matters between a pair of ranks: the i-th send to a peer matches that peer's i-th receive.
    """
    if not sends and not recvs:
        return
    staged_sends = [(t if _p2p_ok(t) else t.cpu(), peer) for t, peer in sends]
    staged_recvs = [(t if _p2p_ok(t) else torch.empty(t.shape, dtype=t.dtype), peer, t) for t, peer in recvs]
    ops = [comm.P2POp(dist.isend, t.contiguous(), peer) for t, peer in staged_sends]
    ops += [comm.P2POp(dist.irecv, buf, peer) for buf, peer, _ in staged_recvs]
    comm.batch_isend_irecv(ops, site=site)
    for buf, _, target in staged_recvs:
        if buf is not target:
            target.copy_(buf)


def scatter_slabs(
    x: torch.Tensor | None,
    src: int = 0,
    dim: int = 2,
    layout: SlabLayout | None = None,
    align: int = 1,
    device: torch.device | str | None = None,
    *,
    site: str = "sharding.scatter",
) -> torch.Tensor:
    """Split the full signal held by ``src`` into slabs, one per rank (collective).

    :param torch.Tensor x: the full signal on rank ``src``; ignored (may be ``None``) elsewhere.
    :param int src: the rank that holds ``x``.
    :param int dim: the split axis (2: first spatial axis of ``(B, C, H, W)``).
    :param SlabLayout layout: slab bounds; default ``SlabLayout.balanced(n, W, align)``.
    :param int align: slab starts are multiples of it (default layout only).
    :param device: device of the received slab on ranks other than ``src`` (default: the rank's device).
    :param str site: accounting site.
    :return: this rank's slab (a copy).

    >>> scatter_slabs(torch.arange(6.).view(1, 1, 6), dim=2).shape
    torch.Size([1, 1, 6])
    """
    rank, world_size = comm.world()
    _check_int("src", src, 0)
    if src >= world_size:
        raise ValueError(f"src must be in [0, {world_size - 1}], got {src}")
    if rank == src:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a tensor on the source rank {src}, got {type(x).__name__}")
        dim = check_dim(x, dim)
        meta = (tuple(x.shape), x.dtype, dim)
    else:
        meta = None
    if world_size > 1:
        metas: list = [None] * world_size
        comm.all_gather_object(metas, meta, site=site)
        meta = metas[src]
    shape, dtype, dim = meta
    if layout is None:
        layout = SlabLayout.balanced(shape[dim], world_size, align)
    if layout.n != shape[dim] or layout.world_size != world_size:
        raise ValueError(
            f"layout covers {layout.n} rows on {layout.world_size} ranks, but the signal has {shape[dim]} rows "
            f"along dim={dim} and there are {world_size} ranks"
        )
    if rank == src:
        sends = [(x.narrow(dim, layout.start(r), layout.length(r)).contiguous(), r)
                 for r in range(world_size) if r != rank]
        p2p_batch(sends, [], site=site)
        return x.narrow(dim, layout.start(rank), layout.length(rank)).clone()
    from distinv.launch import rank_device

    local_shape = list(shape)
    local_shape[dim] = layout.length(rank)
    out = torch.empty(local_shape, dtype=dtype, device=device if device is not None else rank_device())
    p2p_batch([], [(out, src)], site=site)
    return out


def gather_slabs(
    local: torch.Tensor,
    dst: int | None = 0,
    dim: int = 2,
    *,
    site: str = "sharding.gather",
) -> torch.Tensor | None:
    """Concatenate every rank's slab along ``dim`` (collective); slabs may differ in length.

    :param torch.Tensor local: this rank's slab.
    :param int dst: the rank that receives the full signal, or ``None`` for every rank.
    :param int dim: the split axis.
    :param str site: accounting site.
    :return: the full signal on ``dst`` (on every rank when ``dst is None``), ``None`` elsewhere.
    :raises ValueError: slab shapes differ elsewhere than along ``dim``.

    >>> gather_slabs(torch.ones(1, 1, 3, 2)).shape
    torch.Size([1, 1, 3, 2])
    """
    rank, world_size = comm.world()
    if dst is not None:
        _check_int("dst", dst, 0)
        if dst >= world_size:
            raise ValueError(f"dst must be in [0, {world_size - 1}] or None, got {dst}")
    dim = check_dim(local, dim)
    if world_size == 1:
        return local.clone()
    layout = SlabLayout.from_local(local, dim, site=site)
    if dst is None:
        longest = max(layout.length(r) for r in range(world_size))
        padded_shape = list(local.shape)
        padded_shape[dim] = longest
        padded = local.new_zeros(padded_shape)
        padded.narrow(dim, 0, local.shape[dim]).copy_(local)
        pieces = [torch.empty_like(padded) for _ in range(world_size)]
        comm.all_gather(pieces, padded, site=site)
        return torch.cat([p.narrow(dim, 0, layout.length(r)) for r, p in enumerate(pieces)], dim=dim)
    if rank != dst:
        p2p_batch([(local.contiguous(), dst)], [], site=site)
        return None
    full_shape = list(local.shape)
    full_shape[dim] = layout.n
    full = local.new_empty(full_shape)
    full.narrow(dim, layout.start(rank), layout.length(rank)).copy_(local)
    recvs = []
    for r in range(world_size):
        if r != rank:
            shape = list(local.shape)
            shape[dim] = layout.length(r)
            recvs.append((local.new_empty(shape), r))
    p2p_batch([], recvs, site=site)
    for buf, r in recvs:
        full.narrow(dim, layout.start(r), layout.length(r)).copy_(buf)
    return full
