r"""The data term :math:`f(x) = \tfrac12 \sum_k \|A_k x - y_k\|^2` of a distributed stacked operator.

Every rank holds the whole iterate :math:`x` and the measurements of its own operators; each of
the operations below costs one all-reduce of an :math:`x`-sized tensor (through the physics'
context), so every rank ends with the same result whatever the number of ranks.

- gradient :math:`\nabla f(x) = \sum_k A_k^\top (A_k x - y_k)` (deepinv's ``DistributedDataFidelity``);
- proximal / HQS step :math:`\arg\min_z f(z) + \tfrac{\mu}{2}\|z - v\|^2`, i.e. the linear system
  :math:`(A^\top A + \mu I) z = A^\top y + \mu v`, solved by conjugate gradients (CG): one
  :math:`A^\top A` product (one all-reduce) per CG iteration;
- the back-projection :math:`A^\top y` and the coverage :math:`A^\top \mathbf 1`.

:class:`ShardedDataTerm` is the same data term when each rank holds a *slab* of :math:`x` and the
measurements of that slab (an operator that acts slab by slab, e.g. parallel-beam CT along the rotation
axis): products need no communication at all, and only the inner products of CG are all-reduced (two
scalars per CG iteration).
"""

from __future__ import annotations

from typing import Callable

import torch

__all__ = ["StackedDataTerm", "ShardedDataTerm", "conjugate_gradient", "local_dot"]


def local_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r""":math:`\langle a, b\rangle` over the whole tensor, accumulated in float64."""
    return torch.sum(a * b, dtype=torch.float64)


def conjugate_gradient(operator: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, x0: torch.Tensor,
                       iterations: int, dot: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = local_dot
                       ) -> torch.Tensor:
    r"""``iterations`` steps of CG on :math:`M x = b` for a symmetric positive definite :math:`M`.

    Inner products are taken over the whole tensor: with a replicated iterate they are the same on
    every rank and need no communication. They accumulate in float64 (float32 sums over tens of
    millions of samples are off by about 1e-4).

    :param callable operator: :math:`x \mapsto Mx`.
    :param torch.Tensor b: right-hand side.
    :param torch.Tensor x0: start point.
    :param int iterations: CG steps (each one product with :math:`M`).
    :param callable dot: the inner product (a global one, all-reduced, when ``x`` is a slab).
    :return: the approximate solution.

    >>> M = torch.diag(torch.tensor([1.0, 2.0, 4.0]))
    >>> x = conjugate_gradient(lambda v: M @ v, torch.tensor([1.0, 2.0, 4.0]), torch.zeros(3), 3)
    >>> [round(v, 5) for v in x.tolist()]
    [1.0, 1.0, 1.0]
    """
    x = x0.clone()
    r = b - operator(x)
    p = r.clone()
    rr = dot(r, r)
    for _ in range(iterations):
        if rr == 0:
            break
        mp = operator(p)
        alpha = rr / dot(p, mp)
        x.add_(alpha * p)
        r.sub_(alpha * mp)
        rr_new = dot(r, r)
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

    @staticmethod
    def dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The inner product: the iterate is replicated, so the local sum is the global one."""
        return local_dot(a, b)

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


class ShardedDataTerm:
    r"""The data term when each rank holds a slab of :math:`x` and the measurements of that slab.

    The operator acts slab by slab (:math:`A = \mathrm{diag}(A_0, \dots, A_{P-1})` over the ranks'
    slabs), so :math:`\nabla f`, :math:`A^\top A` and :math:`A^\top y` are local; :meth:`dot` all-reduces
    one float64 scalar (site ``"physics.dot"``), which CG uses for its step sizes.

    :param physics: this rank's operator (a deepinv ``LinearPhysics`` acting on the slab).
    :param torch.Tensor y: the measurements of the slab.
    :param int num_operators: how many operators the problem is made of (reported, e.g. the ranks).

    >>> from deepinv.physics import Blur
    >>> term = ShardedDataTerm(Blur(torch.ones(1, 1, 1, 1)), torch.ones(1, 1, 4, 4))  # identity, one rank
    >>> float(term.gradient(torch.zeros(1, 1, 4, 4)).sum()), float(term.dot(torch.ones(3), torch.ones(3)))
    (-16.0, 3.0)
    """

    def __init__(self, physics, y: torch.Tensor, num_operators: int = 1):
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"y must be this slab's measurement tensor, got {type(y).__name__}")
        self.physics = physics
        self.y = y
        self.num_operators = num_operators

    def dot(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The global inner product: local float64 sums all-reduced over the ranks' slabs."""
        from distinv.distributed import comm

        value = local_dot(a, b).reshape(1)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            value = comm.all_reduce(value, site="physics.dot")
        return value[0]

    def gradient(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\nabla f(x) = A^\top(Ax - y)` on this slab."""
        return self.physics.A_adjoint(self.physics.A(x) - self.y)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`A^\top A x` on this slab."""
        return self.physics.A_adjoint(self.physics.A(x))

    def back_projection(self) -> torch.Tensor:
        r""":math:`A^\top y` on this slab."""
        return self.physics.A_adjoint(self.y)

    def least_squares(self, x0: torch.Tensor, iterations: int, aty: torch.Tensor | None = None) -> torch.Tensor:
        r"""``iterations`` CG steps on :math:`A^\top A x = A^\top y` from ``x0``."""
        aty = self.back_projection() if aty is None else aty
        return conjugate_gradient(self.normal, aty, x0, iterations, dot=self.dot)

    def proximal(self, v: torch.Tensor, mu: float, iterations: int, aty: torch.Tensor,
                 x0: torch.Tensor | None = None) -> torch.Tensor:
        r""":math:`\arg\min_z f(z) + \tfrac{\mu}{2}\|z - v\|^2` by ``iterations`` CG steps from ``x0`` (default ``v``)."""
        return conjugate_gradient(lambda z: self.normal(z) + mu * z, aty + mu * v, v if x0 is None else x0,
                                  iterations, dot=self.dot)
