"""Halo exchange between slabs, and its adjoint.

Rank ``r`` holds rows ``[s_r, e_r)`` of a signal of ``n`` rows along ``dim`` (a :class:`SlabLayout`).
:func:`halo_exchange` returns the *extended* slab, rows ``[s_r - b_r, e_r + a_r)``: the ``b_r`` rows
before and ``a_r`` rows after come from whichever ranks own them (direct point-to-point, so a halo
may be longer than a neighbour's slab), and rows outside ``[0, n)`` follow a padding mode:

- ``"reflect"``: row ``-i`` is row ``i`` and row ``n-1+i`` is row ``n-1-i`` (no edge repeat; repeated
  reflection when a halo exceeds the signal), like ``torch.nn.functional.pad(mode="reflect")``;
- ``"replicate"``: the edge row; ``"circular"``: row ``i mod n``; ``"zeros"``: zeros;
- ``"none"``: no rows outside ``[0, n)``: the halo is clipped at the global borders.

As a linear map, the exchange is ``E_r x = P_r x`` where ``P_r`` selects (and, for padding, repeats)
rows of the global signal ``x``. :func:`halo_accumulate` applies the adjoint ``Σ_r P_rᵀ y_r``: every
halo row is sent back to its owner and added there, so ``<E x, y> = <x, Eᵀ y>`` summed over ranks. It
is what blended overlaps across slab boundaries and adjoint operators need. Both are autograd
functions and each is the other's backward. :func:`halo_rows` and :func:`add_halo_rows` are the
same pair without the extended copy: only the halo rows travel and are held, for code that reads
across the slab and its halos piecewise (the sharded tiled prior).

All communication is accounted through :mod:`distinv.distributed.comm` (one ``batch_isend_irecv`` per
call; sites ``"halo.exchange"`` and ``"halo.accumulate"``).

>>> x = torch.arange(5.).view(1, 1, 5)
>>> halo_exchange(x, 2, 1, dim=2, mode="reflect").flatten().tolist()
[2.0, 1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 3.0]
>>> halo_accumulate(torch.ones(1, 1, 8), 2, 1, dim=2, mode="reflect").flatten().tolist()
[1.0, 2.0, 2.0, 2.0, 1.0]
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import torch

from distinv.distributed import comm
from distinv.distributed.sharding import SlabLayout, check_dim, p2p_batch

__all__ = ["PADDING_MODES", "HaloPlan", "halo_exchange", "halo_accumulate", "halo_rows", "add_halo_rows", "source_row"]

PADDING_MODES = ("reflect", "replicate", "zeros", "circular", "none")


def source_row(row: int, n: int, mode: str) -> int | None:
    """The global row whose value fills ``row`` (possibly outside ``[0, n)``), or ``None`` for zeros.

    :param int row: global row index, any integer.
    :param int n: number of rows of the signal.
    :param str mode: a padding mode of :data:`PADDING_MODES` other than ``"none"``.

    >>> [source_row(i, 4, "reflect") for i in range(-3, 7)]
    [3, 2, 1, 0, 1, 2, 3, 2, 1, 0]
    """
    if 0 <= row < n:
        return row
    if mode == "reflect":
        if n == 1:
            return 0
        period = 2 * (n - 1)
        j = row % period
        return j if j < n else period - j
    if mode == "replicate":
        return min(max(row, 0), n - 1)
    if mode == "circular":
        return row % n
    if mode == "zeros":
        return None
    raise ValueError(f"mode must be one of {PADDING_MODES[:-1]} for a row outside [0, {n}), got {mode!r}")


def _per_rank(name: str, value, world_size: int) -> tuple[int, ...]:
    values = (value,) * world_size if isinstance(value, int) and not isinstance(value, bool) else tuple(value)
    if len(values) != world_size:
        raise ValueError(f"{name} must be an integer or one integer per rank ({world_size}), got {value!r}")
    for v in values:
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ValueError(f"{name} must hold integers >= 0, got {value!r}")
    return values


@dataclass(frozen=True)
class _Rows:
    """Row indices along an axis; a plain slice when they are consecutive."""

    rows: tuple[int, ...]

    @property
    def is_range(self) -> bool:
        return all(b - a == 1 for a, b in zip(self.rows, self.rows[1:]))

    def index(self, device) -> torch.Tensor:
        return torch.tensor(self.rows, dtype=torch.long, device=device)

    def select(self, t: torch.Tensor, dim: int) -> torch.Tensor:
        if self.is_range:
            return t.narrow(dim, self.rows[0], len(self.rows))
        return t.index_select(dim, self.index(t.device))

    def put(self, t: torch.Tensor, dim: int, value: torch.Tensor, add: bool) -> None:
        if self.is_range:
            target = t.narrow(dim, self.rows[0], len(self.rows))
            target.add_(value) if add else target.copy_(value)
        elif add:
            t.index_add_(dim, self.index(t.device), value)
        else:
            t.index_copy_(dim, self.index(t.device), value)


@dataclass(frozen=True)
class HaloPlan:
    """Who sends which rows to whom, computed identically on every rank from the layout alone.

    :param SlabLayout layout: the slabs.
    :param tuple before: rows wanted before each rank's slab.
    :param tuple after: rows wanted after each rank's slab.
    :param str mode: padding mode at the global borders.

    ``extended[r]`` is the global row interval of rank ``r``'s extended slab; ``transfers[(src, dst)]``
    is ``(rows of src's slab, rows of dst's extended slab)``; ``zero_rows[r]`` are the extended rows
    filled with zeros.

    >>> plan = HaloPlan.build(SlabLayout.balanced(6, 2), 1, 1, "zeros")
    >>> plan.extended, plan.transfers[(0, 1)]
    (((-1, 4), (2, 7)), ((2,), (0,)))
    """

    layout: SlabLayout
    before: tuple[int, ...]
    after: tuple[int, ...]
    mode: str
    extended: tuple[tuple[int, int], ...]
    transfers: dict
    zero_rows: tuple[tuple[int, ...], ...]

    @staticmethod
    @lru_cache(maxsize=256)
    def _build(layout: SlabLayout, before: tuple, after: tuple, mode: str) -> "HaloPlan":
        n = layout.n
        extended, zero_rows, transfers = [], [], {}
        for dst in range(layout.world_size):
            start, stop = layout.start(dst) - before[dst], layout.stop(dst) + after[dst]
            if mode == "none":
                start, stop = max(0, start), min(n, stop)
            extended.append((start, stop))
            zeros = []
            for ext_row, row in enumerate(range(start, stop)):
                if layout.start(dst) <= row < layout.stop(dst):
                    continue  # own rows are copied as one block
                src_row = source_row(row, n, mode)
                if src_row is None:
                    zeros.append(ext_row)
                    continue
                src = layout.owner(src_row)
                src_rows, dst_rows = transfers.setdefault((src, dst), ([], []))
                src_rows.append(src_row - layout.start(src))
                dst_rows.append(ext_row)
            zero_rows.append(tuple(zeros))
        frozen = {key: (tuple(s), tuple(d)) for key, (s, d) in sorted(transfers.items())}
        return HaloPlan(layout, before, after, mode, tuple(extended), frozen, tuple(zero_rows))

    @classmethod
    def build(cls, layout: SlabLayout, before, after, mode: str = "reflect") -> "HaloPlan":
        """The plan of a halo exchange (cached).

        :param SlabLayout layout: the slabs.
        :param before: rows before each slab: one integer for all ranks, or one per rank.
        :param after: rows after each slab: one integer for all ranks, or one per rank.
        :param str mode: one of :data:`PADDING_MODES`.
        """
        if not isinstance(layout, SlabLayout):
            raise TypeError(f"layout must be a SlabLayout, got {type(layout).__name__}")
        if mode not in PADDING_MODES:
            raise ValueError(f"mode must be one of {PADDING_MODES}, got {mode!r}")
        before = _per_rank("before", before, layout.world_size)
        after = _per_rank("after", after, layout.world_size)
        return cls._build(layout, before, after, mode)

    def __hash__(self):  # the dict field is not hashable; plans are cached by their inputs
        return hash((self.layout, self.before, self.after, self.mode))

    def offset(self, rank: int) -> int:
        """Position of the rank's own first row in its extended slab."""
        return self.layout.start(rank) - self.extended[rank][0]

    def extended_length(self, rank: int) -> int:
        start, stop = self.extended[rank]
        return stop - start


# --------------------------------------------------------------------------- kernels (no autograd)


def _with_length(t: torch.Tensor, dim: int, length: int) -> list[int]:
    shape = list(t.shape)
    shape[dim] = length
    return shape


@dataclass(frozen=True)
class _Halos:
    """The halo rows of a rank's extended slab, held apart from its own rows: ``head`` (extended rows
    ``[0, offset)``) and ``tail`` (rows ``[offset + length, ...)``), views of one extended tensor or
    tensors of their own."""

    head: torch.Tensor
    tail: torch.Tensor
    offset: int
    length: int
    dim: int

    @classmethod
    def of_extended(cls, extended: torch.Tensor, plan: HaloPlan, rank: int, dim: int) -> "_Halos":
        offset, length = plan.offset(rank), plan.layout.length(rank)
        tail = extended.narrow(dim, offset + length, plan.extended_length(rank) - offset - length)
        return cls(extended.narrow(dim, 0, offset), tail, offset, length, dim)

    def _pieces(self, rows: Sequence[int]):
        """``(part, positions in rows, rows of part)`` for the head and the tail (halo rows only, ascending)."""
        end = self.offset + self.length
        for part, pairs in ((self.head, [(k, r) for k, r in enumerate(rows) if r < self.offset]),
                            (self.tail, [(k, r - end) for k, r in enumerate(rows) if r >= end])):
            if pairs:
                positions, part_rows = zip(*pairs)
                yield part, _Rows(positions), _Rows(part_rows)

    def select(self, rows: Sequence[int]) -> torch.Tensor:
        pieces = [part_rows.select(part, self.dim) for part, _, part_rows in self._pieces(rows)]
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces, self.dim)

    def put(self, rows: Sequence[int], value: torch.Tensor, add: bool) -> None:
        for part, positions, part_rows in self._pieces(rows):
            part_rows.put(part, self.dim, positions.select(value, self.dim), add)

    def zero(self, rows: Sequence[int]) -> None:
        for part, _, part_rows in self._pieces(rows):
            for row in part_rows.rows:
                part.select(self.dim, row).zero_()


def _fill_halos(local: torch.Tensor, halos: _Halos, plan: HaloPlan, rank: int, site: str) -> None:
    """Write the rows ``plan`` gives this rank's halos, from their owners' slabs."""
    dim = halos.dim
    halos.zero(plan.zero_rows[rank])
    sends, recvs, placements = [], [], []
    for (src, dst), (src_rows, dst_rows) in plan.transfers.items():
        if src == rank and dst == rank:
            halos.put(dst_rows, _Rows(src_rows).select(local, dim), add=False)
        elif src == rank:
            sends.append((_Rows(src_rows).select(local, dim).contiguous(), dst))
        elif dst == rank:
            buffer = local.new_empty(_with_length(local, dim, len(dst_rows)))
            recvs.append((buffer, src))
            placements.append((dst_rows, buffer))
    p2p_batch(sends, recvs, site=site)
    for rows, buffer in placements:
        halos.put(rows, buffer, add=False)


def _add_halos(local: torch.Tensor, halos: _Halos, plan: HaloPlan, rank: int, site: str) -> None:
    """Adjoint of :func:`_fill_halos`: add every halo row into the slab that owns it (``local`` in place)."""
    dim = halos.dim
    sends, recvs, placements = [], [], []
    for (src, dst), (src_rows, dst_rows) in plan.transfers.items():
        # adjoint: data flows back from dst (the halo) to src (the owner)
        if src == rank and dst == rank:
            _Rows(src_rows).put(local, dim, halos.select(dst_rows), add=True)
        elif dst == rank:
            sends.append((halos.select(dst_rows).contiguous(), src))
        elif src == rank:
            buffer = local.new_empty(_with_length(local, dim, len(src_rows)))
            recvs.append((buffer, dst))
            placements.append((_Rows(src_rows), buffer))
    p2p_batch(sends, recvs, site=site)
    for rows, buffer in placements:
        rows.put(local, dim, buffer, add=True)


def _exchange(local: torch.Tensor, plan: HaloPlan, rank: int, dim: int, site: str) -> torch.Tensor:
    extended = local.new_empty(_with_length(local, dim, plan.extended_length(rank)))
    extended.narrow(dim, plan.offset(rank), local.shape[dim]).copy_(local)
    _fill_halos(local, _Halos.of_extended(extended, plan, rank, dim), plan, rank, site)
    return extended


def _accumulate(extended: torch.Tensor, plan: HaloPlan, rank: int, dim: int, site: str) -> torch.Tensor:
    local = extended.narrow(dim, plan.offset(rank), plan.layout.length(rank)).clone()
    _add_halos(local, _Halos.of_extended(extended, plan, rank, dim), plan, rank, site)
    return local


def _halo_parts(local: torch.Tensor, plan: HaloPlan, rank: int, dim: int, site: str) -> tuple[torch.Tensor, torch.Tensor]:
    offset, length = plan.offset(rank), local.shape[dim]
    head = local.new_empty(_with_length(local, dim, offset))
    tail = local.new_empty(_with_length(local, dim, plan.extended_length(rank) - offset - length))
    _fill_halos(local, _Halos(head, tail, offset, length, dim), plan, rank, site)
    return head, tail


class _HaloExchange(torch.autograd.Function):
    @staticmethod
    def forward(ctx, local, plan, rank, dim, site):
        ctx.plan, ctx.rank, ctx.dim = plan, rank, dim
        return _exchange(local, plan, rank, dim, site)

    @staticmethod
    def backward(ctx, grad):
        return _accumulate(grad.contiguous(), ctx.plan, ctx.rank, ctx.dim, "halo.accumulate"), None, None, None, None


class _HaloAccumulate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, extended, plan, rank, dim, site):
        ctx.plan, ctx.rank, ctx.dim = plan, rank, dim
        return _accumulate(extended, plan, rank, dim, site)

    @staticmethod
    def backward(ctx, grad):
        return _exchange(grad.contiguous(), ctx.plan, ctx.rank, ctx.dim, "halo.exchange"), None, None, None, None


class _HaloRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, local, plan, rank, dim, site):
        ctx.plan, ctx.rank, ctx.dim, ctx.shape = plan, rank, dim, local.shape
        return _halo_parts(local, plan, rank, dim, site)

    @staticmethod
    def backward(ctx, grad_head, grad_tail):
        grad = grad_head.new_zeros(ctx.shape)
        halos = _Halos(grad_head.contiguous(), grad_tail.contiguous(), ctx.plan.offset(ctx.rank), ctx.shape[ctx.dim],
                       ctx.dim)
        _add_halos(grad, halos, ctx.plan, ctx.rank, "halo.accumulate")
        return grad, None, None, None, None


class _AddHaloRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, local, head, tail, plan, rank, dim, site):
        ctx.plan, ctx.rank, ctx.dim = plan, rank, dim
        ctx.mark_dirty(local)
        _add_halos(local, _Halos(head, tail, plan.offset(rank), local.shape[dim], dim), plan, rank, site)
        return local

    @staticmethod
    def backward(ctx, grad):
        head, tail = _halo_parts(grad.contiguous(), ctx.plan, ctx.rank, ctx.dim, "halo.exchange")
        return grad, head, tail, None, None, None, None


# --------------------------------------------------------------------------- public API


def _slab_plan(local: torch.Tensor, before, after, dim: int, mode: str,
               layout: SlabLayout | None) -> tuple[int, HaloPlan]:
    """The checked axis and the halo plan of an exchange of ``local``'s halos (the layout gathered if ``None``)."""
    dim = check_dim(local, dim)
    return dim, HaloPlan.build(_resolve_layout(local, dim, layout), before, after, mode)


def _resolve_layout(local: torch.Tensor, dim: int, layout: SlabLayout | None) -> SlabLayout:
    rank, world_size = comm.world()
    if layout is None:
        return SlabLayout.from_local(local, dim)
    if not isinstance(layout, SlabLayout):
        raise TypeError(f"layout must be a SlabLayout or None, got {type(layout).__name__}")
    if layout.world_size != world_size:
        raise ValueError(f"layout has {layout.world_size} slabs but there are {world_size} ranks")
    if local.shape[dim] != layout.length(rank):
        raise ValueError(
            f"mismatched shard shapes: rank {rank}'s slab has {local.shape[dim]} rows along dim={dim} but the "
            f"layout gives it {layout.length(rank)} (rows {layout.bounds[rank]})"
        )
    return layout


def halo_exchange(
    local: torch.Tensor,
    before: int | Sequence[int],
    after: int | Sequence[int],
    *,
    dim: int = 2,
    mode: str = "reflect",
    layout: SlabLayout | None = None,
    site: str = "halo.exchange",
) -> torch.Tensor:
    """This rank's slab extended by ``before`` rows before and ``after`` rows after (collective).

    :param torch.Tensor local: this rank's slab.
    :param before: rows wanted before the slab: one integer for every rank, or one per rank (the same
        sequence on every rank).
    :param after: rows wanted after the slab, likewise.
    :param int dim: the split axis (2: first spatial axis of ``(B, C, H, W)`` or ``(B, C, D, H, W)``).
    :param str mode: padding at the global borders, one of :data:`PADDING_MODES`.
    :param SlabLayout layout: every rank's slab bounds; ``None`` gathers the slab lengths (one small
        collective; pass the layout in loops).
    :param str site: accounting site.
    :return: the extended slab, ``before + len + after`` rows along ``dim`` (clipped at the global
        borders when ``mode="none"``).
    :raises ValueError: bad mode or halo sizes, or slab shapes that do not match the layout.

    >>> halo_exchange(torch.arange(3.).view(1, 1, 3), 1, 1, mode="zeros").flatten().tolist()
    [0.0, 0.0, 1.0, 2.0, 0.0]
    """
    dim, plan = _slab_plan(local, before, after, dim, mode, layout)
    return _HaloExchange.apply(local, plan, comm.world()[0], dim, site)


def halo_accumulate(
    extended: torch.Tensor,
    before: int | Sequence[int],
    after: int | Sequence[int],
    *,
    dim: int = 2,
    mode: str = "reflect",
    layout: SlabLayout | None = None,
    site: str = "halo.accumulate",
) -> torch.Tensor:
    """Adjoint of :func:`halo_exchange`: add every halo row back into the slab that owns it (collective).

    ``result_r = y_r[own rows] + Σ_{halo rows of any rank that come from r} y``; rows that a padding mode
    copied are added to the row they were copied from, zero-padded rows are dropped.

    :param torch.Tensor extended: this rank's extended slab (shape as returned by :func:`halo_exchange`).
    :param before: the ``before`` given to the exchange.
    :param after: the ``after`` given to the exchange.
    :param int dim: the split axis.
    :param str mode: the exchange's padding mode.
    :param SlabLayout layout: slab bounds; ``None`` derives them from the extended lengths (not
        possible with ``mode="none"``).
    :param str site: accounting site.
    :return: this rank's slab.

    >>> halo_accumulate(torch.ones(1, 1, 5), 1, 1, mode="zeros").flatten().tolist()
    [1.0, 1.0, 1.0]
    """
    dim = check_dim(extended, dim)
    rank, world_size = comm.world()
    if layout is None:
        if mode == "none":
            raise ValueError("halo_accumulate with mode='none' needs the layout (halos are clipped at the borders)")
        b = _per_rank("before", before, world_size)
        a = _per_rank("after", after, world_size)
        from distinv.distributed.sharding import gather_shapes, _check_same_shapes

        shapes = gather_shapes(extended)
        _check_same_shapes(shapes, dim)
        layout = SlabLayout.from_lengths([s[dim] - b[r] - a[r] for r, s in enumerate(shapes)])
    plan = HaloPlan.build(layout, before, after, mode)
    if extended.shape[dim] != plan.extended_length(rank):
        raise ValueError(
            f"mismatched shard shapes: extended slab has {extended.shape[dim]} rows along dim={dim}, expected "
            f"{plan.extended_length(rank)} (slab {layout.bounds[rank]}, before={plan.before[rank]}, "
            f"after={plan.after[rank]}, mode={mode!r})"
        )
    return _HaloAccumulate.apply(extended, plan, rank, dim, site)


def halo_rows(
    local: torch.Tensor,
    before: int | Sequence[int],
    after: int | Sequence[int],
    *,
    dim: int = 2,
    mode: str = "reflect",
    layout: SlabLayout | None = None,
    site: str = "halo.exchange",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The halo rows of :func:`halo_exchange` alone, without a copy of the slab (collective).

    For code that reads windows across the slab and its halos (the sharded tiled prior): a rank then
    holds its slab plus the halos, not a second, extended copy of the slab.

    :param torch.Tensor local: this rank's slab.
    :param before: rows before the slab (see :func:`halo_exchange`).
    :param after: rows after the slab.
    :param int dim: the split axis.
    :param str mode: padding at the global borders, one of :data:`PADDING_MODES`.
    :param SlabLayout layout: every rank's slab bounds (``None``: gathered).
    :param str site: accounting site.
    :return: ``(head, tail)``, the rows before and after the slab: ``torch.cat([head, local, tail], dim)``
        is the extended slab.

    >>> head, tail = halo_rows(torch.arange(4.).view(1, 1, 4), 2, 1, mode="reflect")
    >>> head.flatten().tolist(), tail.flatten().tolist()
    ([2.0, 1.0], [2.0])
    """
    dim, plan = _slab_plan(local, before, after, dim, mode, layout)
    return _HaloRows.apply(local, plan, comm.world()[0], dim, site)


def add_halo_rows(
    local: torch.Tensor,
    head: torch.Tensor,
    tail: torch.Tensor,
    before: int | Sequence[int],
    after: int | Sequence[int],
    *,
    dim: int = 2,
    mode: str = "reflect",
    layout: SlabLayout | None = None,
    site: str = "halo.accumulate",
) -> torch.Tensor:
    """Adjoint of :func:`halo_rows`, in place: add ``head`` and ``tail`` into the slabs that own their rows.

    Equals :func:`halo_accumulate` of ``torch.cat([head, local, tail], dim)`` without building it;
    ``local`` is updated in place and returned.

    :param torch.Tensor local: this rank's slab (updated).
    :param torch.Tensor head: rows before the slab, shaped as :func:`halo_rows` returns them.
    :param torch.Tensor tail: rows after the slab, likewise.
    :param before: the ``before`` given to :func:`halo_rows`.
    :param after: the ``after`` given to :func:`halo_rows`.
    :param int dim: the split axis.
    :param str mode: the padding mode given to :func:`halo_rows`.
    :param SlabLayout layout: every rank's slab bounds (``None``: gathered).
    :param str site: accounting site.
    :return: ``local``.

    >>> add_halo_rows(torch.zeros(1, 1, 4), torch.ones(1, 1, 2), torch.ones(1, 1, 1), 2, 1).flatten().tolist()
    [0.0, 1.0, 2.0, 0.0]
    """
    dim, plan = _slab_plan(local, before, after, dim, mode, layout)
    rank = comm.world()[0]
    offset = plan.offset(rank)
    lengths = {"head": offset, "tail": plan.extended_length(rank) - offset - local.shape[dim]}
    for name, part in (("head", head), ("tail", tail)):
        expected = _with_length(local, dim, lengths[name])
        if list(part.shape) != expected:
            raise ValueError(f"mismatched shard shapes: {name} has shape {tuple(part.shape)}, expected {tuple(expected)} "
                             f"(slab {plan.layout.bounds[rank]}, before={plan.before[rank]}, after={plan.after[rank]}, "
                             f"mode={mode!r})")
    return _AddHaloRows.apply(local, head, tail, plan, rank, dim, site)
