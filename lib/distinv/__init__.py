"""distinv: large imaging inverse problems across several GPUs with PyTorch and DeepInverse.

The public surface is small: :func:`launch` starts ranks, :class:`TiledDenoiser` tiles a prior over
them, :class:`ShardedBlur` is a spatially distributed operator, :func:`load_denoiser` gives a trained
prior and :func:`run_reconstruction` is the rank function of the natural-images use case. The rest lives in sub-packages
(``distinv.distributed``, ``distinv.tiling``, ``distinv.problems``, ``distinv.solvers``,
``distinv.bench``).
"""

from distinv.launch import LaunchTimeout, RankError, launch, rank_device, resolve_nprocs

__all__ = ["launch", "rank_device", "resolve_nprocs", "RankError", "LaunchTimeout",
           "TiledDenoiser", "TilingConfig", "ShardedBlur", "load_denoiser", "run_reconstruction"]
__version__ = "0.1.0"

_LAZY = {"TiledDenoiser": "distinv.tiling", "TilingConfig": "distinv.tiling", "ShardedBlur": "distinv.distributed",
         "load_denoiser": "distinv.models", "run_reconstruction": "distinv.solvers"}


def __getattr__(name: str):
    """Import the heavier names (they pull in deepinv) on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'distinv' has no attribute {name!r}")
