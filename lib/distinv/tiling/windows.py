"""Blending weights and window cut/paste, from the tile geometry alone.

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

__all__ = ["axis_weights", "window_weight", "reflect_pad_end"]


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
