r"""The prior step of the solvers: a denoiser :math:`D_\sigma`, tiled across ranks.

:func:`load_prior_denoiser` returns the network (trained weights from :mod:`distinv.models`, or an
untrained small DRUNet for wiring checks); :func:`tiled_prior` wraps it so that each rank denoises
only its own tiles:

- ``"distinv"``: :class:`distinv.tiling.TiledDenoiser` (blending, replicated layout, static or dynamic
  schedule);
- ``"deepinv"``: deepinv's ``DistributedProcessing`` (replicated layout: every rank holds the whole
  image, tiles are assigned round-robin, outputs are cropped without blending, then all-reduced);
- ``"none"``: the denoiser on the whole image, on every rank (a reference, no communication).

All three are called ``prior(x, sigma)`` like a deepinv denoiser.
"""

from __future__ import annotations

import torch

from distinv.solvers.config import PriorConfig

__all__ = ["load_prior_denoiser", "tiled_prior"]


def load_prior_denoiser(config: PriorConfig, channels: int, device: torch.device) -> torch.nn.Module:
    """The denoiser named by ``config`` (eval mode, on ``device``).

    :param PriorConfig config: weights name and source (``weights="random"``: an untrained DRUNet,
        ``nc=(32, 64, 128, 256)``, ``nb=2``, seeded, for wiring only).
    :param int channels: 1 or 3.
    :param torch.device device: where the network lives.

    >>> net = load_prior_denoiser(PriorConfig(weights="random"), 1, torch.device("cpu"))
    >>> type(net).__name__
    'DRUNet'
    """
    if config.weights == "random":
        from deepinv.models import DRUNet

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            net = DRUNet(in_channels=channels, out_channels=channels, pretrained=None,
                         nc=[32, 64, 128, 256], nb=2)
        return net.eval().to(device)
    from distinv.models import load_denoiser

    net = load_denoiser(config.weights_name(channels), source=config.weights_source, device=device)
    return net.eval()


def tiled_prior(denoiser: torch.nn.Module, config: PriorConfig, ctx) -> torch.nn.Module:
    r"""Wrap ``denoiser`` so that ``prior(x, sigma)`` runs tile by tile across the ranks of ``ctx``.

    :param torch.nn.Module denoiser: called ``denoiser(x, sigma)``.
    :param PriorConfig config: implementation, tile size, overlap, batch size, blending, layout.
    :param deepinv.distributed.DistributedContext ctx: an entered context (its collectives carry the
        prior's communication, e.g. a :class:`distinv.solvers.context.AccountedContext`).
    :return: a module called ``(x, sigma)``.

    >>> from distinv.solvers.context import AccountedContext
    >>> with AccountedContext("prior", torch.device("cpu")) as ctx:
    ...     prior = tiled_prior(lambda x, sigma: x, PriorConfig(patch=8, overlap=2), ctx)
    ...     prior(torch.ones(1, 1, 16, 16), 0.1).shape
    torch.Size([1, 1, 16, 16])
    """
    from distinv.tiling import TiledDenoiser, TilingConfig, to_channels_last

    if config.channels_last and isinstance(denoiser, torch.nn.Module):  # the same network for every implementation
        to_channels_last(denoiser)
    if config.implementation == "none":
        return _WholeImage(denoiser)
    if config.implementation == "deepinv":
        from deepinv.distributed.framework import DistributedProcessing

        return DistributedProcessing(
            ctx, denoiser, max_batch_size=config.max_batch_size,
            strategy_kwargs={"patch_size": config.patch, "overlap": config.overlap, "tiling_dims": (-2, -1)},
        )
    tiling = TilingConfig(patch=config.patch, overlap=config.overlap, max_batch_size=config.max_batch_size,
                          blend=config.blend, layout=config.layout, channels_last=config.channels_last,
                          schedule=config.schedule)
    return TiledDenoiser(denoiser, tiling)


class _WholeImage(torch.nn.Module):
    """The denoiser on the whole image (every rank computes the same result)."""

    def __init__(self, denoiser):
        super().__init__()
        self.denoiser = denoiser

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        return self.denoiser(x, sigma)
