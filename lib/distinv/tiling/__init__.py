"""Tiled processing of a denoiser across ranks: config, global tile grid, blending, the module.

>>> from distinv.tiling import TiledDenoiser, TilingConfig
>>> TiledDenoiser(lambda x, sigma: x, TilingConfig(patch=64)).config.overlap
32
"""

from distinv.tiling.config import BLENDS, LAYOUTS, TilingConfig
from distinv.tiling.denoiser import TiledDenoiser, to_channels_last
from distinv.tiling.geometry import AxisTiles, TileGrid

__all__ = ["TilingConfig", "TiledDenoiser", "TileGrid", "AxisTiles", "BLENDS", "LAYOUTS", "to_channels_last"]
