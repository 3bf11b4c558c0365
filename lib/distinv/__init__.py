"""distinv: large imaging inverse problems across several GPUs with PyTorch and DeepInverse.

The public surface is small: :func:`launch` starts ranks, :class:`TiledDenoiser` tiles a prior over
them, :class:`ShardedBlur` is a spatially distributed operator. The rest lives in sub-packages
(``distinv.distributed``, ``distinv.tiling``, ``distinv.problems``, ``distinv.solvers``,
``distinv.bench``).
"""

from distinv.launch import LaunchTimeout, RankError, launch, rank_device, resolve_nprocs

__all__ = ["launch", "rank_device", "resolve_nprocs", "RankError", "LaunchTimeout",
           "TiledDenoiser", "TilingConfig", "ShardedBlur"]
__version__ = "0.1.0"

_LAZY = {"TiledDenoiser": "distinv.tiling", "TilingConfig": "distinv.tiling", "ShardedBlur": "distinv.distributed"}


def __getattr__(name: str):
    """Import the heavier names (they pull in deepinv) on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'distinv' has no attribute {name!r}")
