r"""One rank's share of training the unrolled network: model, optimiser, data, and the training step.

A step (:meth:`UnrolledTrainer.step`):

1. every rank draws the same crops (:class:`~distinv.training.data.CropSampler`) and measures them in its
   layout (:class:`~distinv.training.problem.TrainingProblem`: its operators, or its slab);
2. forward through the network (:class:`~distinv.solvers.unrolled.UnrolledHQS`) with the distributed data term
   and the tiled prior (:func:`~distinv.training.prior.build_prior`), optionally checkpointed per layer;
3. loss: the mean squared error :math:`\frac{1}{N}\sum_i (\hat x_i - x_i)^2` over the whole batch (``N``
   samples), or the PSNR loss :math:`\frac1B\sum_b 10\log_{10}(\mathrm{MSE}_b + 10^{-6})` over the ``B`` crops.
   In the sharded layout each rank's loss is its share: its slab's part of the squared errors for the MSE; for
   the PSNR loss the crops' squared errors are summed over ranks first (:class:`~distinv.training.problem.GlobalSum`,
   whose backward sums too) and each rank takes :math:`1/W` of the result. The printed loss is the ranks' sum;
4. backward, then the gradient shares are summed over ranks (:func:`~distinv.training.gradients.synchronize_gradients`):
   every rank then holds the same gradients and takes the same Adam step, so the parameters stay identical
   on every rank without being broadcast.

The learning rate follows a cosine from ``lr`` to ``lr / 100`` over ``steps`` (a function of the step only,
so a resumed run continues on the same schedule).
"""

from __future__ import annotations

import math

import torch

from distinv.distributed import comm
from distinv.solvers.unrolled import UnrolledHQS
from distinv.training.config import UnrolledTrainingConfig
from distinv.training.data import CropSampler, load_photo
from distinv.training.gradients import synchronize_gradients
from distinv.training.prior import build_prior
from distinv.training.problem import GlobalSum, TrainingProblem

__all__ = ["UnrolledTrainer", "build_model", "TINY_DRUNET"]

#: The "random-tiny" denoiser of the tests: DRUNet channels and blocks.
TINY_DRUNET = {"nc": [8, 8, 8, 8], "nb": 1}


def build_model(config: UnrolledTrainingConfig, device: torch.device) -> UnrolledHQS:
    """The untrained network of ``config`` (``init``: shipped DRUNet or a tiny random one seeded by ``seed``).

    :param UnrolledTrainingConfig config: channels, layers, CG steps, init, dtype.
    :param torch.device device: where it lives.
    """
    if config.init == "shipped":
        model = UnrolledHQS.from_shipped_denoiser(config.channels, config.n_layers, config.cg_iterations, device)
    else:
        from deepinv.models import DRUNet

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            denoiser = DRUNet(config.channels, config.channels, pretrained=None, **TINY_DRUNET)
        model = UnrolledHQS(denoiser, config.n_layers, config.cg_iterations)
    return model.to(device=device, dtype=getattr(torch, config.dtype))


class UnrolledTrainer:
    """Everything one rank needs to train: call it on every rank inside an entered distributed context.

    :param UnrolledTrainingConfig config: the run.
    :param ctx: an entered deepinv ``DistributedContext`` (e.g. ``AccountedContext("physics", device)``).
    :param torch.device device: this rank's device.
    :param list photos: prepared photos (default: :func:`~distinv.training.data.load_photo` of ``config.images``).
    """

    def __init__(self, config: UnrolledTrainingConfig, ctx, device: torch.device,
                 photos: list[torch.Tensor] | None = None):
        if not isinstance(config, UnrolledTrainingConfig):
            raise TypeError(f"config must be an UnrolledTrainingConfig, got {type(config).__name__}")
        self.config, self.device = config, torch.device(device)
        self.model = build_model(config, self.device)
        self.problem = TrainingProblem(config, ctx, self.device)
        self.prior = build_prior(self.model.denoiser, config, self.device)  # converts it channels-last first
        if photos is None:
            photos = [load_photo(name, config.channels, config.image_side) for name in config.images]
        self.sampler = CropSampler(photos, config.crop, config.seed)
        self.optimizer = torch.optim.Adam([
            {"params": list(self.model.denoiser.parameters()), "lr": config.lr},
            {"params": self.model.scalar_parameters(), "lr": config.lr_scalars},
        ])

    def learning_rates(self, step: int) -> tuple[float, float]:
        """``(denoiser, scalars)`` learning rates at ``step``: cosine from the peak to a hundredth of it."""
        factor = 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(step, self.config.steps) / self.config.steps))
        return self.config.lr * factor, self.config.lr_scalars * factor

    def forward_loss(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The network's output (this rank's layout) and this rank's loss at ``step`` (before backward)."""
        x_true = self.sampler.sample(step, self.config.batch)
        batch = self.problem.batch(x_true, step)
        x_hat = self.model(batch.x0, batch.data, batch.aty, self.config.sigma_n, self.prior,
                           checkpoint_layers=self.config.checkpoint_layers)
        squared = (x_hat - batch.target).pow(2)
        if self.config.loss == "mse":
            return x_hat, squared.sum() / x_true.numel()
        per_crop = squared.sum(dim=tuple(range(1, squared.ndim)))
        share = 1.0
        if self.config.layout == "sharded":
            per_crop, share = GlobalSum.apply(per_crop), 1.0 / comm.world()[1]
        mse = per_crop / x_true[0].numel()
        return x_hat, share * (10 * torch.log10(mse + 1e-6)).mean()

    def gradients(self, step: int) -> float:
        """Forward, backward and gradient all-reduce of ``step``; returns the (global) loss. No update."""
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        _, loss = self.forward_loss(step)
        loss.backward()
        synchronize_gradients(self.model, self.config.layout)
        value = loss.detach().reshape(1).to(torch.float64)
        if self.config.layout == "sharded":
            value = comm.all_reduce(value.clone(), site="training.loss")
        return float(value)

    def step(self, step: int) -> float:
        """One optimisation step (``step`` is 0-based); returns the loss before the update."""
        for group, lr in zip(self.optimizer.param_groups, self.learning_rates(step)):
            group["lr"] = lr
        loss = self.gradients(step)
        self.optimizer.step()
        return loss

    def named_gradients(self) -> dict[str, torch.Tensor]:
        """Every parameter's gradient by name (copies; zeros for a parameter without one)."""
        return {name: (p.grad if p.grad is not None else torch.zeros_like(p)).detach().clone().contiguous()
                for name, p in self.model.named_parameters()}
