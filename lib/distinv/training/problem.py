r"""The training problem on this rank: the ``K`` blurs of chapter 01 applied to a batch of crops.

:math:`y_k = A_k x + \sigma_n\varepsilon_k` with :math:`A_k` the circular anisotropic Gaussian blur of frame
:math:`k` (:meth:`distinv.problems.images.DeblurringConfig.kernel`), in one of two layouts:

- ``"replicated"``: every rank holds the whole crop; the operators are dealt across ranks by deepinv's
  ``DistributedStackedLinearPhysics`` (deepinv ``BlurFFT`` each), so :math:`A^\top A` is one all-reduce
  (:class:`~distinv.solvers.data_term.StackedDataTerm`);
- ``"sharded"``: every rank holds a slab of rows of the crop and applies every operator to it as a distinv
  :class:`~distinv.distributed.ShardedBlur` (halo exchanges); inner products are all-reduced
  (:class:`SlabStackedDataTerm`). No rank ever holds the whole crop after it is cut.

The noise of frame :math:`k` at step :math:`s` is drawn for the whole crop from a generator seeded by
``(seed, s, k)`` and then cut, so measurements do not depend on the number of ranks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from distinv.distributed import comm
from distinv.solvers.data_term import local_dot
from distinv.training.config import UnrolledTrainingConfig
from distinv.training.data import step_seed

__all__ = ["TrainingProblem", "SlabStackedDataTerm", "StepBatch", "GlobalSum", "blur_factory"]


class GlobalSum(torch.autograd.Function):
    """Sum over ranks of a tensor each rank holds a part of (forward and backward both all-reduce).

    The backward all-reduce is right when every rank's loss counts (the sharded layout's loss is the sum
    of the ranks' slab losses).
    """

    @staticmethod
    def forward(ctx, value: torch.Tensor) -> torch.Tensor:
        return comm.all_reduce(value.clone(), site="training.dot")

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return comm.all_reduce(grad.clone(), site="training.dot")


class SlabStackedDataTerm:
    r""":math:`f(x) = \tfrac12\sum_k\|A_kx-y_k\|^2` on this rank's slab, every :math:`A_k` a ``ShardedBlur``.

    :param list operators: the ``K`` sharded operators.
    :param list y: this rank's slab of each :math:`y_k`.
    """

    def __init__(self, operators: list, y: list[torch.Tensor]):
        if len(operators) != len(y):
            raise ValueError(f"y must hold one slab per operator ({len(operators)}), got {len(y)}")
        self.operators, self.y = operators, y

    @staticmethod
    def dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Global inner product (float64), differentiable: local sums all-reduced."""
        return GlobalSum.apply(local_dot(a, b).reshape(1))[0]

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\sum_k A_k^\top A_k x` on this slab (collective)."""
        return sum(op.A_adjoint(op.A(x)) for op in self.operators)

    def back_projection(self) -> torch.Tensor:
        r""":math:`\sum_k A_k^\top y_k` on this slab."""
        return sum(op.A_adjoint(y) for op, y in zip(self.operators, self.y))

    def normalized_back_projection(self) -> torch.Tensor:
        r""":math:`A^\top y \oslash A^\top\mathbf 1`, the coverage clamped at :math:`10^{-3}` of its global maximum."""
        coverage = sum(op.A_adjoint(torch.ones_like(y)) for op, y in zip(self.operators, self.y))
        peak = comm.all_reduce(coverage.max().reshape(1).clone(), site="training.coverage",
                               op=torch.distributed.ReduceOp.MAX)
        return self.back_projection() / coverage.clamp_min(1e-3 * float(peak))


def blur_factory(index: int, device: torch.device, factory_kwargs: dict):
    """deepinv factory ``(index, device, kwargs)`` of frame ``index``'s circular ``BlurFFT``.

    ``factory_kwargs``: ``"problem"`` (a :class:`~distinv.problems.images.DeblurringConfig` dict) and
    ``"dtype"`` (``"float32"`` or ``"float64"``).
    """
    from deepinv.physics import BlurFFT

    from distinv.problems.images import DeblurringConfig

    problem = DeblurringConfig(**factory_kwargs["problem"])
    dtype = getattr(torch, factory_kwargs["dtype"])
    return BlurFFT(img_size=(problem.channels, problem.size, problem.size),
                   filter=problem.kernel(index, device).to(dtype), device=device)


@dataclass
class StepBatch:
    """What one step's network input needs on this rank: data term, :math:`A^\\top y`, start point, target."""

    data: object
    aty: torch.Tensor
    x0: torch.Tensor
    target: torch.Tensor


class TrainingProblem:
    """The operators of the training crops on this rank, and each step's measurements.

    :param UnrolledTrainingConfig config: crop side, ``K``, blur, noise, layout, dtype.
    :param ctx: an entered deepinv ``DistributedContext`` (e.g. :class:`~distinv.solvers.context.AccountedContext`).
    :param torch.device device: this rank's device.
    """

    def __init__(self, config: UnrolledTrainingConfig, ctx, device: torch.device):
        from distinv.problems.images import DeblurringConfig

        self.config, self.device = config, torch.device(device)
        self.dtype = getattr(torch, config.dtype)
        self.rank, self.world_size = comm.world()
        self.problem = DeblurringConfig(size=config.crop, K=config.K, sigma_n=config.sigma_n,
                                        blur_sigma=config.blur_sigma, channels=config.channels)
        if config.layout == "replicated":
            from deepinv.distributed import distribute

            self.physics = distribute(blur_factory, ctx, num_operators=config.K, type_object="linear_physics",
                                      factory_kwargs={"problem": self.problem.to_dict(), "dtype": config.dtype})
            self.rows = (0, config.crop)
        else:
            from distinv.distributed import ShardedBlur
            from distinv.distributed.sharding import SlabLayout

            layout = SlabLayout.balanced(config.crop, self.world_size)
            self.operators = [ShardedBlur(self.problem.kernel(k, self.device).to(self.dtype), layout=layout,
                                          padding="circular", use_fft=True, device=self.device)
                              for k in range(config.K)]
            self.rows = layout.bounds[self.rank]

    def local_rows(self, x: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a whole crop batch (all of it in the replicated layout)."""
        start, stop = self.rows
        return x[:, :, start:stop]

    def noise(self, shape: tuple, step: int, frame: int) -> torch.Tensor:
        """This rank's rows of the standard normal noise of ``frame`` at ``step`` (drawn whole, then cut)."""
        generator = torch.Generator().manual_seed(step_seed(self.config.seed, step, 1 + frame))
        whole = torch.randn(shape, generator=generator, dtype=torch.float64)
        return self.local_rows(whole).to(device=self.device, dtype=self.dtype)

    def batch(self, x_true: torch.Tensor, step: int) -> StepBatch:
        """Measure the whole crop batch ``x_true`` (every rank passes the same) at ``step``; this rank's share.

        :param torch.Tensor x_true: ``(B, C, crop, crop)``.
        :param int step: the step (seeds the noise).
        """
        from distinv.solvers.data_term import StackedDataTerm

        sigma_n = self.config.sigma_n
        x_true = x_true.to(device=self.device, dtype=self.dtype)
        with torch.no_grad():
            if self.config.layout == "replicated":
                y: list = [None] * self.config.K
                for k, op in zip(self.physics.local_indexes, self.physics.local_physics):
                    y[k] = op.A(x_true) + sigma_n * self.noise(tuple(x_true.shape), step, k)
                data = StackedDataTerm(self.physics, y)
                target = x_true
            else:
                target = self.local_rows(x_true).contiguous()
                y = [op.A(target) + sigma_n * self.noise(tuple(x_true.shape), step, k)
                     for k, op in enumerate(self.operators)]
                data = SlabStackedDataTerm(self.operators, y)
            aty = data.back_projection()
            x0 = data.normalized_back_projection()
        return StepBatch(data=data, aty=aty, x0=x0, target=target)
