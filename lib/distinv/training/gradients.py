"""Parameter gradients summed over ranks after a training step's backward pass (one flat all-reduce).

Which parameters (see :mod:`distinv.training.prior` for the conventions): in the replicated layout only
the denoiser's (each rank holds the gradient of its own tiles); in the sharded layout all of them (each
rank holds the gradient of its own slab's loss). A parameter without a gradient on a rank (a rank without
tiles never calls the network) counts as zero.
"""

from __future__ import annotations

import torch

from distinv.distributed import comm

__all__ = ["synchronize_gradients", "parameters_to_reduce"]


def parameters_to_reduce(model, layout: str) -> list[torch.nn.Parameter]:
    """The parameters of ``model`` whose gradients are each rank's share in ``layout``.

    :param UnrolledHQS model: the network.
    :param str layout: ``"replicated"`` or ``"sharded"``.
    """
    if layout == "replicated":
        return list(model.denoiser.parameters())
    if layout == "sharded":
        return list(model.parameters())
    raise ValueError(f"layout must be 'replicated' or 'sharded', got {layout!r}")


def synchronize_gradients(model, layout: str) -> int:
    """Sum the gradient shares of :func:`parameters_to_reduce` over the ranks, in place (site ``"training.grads"``).

    :param UnrolledHQS model: the network after ``loss.backward()``.
    :param str layout: ``"replicated"`` or ``"sharded"``.
    :return: bytes all-reduced (0 on one rank).

    >>> from distinv.solvers.unrolled import UnrolledHQS
    >>> from deepinv.models import DRUNet
    >>> model = UnrolledHQS(DRUNet(1, 1, nc=[8, 8, 8, 8], nb=1, pretrained=None), n_layers=2)
    >>> synchronize_gradients(model, "sharded")
    0
    """
    params = parameters_to_reduce(model, layout)
    if comm.world()[1] == 1 or not params:
        return 0
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
    comm.all_reduce(flat, site="training.grads")
    offset = 0
    for p in params:
        piece = flat[offset:offset + p.numel()].view_as(p)
        if p.grad is None:
            p.grad = piece.clone()
        else:
            p.grad.copy_(piece)
        offset += p.numel()
    return flat.numel() * flat.element_size()
