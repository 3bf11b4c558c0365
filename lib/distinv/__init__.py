"""distinv: large imaging inverse problems across several GPUs with PyTorch and DeepInverse."""

from distinv.launch import LaunchTimeout, RankError, launch, rank_device, resolve_nprocs

__all__ = ["launch", "rank_device", "RankError", "LaunchTimeout", "resolve_nprocs"]
__version__ = "0.1.0"
