"""The global tile grid: computed from the signal's shape and the config alone, identical on every rank.

Per spatial axis of length ``n`` (:class:`AxisTiles`), ``k = ceil(n / patch)`` cores
``[c_i, c_{i+1})`` partition ``[0, n)``, with ``c_i = align * round(i n / (k align))``. Window ``i`` is
``[c_i - o, c_{i+1} + o)`` where a neighbour exists (``o`` = overlap; no halo at the signal border),
widened to multiples of ``align`` and clipped to ``[0, n)``; ``pad_i`` samples of reflect padding
complete a window that ends at the border to a multiple of ``align`` (none in exact mode). The grid
(:class:`TileGrid`) is the Cartesian product of the axes, tiles in raster order.

Tile work multiplier = samples processed / samples in the signal = ``Π_axes Σ_i (|window_i| + pad_i) / n``.

>>> axis = AxisTiles.build(1024, patch=256, overlap=32, align=8)
>>> axis.cores[:2], axis.windows[:2]
(((0, 256), (256, 512)), ((0, 288), (224, 544)))
>>> round(TileGrid.build((1024, 1024), patch=(256, 256), overlap=(32, 32), align=8).work_multiplier, 2)
1.41
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache

from distinv.distributed.sharding import SlabLayout

__all__ = ["AxisTiles", "TileGrid"]


def _round_to(value: float, align: int) -> int:
    return int(align * round(value / align))


@dataclass(frozen=True)
class AxisTiles:
    """Cores, windows and end padding of the tiles along one axis.

    :param int n: axis length.
    :param tuple cores: ``(start, stop)`` per tile, a partition of ``[0, n)``.
    :param tuple windows: ``(start, stop)`` per tile, inside ``[0, n)``, containing the core.
    :param tuple pads: reflect-padded samples after each window's end.
    """

    n: int
    cores: tuple[tuple[int, int], ...]
    windows: tuple[tuple[int, int], ...]
    pads: tuple[int, ...]

    @staticmethod
    @lru_cache(maxsize=512)
    def build(n: int, patch: int, overlap: int, align: int, exact: bool = False) -> "AxisTiles":
        """Tiles of an axis of length ``n`` (cached).

        :param int n: axis length, ``>= 1``.
        :param int patch: largest core size wanted (cores may exceed it by less than ``align``).
        :param int overlap: halo on interior sides.
        :param int align: windows start, and end unless at the border, on multiples of ``align``.
        :param bool exact: no reflect padding at the border.
        """
        if n < 1:
            raise ValueError(f"axis length must be >= 1, got {n}")
        count = max(1, -(-n // patch))
        while True:
            cuts = [0] + [_round_to(i * n / count, align) for i in range(1, count)] + [n]
            if count == 1 or all(a < b for a, b in zip(cuts, cuts[1:])):
                break
            count -= 1
        cores = tuple(zip(cuts, cuts[1:]))
        windows, pads = [], []
        for i, (start, stop) in enumerate(cores):
            w_start = 0 if i == 0 else max(0, (start - overlap) // align * align)
            w_stop = n if i == count - 1 else min(n, -(-(stop + overlap) // align) * align)
            length = w_stop - w_start
            pad = 0 if exact else -(-length // align) * align - length
            windows.append((w_start, w_stop))
            pads.append(pad)
        return AxisTiles(n, cores, tuple(windows), tuple(pads))

    @property
    def count(self) -> int:
        return len(self.cores)

    def processed(self) -> int:
        """Samples processed along this axis, summed over tiles (padding included)."""
        return sum(stop - start + pad for (start, stop), pad in zip(self.windows, self.pads))


@dataclass(frozen=True)
class TileGrid:
    """The Cartesian tile grid of a signal's spatial axes.

    :param tuple axes: one :class:`AxisTiles` per spatial axis.
    """

    axes: tuple[AxisTiles, ...]

    @staticmethod
    @lru_cache(maxsize=128)
    def build(shape: tuple[int, ...], patch: tuple[int, ...], overlap: tuple[int, ...], align: int,
              exact: bool = False) -> "TileGrid":
        """Grid for spatial ``shape`` (cached).

        :param tuple shape: spatial shape (``(H, W)`` or ``(D, H, W)``).
        :param tuple patch: core size per axis.
        :param tuple overlap: halo per axis.
        :param int align: downsampling factor of the network.
        :param bool exact: exact mode (no padding).
        """
        return TileGrid(tuple(AxisTiles.build(n, p, o, align, exact) for n, p, o in zip(shape, patch, overlap)))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(axis.n for axis in self.axes)

    @property
    def counts(self) -> tuple[int, ...]:
        return tuple(axis.count for axis in self.axes)

    def tiles(self, first_axis_rows: range | None = None) -> list[tuple[int, ...]]:
        """Tile indices in raster order; optionally only those whose first-axis index is in ``first_axis_rows``."""
        rows = range(self.axes[0].count) if first_axis_rows is None else first_axis_rows
        return [(i, *rest) for i in rows for rest in itertools.product(*(range(a.count) for a in self.axes[1:]))]

    def window_shape(self, tile: tuple[int, ...]) -> tuple[int, ...]:
        """Shape fed to the network for ``tile`` (window plus padding)."""
        return tuple(a.windows[i][1] - a.windows[i][0] + a.pads[i] for a, i in zip(self.axes, tile))

    @property
    def work_multiplier(self) -> float:
        """Samples processed / samples in the signal."""
        ratio = 1.0
        for axis in self.axes:
            ratio *= axis.processed() / axis.n
        return ratio

    def _cost(self, tile: tuple[int, ...]) -> int:
        cost = 1
        for size in self.window_shape(tile):
            cost *= size
        return cost

    def split_replicated(self, world_size: int) -> list[list[tuple[int, ...]]]:
        """Tiles of each rank: contiguous runs of the raster order with near-equal work.

        A tile goes to rank ``floor(W * m / total)`` where ``m`` is the midpoint of its work in the
        running total (work = window volume).

        >>> grid = TileGrid.build((64, 64), (16, 16), (4, 4), 8)
        >>> [len(tiles) for tiles in grid.split_replicated(3)]
        [6, 4, 6]
        """
        tiles = self.tiles()
        costs = [self._cost(t) for t in tiles]
        total = sum(costs)
        split: list[list[tuple[int, ...]]] = [[] for _ in range(world_size)]
        running = 0
        for tile, cost in zip(tiles, costs):
            rank = min(world_size - 1, int(world_size * (running + cost / 2) / total))
            split[rank].append(tile)
            running += cost
        return split

    def first_axis_rows(self, layout: SlabLayout) -> list[range]:
        """Tile rows (first-axis tile indices) each rank processes in the sharded layout.

        A row of tiles belongs to the rank whose slab holds the centre of its core.

        >>> grid = TileGrid.build((1024, 64), (256, 64), (32, 0), 8)
        >>> grid.first_axis_rows(SlabLayout.balanced(1024, 3))
        [range(0, 1), range(1, 3), range(3, 4)]
        """
        owners = [layout.owner((start + stop - 1) // 2) for start, stop in self.axes[0].cores]
        rows = []
        for rank in range(layout.world_size):
            mine = [i for i, owner in enumerate(owners) if owner == rank]
            rows.append(range(mine[0], mine[-1] + 1) if mine else range(0))
        return rows

    def sharded_halos(self, layout: SlabLayout) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Rows each rank needs before and after its slab to process its tile rows (known to all ranks)."""
        axis = self.axes[0]
        before, after = [], []
        for rank, rows in enumerate(self.first_axis_rows(layout)):
            start, stop = layout.bounds[rank]
            if len(rows):
                start = min(start, axis.windows[rows[0]][0])
                stop = max(stop, axis.windows[rows[-1]][1])
            before.append(layout.start(rank) - start)
            after.append(stop - layout.stop(rank))
        return tuple(before), tuple(after)
