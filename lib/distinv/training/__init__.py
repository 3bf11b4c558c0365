"""Training across ranks: the unrolled PnP-HQS network learned through the distributed physics and the tiled prior.

- :mod:`~distinv.training.config`: :class:`UnrolledTrainingConfig`, the options of a run;
- :mod:`~distinv.training.data` and :mod:`~distinv.training.problem`: crops of the training photos and their
  measurements on this rank (replicated: operators dealt by deepinv's ``DistributedStackedLinearPhysics``;
  sharded: slabs through distinv's ``ShardedBlur``);
- :mod:`~distinv.training.prior` and :mod:`~distinv.training.gradients`: the tiled prior with its gradient
  conventions, and the parameter-gradient all-reduce;
- :mod:`~distinv.training.trainer`: :class:`UnrolledTrainer`, one rank's training step (per-layer and per-tile-batch
  activation checkpointing, bf16 autocast on CUDA);
- :mod:`~distinv.training.checkpoint` and :mod:`~distinv.training.loop`: the resumable checkpoint and the rank
  function :func:`train_rank` (``data_scripts/train_unrolled.py`` launches it);
- :mod:`~distinv.training.quality` and :mod:`~distinv.training.bench`: the targets, measured
  (``python -m distinv.training.bench {memory,quality,layer,gpu}``).

The network itself, and its inference in the runner, is :mod:`distinv.solvers.unrolled`.

>>> from distinv.training import UnrolledTrainingConfig
>>> UnrolledTrainingConfig(n_layers=4).n_layers
4
"""

from distinv.training.config import UnrolledTrainingConfig
from distinv.training.loop import train_rank
from distinv.training.trainer import UnrolledTrainer

__all__ = ["UnrolledTrainingConfig", "UnrolledTrainer", "train_rank"]
