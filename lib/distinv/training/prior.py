r"""The tiled prior of a training step: distinv's :class:`~distinv.tiling.TiledDenoiser` around the network.

Gradient conventions (what each rank's backward computes), by layout:

- ``"replicated"``: every rank computes the same loss :math:`L` (one copy). The tiled denoiser gives every
  rank the full gradient with respect to its input and each rank's *share* of the network parameters'
  gradient (the sum over its tiles). The noise level :math:`\sigma_t` is a replicated input like the image:
  :class:`ReplicatedPrior` passes it through :class:`ReplicatedScalar` (identity forward, all-reduce
  backward), so its gradient is full on every rank too. Only the network's parameters need an all-reduce
  after the backward pass (:func:`distinv.training.gradients.synchronize_gradients`).
- ``"sharded"``: the loss is the sum of the ranks' slab losses; every parameter's gradient on a rank is that
  rank's share, and all of them are all-reduced.

:class:`TrainingNetwork` gives the network a noise-level map in the window's dtype (deepinv's DRUNet builds
a float32 map from a 0-d ``sigma``, which would cap a float64 test at float32 precision) and, with
``checkpoint_tiles``, recomputes each tile batch's activations in the backward pass
(:func:`torch.utils.checkpoint.checkpoint`, non-reentrant: the call is local to the rank, no collective).
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from distinv.distributed import comm

__all__ = ["ReplicatedScalar", "ReplicatedPrior", "TrainingNetwork", "build_prior"]


class ReplicatedScalar(torch.autograd.Function):
    """Identity on a value every rank holds; backward: the sum of every rank's gradient (site ``"training.sigma"``)."""

    @staticmethod
    def forward(ctx, value: torch.Tensor) -> torch.Tensor:
        return value.view_as(value)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return comm.all_reduce(grad.contiguous().clone(), site="training.sigma")


class ReplicatedPrior(torch.nn.Module):
    """A replicated-layout tiled denoiser whose ``sigma`` gradient is summed over the ranks.

    The output carries a zero-valued term in ``sigma`` so that every rank reaches the all-reduce of
    :class:`ReplicatedScalar` in its backward pass, also a rank that holds no tile.

    :param torch.nn.Module tiled: a replicated :class:`~distinv.tiling.TiledDenoiser`.
    """

    def __init__(self, tiled: torch.nn.Module):
        super().__init__()
        self.tiled = tiled

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        tracked = isinstance(sigma, torch.Tensor) and sigma.requires_grad and torch.is_grad_enabled()
        if not tracked or comm.world()[1] == 1:
            return self.tiled(x, sigma)
        sigma = ReplicatedScalar.apply(sigma)
        return self.tiled(x, sigma) + 0.0 * sigma


class TrainingNetwork(torch.nn.Module):
    """The network as the tiled denoiser calls it during training: ``(windows, sigma)``.

    :param torch.nn.Module network: a deepinv ``DRUNet`` (accepts a ``(B, 1, H, W)`` noise-level map).
    :param bool checkpoint_tiles: recompute the activations of each call in the backward pass.

    >>> from deepinv.models import DRUNet
    >>> net = TrainingNetwork(DRUNet(1, 1, nc=[8, 8, 8, 8], nb=1, pretrained=None).double(), checkpoint_tiles=True)
    >>> net(torch.rand(2, 1, 32, 32, dtype=torch.float64), torch.tensor(0.1, dtype=torch.float64)).dtype
    torch.float64
    """

    def __init__(self, network: torch.nn.Module, checkpoint_tiles: bool = False):
        super().__init__()
        self.network = network
        self.checkpoint_tiles = checkpoint_tiles

    def _run(self, x: torch.Tensor, sigma) -> torch.Tensor:
        if isinstance(sigma, torch.Tensor) and sigma.numel() == x.shape[0] and sigma.numel() > 1:
            sigma = sigma.reshape(-1, 1, 1, 1)
        elif isinstance(sigma, torch.Tensor):
            sigma = sigma.reshape(())
        level = torch.ones_like(x[:, :1]) * (sigma.to(x.dtype) if isinstance(sigma, torch.Tensor) else sigma)
        return self.network(x, level)

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        if self.checkpoint_tiles and torch.is_grad_enabled():
            return checkpoint(self._run, x, sigma, use_reentrant=False, preserve_rng_state=False)
        return self._run(x, sigma)


def build_prior(network: torch.nn.Module, config, device: torch.device) -> torch.nn.Module:
    """The tiled prior ``prior(x, sigma)`` of a training run (layout, tiles, checkpointing, bf16 on CUDA).

    :param torch.nn.Module network: the unrolled network's denoiser.
    :param UnrolledTrainingConfig config: ``layout``, ``patch``, ``overlap``, ``max_batch_size``,
        ``checkpoint_tiles``, ``autocast``, ``channels_last``.
    :param torch.device device: this rank's device (bf16 autocast only on CUDA).
    """
    from distinv.tiling import TiledDenoiser, TilingConfig

    autocast = torch.bfloat16 if config.autocast and torch.device(device).type == "cuda" else None
    tiling = TilingConfig(patch=config.patch, overlap=min(config.overlap, config.patch - 1),
                          max_batch_size=config.max_batch_size, blend="smooth", layout=config.layout,
                          channels_last=config.channels_last, autocast_dtype=autocast)
    tiled = TiledDenoiser(TrainingNetwork(network, config.checkpoint_tiles), tiling)
    return ReplicatedPrior(tiled) if config.layout == "replicated" else tiled
