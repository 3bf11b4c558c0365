r"""Visibility blocks of a Measurement Set as operators: :math:`A = \sum_k A_k`, one block of rows per operator.

The rows of an MS are cut into ``blocks`` contiguous blocks (:func:`~distinv.radio.ms.rows_for_rank` with
``world = blocks``). Operator :math:`k` is the naturally weighted measurement operator of the Stokes-I
samples of block :math:`k` (:class:`~distinv.radio.nufft.RadioNUFFT`), times a scale :math:`c` set once the
norm of the whole operator is known:

.. math::

    A_k = c\,\mathrm{diag}(\sqrt{w_k})\,F_k, \qquad y_k = \sqrt{w_k} \odot V_k, \qquad
    A^\top A = \sum_k A_k^\top A_k, \qquad A^\top y = \sum_k A_k^\top y_k,

so the gradient of :math:`\tfrac12\|Ax - y\|^2` is a sum over blocks: each rank sums its own blocks' terms,
then one all-reduce of an image. :func:`block_factory` is a deepinv factory ``(index, device, kwargs)``:
deepinv's ``distribute`` calls it on each rank for that rank's blocks only, so **each rank reads only its
own rows** (``getcol(startrow, nrow)``), and 1, 2 or 3 ranks hold the same blocks and compute the same sum.

>>> import numpy as np
>>> from distinv.radio.ms import VisibilityBlock
>>> block = VisibilityBlock(np.array([[10.0, -5.0, 0.0]]), np.array([2.0 + 0j]), np.array([4.0]), (0, 1), 1)
>>> op = VisibilityBlockOperator(block, npix=8, cell_rad=1e-3)
>>> x = torch.zeros(1, 1, 8, 8); x[0, 0, 4, 4] = 2.0  # 2 Jy at the phase centre
>>> op.A(x).flatten().tolist(), op.y.flatten().tolist()  # sqrt(w) * 2 Jy both
([(4+0j)], [(4+0j)])
"""

from __future__ import annotations

import time

import torch
from deepinv.physics import LinearPhysics

from distinv.radio.ms import VisibilityBlock

__all__ = ["VisibilityBlockOperator", "block_factory", "block_rows"]


def block_rows(n_rows: int, blocks: int, index: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` of block ``index`` of ``blocks`` (contiguous, sizes differing by at most 1).

    :raises ValueError: more blocks than rows (each block needs a row), or ``index`` outside ``[0, blocks)``.

    >>> [block_rows(10, 3, k) for k in range(3)]
    [(0, 4), (4, 7), (7, 10)]
    """
    from distinv.radio.ms import rows_for_rank

    if blocks > n_rows:
        raise ValueError(f"blocks={blocks} visibility blocks but the Measurement Set has only n_rows={n_rows} rows: "
                         f"each block (and each rank) needs at least one row, use at most {n_rows}")
    return rows_for_rank(n_rows, blocks, index)


class VisibilityBlockOperator(LinearPhysics):
    r""":math:`c\,\mathrm{diag}(\sqrt w)F` of one block of Stokes-I samples, holding its measurements :math:`y = \sqrt w \odot V`.

    A block whose samples are all flagged is the zero operator (measurements of length 0).

    :param VisibilityBlock block: the samples (uv in wavelengths, visibilities, weights).
    :param int npix: image side.
    :param float cell_rad: pixel size in radians (aliasing is checked by the caller against every block).
    :param str backend: ``"finufft"`` or ``"deepinv"``.
    :param float eps: FINUFFT's tolerance.
    :param device: where the operator lives.
    :param float read_s: seconds spent reading the block (reported).
    """

    def __init__(self, block: VisibilityBlock, npix: int, cell_rad: float, backend: str = "finufft",
                 eps: float = 1e-6, device: torch.device | str = "cpu", read_s: float = 0.0):
        super().__init__(device=device)
        from distinv.radio.nufft import RadioNUFFT

        self.npix, self.rows, self.read_s = int(npix), tuple(block.rows), float(read_s)
        self.n_visibilities = block.n_visibilities
        self.sum_weights = float(block.weight.sum()) if block.n_visibilities else 0.0
        self.uv_max = float(abs(block.uv).max()) if block.n_visibilities else 0.0
        self.scale = 1.0
        if block.n_visibilities:
            self.nufft = RadioNUFFT(block.uv, npix, cell_rad, weights=block.weight, backend=backend, eps=eps,
                                    device=device, check_aliasing=False)
            vis = torch.from_numpy(block.vis).to(torch.complex64).to(device)
            self.y = self.nufft.weigh(vis)[None, None]
        else:
            self.nufft = None
            self.y = torch.zeros(1, 1, 0, dtype=torch.complex64, device=device)

    @property
    def uv(self) -> torch.Tensor:
        """``(K, 2)`` (u, v) in wavelengths (float64)."""
        return self.nufft.uv if self.nufft is not None else torch.zeros(0, 2, dtype=torch.float64)

    def A(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        r""":math:`c\sqrt w \odot Fx`: ``(B, C, N, N)`` → ``(B, C, K)`` complex."""
        if self.nufft is None:
            return torch.zeros(*x.shape[:-2], 0, dtype=torch.complex64, device=x.device)
        return self.scale * self.nufft.A(x)

    def A_adjoint(self, y: torch.Tensor, **kwargs) -> torch.Tensor:
        r""":math:`c\,\mathrm{Re}\,F^H(\sqrt w \odot y)`: ``(B, C, K)`` → ``(B, C, N, N)``."""
        if self.nufft is None:
            return torch.zeros(*y.shape[:-1], self.npix, self.npix, dtype=y.real.dtype, device=y.device)
        return self.scale * self.nufft.A_adjoint(y)


def block_factory(index: int, device: torch.device, factory_kwargs: dict) -> VisibilityBlockOperator:
    """deepinv factory: read the rows of block ``index`` and build its operator (scale 1).

    ``factory_kwargs``: ``ms``, ``column``, ``weight_column``, ``blocks``, ``npix``, ``cell_rad``, ``backend``,
    ``eps``.
    """
    from distinv.radio.ms import open_measurement_set, read_rows

    tic = time.perf_counter()
    info = open_measurement_set(factory_kwargs["ms"], column=factory_kwargs["column"],
                                weight_column=factory_kwargs["weight_column"])
    start, stop = block_rows(info.n_rows, factory_kwargs["blocks"], index)
    block = read_rows(info, start, stop)
    read_s = time.perf_counter() - tic
    return VisibilityBlockOperator(block, factory_kwargs["npix"], factory_kwargs["cell_rad"],
                                   backend=factory_kwargs["backend"], eps=factory_kwargs["eps"], device=device,
                                   read_s=read_s)
