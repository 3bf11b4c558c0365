r"""The data term :math:`f(x) = \tfrac12 \sum_k \|A_k x - y_k\|^2` of a distributed stacked operator.

Every rank holds the whole iterate :math:`x` and the measurements of its own operators; each of
the operations below costs one all-reduce of an :math:`x`-sized tensor (through the physics'
context), so every rank ends with the same result whatever the number of ranks.

- gradient :math:`\nabla f(x) = \sum_k A_k^\top (A_k x - y_k)` (deepinv's ``DistributedDataFidelity``);
- proximal / HQS step :math:`\arg\min_z f(z) + \tfrac{\mu}{2}\|z - v\|^2`, i.e. the linear system
  :math:`(A^\top A + \mu I) z = A^\top y + \mu v`, solved by conjugate gradients (CG): one
  :math:`A^\top A` product (one all-reduce) per CG iteration;
- the back-projection :math:`A^\top y` and the coverage :math:`A^\top \mathbf 1`.
"""

from __future__ import annotations

from typing import Callable

import torch

__all__ = ["StackedDataTerm", "conjugate_gradient"]


def conjugate_gradient(operator: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, x0: torch.Tensor,
                       iterations: int) -> torch.Tensor:
    r"""``iterations`` steps of CG on :math:`M x = b` for a symmetric positive definite :math:`M`.

    Inner products are taken over the whole tensor: with a replicated iterate they are the same on
    every rank and need no communication. They accumulate in float64 (float32 sums over tens of
    millions of samples are off by about 1e-4).

    :param callable operator: :math:`x \mapsto Mx`.
    :param torch.Tensor b: right-hand side.
    :param torch.Tensor x0: start point.
    :param int iterations: CG steps (each one product with :math:`M`).
    :return: the approximate solution.

    >>> M = torch.diag(torch.tensor([1.0, 2.0, 4.0]))
    >>> x = conjugate_gradient(lambda v: M @ v, torch.tensor([1.0, 2.0, 4.0]), torch.zeros(3), 3)
    >>> [round(v, 5) for v in x.tolist()]
    [1.0, 1.0, 1.0]
    """
    x = x0.clone()
    r = b - operator(x)
    p = r.clone()
    rr = torch.sum(r * r, dtype=torch.float64)
    for _ in range(iterations):
        if rr == 0:
            break
        mp = operator(p)
        alpha = rr / torch.sum(p * mp, dtype=torch.float64)
        x.add_(alpha * p)
        r.sub_(alpha * mp)
        rr_new = torch.sum(r * r, dtype=torch.float64)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


class StackedDataTerm:
    r"""The data term of a deepinv ``DistributedStackedLinearPhysics`` and this rank's measurements.

    :param physics: the distributed stacked operator :math:`A = [A_0; \dots; A_{K-1}]`.
    :param list y: length-:math:`K` list; entries of operators this rank does not own may be ``None``.

    >>> from deepinv.distributed import DistributedContext, distribute
    >>> from deepinv.physics import Blur
    >>> with DistributedContext(device_mode="cpu") as ctx:
    ...     physics = distribute([Blur(torch.ones(1, 1, 1, 1))], ctx)  # identity
    ...     term = StackedDataTerm(physics, [torch.ones(1, 1, 4, 4)])
    ...     float(term.gradient(torch.zeros(1, 1, 4, 4)).sum())
    -16.0
    """

    def __init__(self, physics, y: list):
        from deepinv.distributed.framework import DistributedDataFidelity
        from deepinv.optim.data_fidelity import L2

        if len(y) != physics.num_operators:
            raise ValueError(f"y must have one entry per operator ({physics.num_operators}), got {len(y)}")
        missing = [k for k in physics.local_indexes if y[k] is None]
        if missing:
            raise ValueError(f"y lacks the measurements of this rank's operators {missing}")
        self.physics = physics
        self.y = y
        self.fidelity = DistributedDataFidelity(physics.ctx, L2())

    def gradient(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\nabla f(x) = \sum_k A_k^\top(A_k x - y_k)`."""
        return self.fidelity.grad(x, self.y, self.physics)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`A^\top A x = \sum_k A_k^\top A_k x`."""
        return self.physics.A_adjoint_A(x)

    def back_projection(self) -> torch.Tensor:
        r""":math:`A^\top y = \sum_k A_k^\top y_k`."""
        return self.physics.A_adjoint(self.y)

    def coverage(self) -> torch.Tensor:
        r""":math:`A^\top \mathbf{1}`: how much each pixel is seen by the measurements."""
        ones = [None if t is None else torch.ones_like(t) for t in self.y]
        return self.physics.A_adjoint(ones)

    def normalized_back_projection(self) -> torch.Tensor:
        r""":math:`A^\top y \oslash A^\top \mathbf{1}`: the measurements spread back, averaged per pixel."""
        coverage = self.coverage()
        return self.back_projection() / coverage.clamp_min(1e-3 * float(coverage.max()))

    def least_squares(self, x0: torch.Tensor, iterations: int, aty: torch.Tensor | None = None) -> torch.Tensor:
        r"""Pseudo-inverse by ``iterations`` CG steps on :math:`A^\top A x = A^\top y` (early stopping regularises)."""
        aty = self.back_projection() if aty is None else aty
        return conjugate_gradient(self.normal, aty, x0, iterations)

    def proximal(self, v: torch.Tensor, mu: float, iterations: int, aty: torch.Tensor,
                 x0: torch.Tensor | None = None) -> torch.Tensor:
        r""":math:`\arg\min_z f(z) + \tfrac{\mu}{2}\|z - v\|^2` by ``iterations`` CG steps from ``x0`` (default ``v``)."""
        return conjugate_gradient(lambda z: self.normal(z) + mu * z, aty + mu * v,
                                  v if x0 is None else x0, iterations)
