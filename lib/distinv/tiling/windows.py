"""Blending weights and window cut/paste, from the tile geometry alone.

Windows are cut from and pasted into :class:`StackedRows`: a signal's rows held as consecutive pieces
(a slab and its halos in the sharded layout), so a window that crosses a slab boundary is read and
written without first joining the pieces into one extended copy of the slab.

Smooth blending (per axis, separable): tile ``i`` has weight 1 in its core and raised-cosine ramps
over the ``2h`` samples around each interior core boundary ``c`` (``h`` = ramp half-width, at most the
overlap, so the ramp lies inside both windows),

.. math::

    r(y) = \\sin^2\\Big(\\tfrac{\\pi}{2} \\operatorname{clip}\\big(\\tfrac{y - c + h + 1/2}{2h}, 0, 1\\big)\\Big),

rising at its first core boundary and falling (``1 - r``) at its last, so that neighbours' weights
sum to one. The weights are then divided by their sum over tiles, so they form a partition of unity
on every axis, and the N-D weight of a tile is the product of its axis weights. Every rank computes
them from the grid: no weight buffer is communicated. Crop-assign is the box weight of the core.

>>> from distinv.tiling.geometry import AxisTiles
>>> axis = AxisTiles.build(24, patch=8, overlap=2, align=1)
>>> w = axis_weights(axis, "smooth", 2)
>>> total = torch.zeros(24, dtype=torch.float64)
>>> for (start, stop), weight in zip(axis.windows, w):
...     total[start:stop] += weight[: stop - start]
>>> bool(torch.allclose(total, torch.ones(24, dtype=torch.float64)))
True
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from distinv.distributed.halo import source_row
from distinv.tiling.geometry import AxisTiles

__all__ = ["axis_weights", "window_weight", "reflect_pad_end", "StackedRows"]


def _ramp(positions: torch.Tensor, boundary: int, half_width: int) -> torch.Tensor:
    t = ((positions - boundary + half_width + 0.5) / (2 * half_width)).clamp(0, 1)
    return torch.sin(0.5 * math.pi * t) ** 2


@lru_cache(maxsize=512)
def axis_weights(axis: AxisTiles, blend: str, half_width: int) -> tuple[torch.Tensor, ...]:
    """Normalised 1D weights of every tile along ``axis``, over its window plus padding (float64, CPU).

    :param AxisTiles axis: the axis's tiles.
    :param str blend: ``"smooth"`` or ``"crop"``.
    :param int half_width: ramp half-width ``h``, at most the overlap (``0`` gives crop weights).
    :return: one tensor per tile, of length ``|window| + pad`` (zero over the padding).
    """
    n = axis.n
    raw = []
    for i, ((c_start, c_stop), (w_start, w_stop)) in enumerate(zip(axis.cores, axis.windows)):
        y = torch.arange(w_start, w_stop, dtype=torch.float64)
        if blend == "crop" or half_width == 0:
            weight = ((y >= c_start) & (y < c_stop)).to(torch.float64)
        else:
            weight = torch.ones_like(y)
            if i > 0:
                weight = weight * _ramp(y, c_start, half_width)
            if i < axis.count - 1:
                weight = weight * (1 - _ramp(y, c_stop, half_width))
        raw.append(weight)
    total = torch.zeros(n, dtype=torch.float64)
    for (w_start, w_stop), weight in zip(axis.windows, raw):
        total[w_start:w_stop] += weight
    weights = []
    for (w_start, w_stop), pad, weight in zip(axis.windows, axis.pads, raw):
        normalised = weight / total[w_start:w_stop]
        weights.append(torch.cat([normalised, normalised.new_zeros(pad)]))
    return tuple(weights)


@lru_cache(maxsize=4096)
def window_weight(axis: AxisTiles, i: int, half_width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Tile ``i``'s smooth weight over its window (no padding), on ``device``: one host-to-device copy per
    tile, not one per call.

    :param AxisTiles axis: the axis's tiles.
    :param int i: the tile.
    :param int half_width: ramp half-width (see :func:`axis_weights`).
    :param torch.device device: where the weight is used.
    :param torch.dtype dtype: its dtype.
    """
    start, stop = axis.windows[i]
    return axis_weights(axis, "smooth", half_width)[i][:stop - start].to(device=device, dtype=dtype)


def reflect_pad_end(t: torch.Tensor, dim: int, pad: int) -> torch.Tensor:
    """Append ``pad`` reflected samples after the end of axis ``dim`` (repeated reflection if needed).

    :param torch.Tensor t: tensor to pad.
    :param int dim: axis.
    :param int pad: samples to append, ``>= 0``.

    >>> reflect_pad_end(torch.arange(3.), 0, 4).tolist()
    [0.0, 1.0, 2.0, 1.0, 0.0, 1.0, 2.0]
    """
    if pad == 0:
        return t
    n = t.shape[dim]
    rows = torch.tensor([source_row(n + j, n, "reflect") for j in range(pad)], device=t.device)
    return torch.cat([t, t.index_select(dim, rows)], dim=dim)


class StackedRows:
    """Global rows ``[first, first + Σ rows)`` of a signal, held as consecutive pieces along axis 2.

    :param tuple parts: tensors of equal shape but along axis 2 (the first spatial axis), in row order.
    :param int first: the global row of the first part's first row.

    >>> rows = StackedRows((torch.zeros(1, 1, 2, 3), torch.ones(1, 1, 3, 3)), first=4)
    >>> rows.cut(5, 7, (slice(0, 2),)).flatten().tolist()
    [0.0, 0.0, 1.0, 1.0]
    >>> rows.paste(4, 6, (slice(None),), torch.full((1, 1, 2, 3), 2.0), add=True)
    >>> rows.parts[0][0, 0, :, 0].tolist(), rows.parts[1][0, 0, :, 0].tolist()
    ([2.0, 2.0], [1.0, 1.0, 1.0])
    """

    def __init__(self, parts: tuple[torch.Tensor, ...], first: int = 0):
        self.parts = tuple(parts)
        self.first = first
        self._bounds = []
        start = first
        for part in self.parts:
            self._bounds.append((start, start + part.shape[2]))
            start += part.shape[2]

    def _pieces(self, start: int, stop: int):
        """``(part, rows of the part, rows of [start, stop))`` for every part that holds some of these rows."""
        if start < self.first or stop > self._bounds[-1][1]:
            raise IndexError(f"rows [{start}, {stop}) are not all held: held rows are [{self.first}, "
                             f"{self._bounds[-1][1]})")
        for part, (p_start, p_stop) in zip(self.parts, self._bounds):
            lo, hi = max(start, p_start), min(stop, p_stop)
            if lo < hi:
                yield part, slice(lo - p_start, hi - p_start), slice(lo - start, hi - start)

    def cut(self, start: int, stop: int, rest: tuple[slice, ...]) -> torch.Tensor:
        """Global rows ``[start, stop)``, indexed by ``rest`` along the other spatial axes (a view when the
        rows lie in one part)."""
        pieces = [part[(slice(None), slice(None), rows) + tuple(rest)] for part, rows, _ in self._pieces(start, stop)]
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=2)

    def paste(self, start: int, stop: int, rest: tuple[slice, ...], value: torch.Tensor, add: bool) -> None:
        """Write (``add=False``) or add ``value`` into global rows ``[start, stop)``, ``rest`` along the other axes."""
        for part, rows, inside in self._pieces(start, stop):
            target = part[(slice(None), slice(None), rows) + tuple(rest)]
            piece = value[:, :, inside]
            target.add_(piece) if add else target.copy_(piece)
