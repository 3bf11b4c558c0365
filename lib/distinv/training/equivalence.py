"""One training step on N ranks against one rank: the loss and every parameter's gradient (chapter 04's table).

:func:`step_gradients_rank` is the rank function (``distinv.launch(step_gradients_rank, [cfg, ...], nprocs=N)``);
:func:`gradient_agreement` compares two of its results parameter by parameter.
"""

from __future__ import annotations

import torch

__all__ = ["step_gradients_rank", "gradient_agreement"]


def step_gradients_rank(configs: list[dict], step: int = 0) -> list[dict] | None:
    """Loss and parameter gradients of training step ``step`` for every config (no update), on every rank.

    :param list configs: :class:`~distinv.training.config.UnrolledTrainingConfig` dicts (e.g. both layouts).
    :param int step: the step whose crops and noise are drawn.
    :return: on rank 0, per config ``{"loss", "grads": name -> tensor, "spread"}``; ``spread`` is the largest
        difference between any rank's gradients and rank 0's after the all-reduce (0 when they agree).
    """
    from distinv.distributed import comm
    from distinv.solvers.context import AccountedContext
    from distinv.training.config import UnrolledTrainingConfig
    from distinv.launch import resolve_device
    from distinv.training.trainer import UnrolledTrainer

    out = []
    for cfg in configs:
        config = UnrolledTrainingConfig.from_dict(cfg)
        device = resolve_device(config.device)
        with AccountedContext("physics", device) as ctx:
            trainer = UnrolledTrainer(config, ctx, device)
            loss = trainer.gradients(step)
            grads = {name: g.cpu() for name, g in trainer.named_gradients().items()}
            flat = torch.cat([g.reshape(-1) for g in grads.values()])
            gathered = [torch.zeros_like(flat) for _ in range(ctx.world_size)]
            comm.all_gather(gathered, flat, site="training.check")
            out.append({"loss": loss, "grads": grads, "spread": max(float((g - flat).abs().max()) for g in gathered)})
            rank = ctx.rank
    return out if rank == 0 else None


def gradient_agreement(reference: dict, other: dict) -> list[dict]:
    """Per parameter: the largest gradient entry of ``reference`` and the largest difference to ``other``.

    :param dict reference: one entry of :func:`step_gradients_rank` (e.g. 1 rank).
    :param dict other: the same step elsewhere (e.g. 2 ranks).
    :return: rows ``{"parameter", "max_abs_gradient", "max_abs_difference", "relative"}``, the loss first
        (``parameter="loss"``).

    >>> a = {"loss": 2.0, "grads": {"w": torch.tensor([1.0, -4.0])}}
    >>> b = {"loss": 2.0, "grads": {"w": torch.tensor([1.0, -3.0])}}
    >>> [row["relative"] for row in gradient_agreement(a, b)]
    [0.0, 0.25]
    """
    rows = [{"parameter": "loss", "max_abs_gradient": None,
             "max_abs_difference": abs(other["loss"] - reference["loss"]),
             "relative": abs(other["loss"] - reference["loss"]) / abs(reference["loss"])}]
    for name, grad in reference["grads"].items():
        scale = float(grad.abs().max())
        difference = float((other["grads"][name] - grad).abs().max())
        rows.append({"parameter": name, "max_abs_gradient": scale, "max_abs_difference": difference,
                     "relative": difference / scale if scale > 0 else difference})
    return rows
