"""Distributed building blocks: accounted communication, slabs and halos, spatially split physics."""

from distinv.distributed.blur import ShardedBlur
from distinv.distributed.halo import halo_accumulate, halo_exchange
from distinv.distributed.norm import PowerIteration, sharded_sqnorm, stacked_sqnorm
from distinv.distributed.sharding import SlabLayout, gather_slabs, scatter_slabs, slab_bounds

__all__ = [
    "ShardedBlur", "halo_exchange", "halo_accumulate", "PowerIteration", "stacked_sqnorm", "sharded_sqnorm",
    "SlabLayout", "slab_bounds", "scatter_slabs", "gather_slabs",
]
