r"""Spatially distributed blur: deepinv's :class:`~deepinv.physics.Blur` on a signal split into slabs.

The signal :math:`x` (``(B, C, H, W)``, or ``(B, C, D, H, W)`` in 3D) is split along its first spatial
axis (``dim=2``) into slabs, rank :math:`r` holding rows :math:`[s_r, e_r)` of a
:class:`~distinv.distributed.sharding.SlabLayout`. deepinv's blur is a padding followed by a "valid"
convolution, :math:`A x = k \ast_{\text{valid}} P x`, where :math:`P` pads :math:`t = \lceil h/2 \rceil - 1`
rows before and :math:`b = \lfloor h/2 \rfloor` after (:func:`filter_reach`; likewise on the other
axes, and no padding for ``"valid"``). Row by row it splits into one local piece per rank:

.. math::

    (A x)_r = k \ast_{\text{valid}} P_{\perp}\, E_r x, \qquad
    A^\top y = \sum_r E_r^\top\, P_{\perp}^\top\, (k \ast_{\text{valid}})^\top y_r ,

where :math:`E_r` is the halo exchange (:func:`~distinv.distributed.halo.halo_exchange`: rows
:math:`[s_r - t, e_r + b)` of the padded signal, the border padding done by the ranks that own the
border rows, site ``"blur.halo"``), :math:`P_\perp` the padding of the axes that are not split (local),
and :math:`\sum_r E_r^\top` the halo accumulation (:func:`~distinv.distributed.halo.halo_accumulate`,
site ``"blur.halo_adjoint"``). The convolutions are deepinv's own functionals on the extended slab,
so the gathered result equals deepinv's ``Blur`` on the whole signal.

**Measurement layout.** For every padding but ``"valid"``, :math:`y` has the signal's shape and layout.
With ``"valid"``, :math:`y` has :math:`H - h + 1` rows; its row :math:`i` is the filter centred on
signal row :math:`i + t` and lives on the rank that owns that signal row. Rank :math:`r` therefore
holds measurement rows :math:`[\max(s_r, t), \min(e_r, H - b)) - t` (:meth:`ShardedBlur.measurement_layout`);
a layout that leaves a rank no measurement row is rejected.

Halos may be longer than a neighbour's slab (they are then fetched from the ranks that own the rows).

>>> import torch
>>> from deepinv.physics import Blur
>>> x, k = torch.randn(1, 1, 8, 9), torch.rand(1, 1, 3, 4)
>>> physics = ShardedBlur(k, layout=8, padding="reflect")  # one rank: the whole signal is its slab
>>> torch.allclose(physics.A(x), Blur(k, padding="reflect").A(x), atol=1e-6)
True
>>> ShardedBlur(k, layout=8, padding="valid").measurement_layout().bounds
((0, 6),)
"""

from __future__ import annotations

from functools import lru_cache

import deepinv.physics.functional as dF
import torch
from deepinv.physics import LinearPhysics

from distinv.distributed import comm
from distinv.distributed.halo import halo_accumulate, halo_exchange, source_row
from distinv.distributed.norm import PowerIteration, sharded_sqnorm
from distinv.distributed.sharding import SlabLayout
from distinv.validation import check_finite

__all__ = ["PADDINGS", "ShardedBlur", "filter_reach"]

PADDINGS = ("valid", "circular", "reflect", "replicate", "constant", "zeros")
_BORDER_MODE = {"valid": "none", "circular": "circular", "reflect": "reflect", "replicate": "replicate",
                "constant": "zeros", "zeros": "zeros"}


def filter_reach(size: int) -> tuple[int, int]:
    """Rows ``(before, after)`` of its centre that a filter of ``size`` taps reads (deepinv's centring).

    The centre of a filter of ``size`` taps is tap ``size // 2`` for odd sizes and ``size // 2 - 1``
    for even ones, as in :func:`deepinv.physics.functional.conv2d`.

    :param int size: number of taps along one axis, ``>= 1``.
    :return: ``(before, after)`` with ``before + after = size - 1``.

    >>> filter_reach(7), filter_reach(4), filter_reach(1)
    ((3, 3), (1, 2), (0, 0))
    """
    return size // 2 - (size - 1) % 2, size // 2


@lru_cache(maxsize=256)
def _border_map(n: int, before: int, after: int, mode: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Positions of the padded axis that hold a copy of a signal row, and which row (zeros are absent)."""
    positions, sources = [], []
    for position in range(n + before + after):
        source = source_row(position - before, n, mode)
        if source is not None:
            positions.append(position)
            sources.append(source)
    return tuple(positions), tuple(sources)


def _pad_axis(x: torch.Tensor, dim: int, before: int, after: int, mode: str) -> torch.Tensor:
    """Pad one axis that is not split across ranks (a row-selection matrix ``S``: ``S x``)."""
    if before == after == 0:
        return x
    positions, sources = _border_map(x.shape[dim], before, after, mode)
    shape = list(x.shape)
    shape[dim] += before + after
    index = torch.tensor(positions, device=x.device)
    return x.new_zeros(shape).index_copy(dim, index, x.index_select(dim, torch.tensor(sources, device=x.device)))


def _pad_axis_adjoint(z: torch.Tensor, dim: int, before: int, after: int, mode: str) -> torch.Tensor:
    """``Sᵀ z`` for the ``S`` of :func:`_pad_axis`: every padded copy is added back to its source row."""
    if before == after == 0:
        return z
    n = z.shape[dim] - before - after
    positions, sources = _border_map(n, before, after, mode)
    shape = list(z.shape)
    shape[dim] = n
    index = torch.tensor(sources, device=z.device)
    return z.new_zeros(shape).index_add(dim, index, z.index_select(dim, torch.tensor(positions, device=z.device)))


class ShardedBlur(LinearPhysics):
    r"""Blur of a signal split into slabs along its first spatial axis; equals deepinv's ``Blur``.

    Each rank calls :meth:`A` on its slab and gets its slab of :math:`A x` (see the module notes for
    the maths and the ``"valid"`` measurement layout); :meth:`A_adjoint` likewise. Both are
    collectives (one halo exchange each) and differentiable. The power method and the adjointness
    test all-reduce their inner products, so :meth:`compute_sqnorm` returns the norm of the whole
    operator on every rank.

    :param torch.Tensor filter: ``(b, c, h, w)`` in 2D or ``(b, c, d, h, w)`` in 3D, ``b`` in
        ``{1, B}``, ``c`` in ``{1, C}`` (deepinv's convention: a true convolution); finite.
    :param SlabLayout | int layout: every rank's rows of the signal along ``dim=2``; an integer
        ``n`` means the balanced layout of ``n`` rows over the current ranks.
    :param str padding: one of :data:`PADDINGS` (``"constant"`` and ``"zeros"`` are the same).
    :param bool use_fft: use deepinv's FFT convolutions on the extended slab.
    :param torch.device, str device: device of the filter buffer.

    >>> import torch
    >>> physics = ShardedBlur(torch.ones(1, 1, 3, 3) / 9, layout=5, padding="circular")
    >>> physics.A(torch.ones(1, 1, 5, 4)).allclose(torch.ones(1, 1, 5, 4))
    True
    """

    def __init__(
        self,
        filter: torch.Tensor,
        layout: SlabLayout | int,
        padding: str = "valid",
        use_fft: bool = False,
        device: torch.device | str = "cpu",
        **kwargs,
    ):
        super().__init__(device=device, **kwargs)
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        _, world_size = comm.world()
        if isinstance(layout, int) and not isinstance(layout, bool):
            layout = SlabLayout.balanced(layout, world_size)
        if not isinstance(layout, SlabLayout):
            raise TypeError(f"layout must be a SlabLayout or a number of rows, got {type(layout).__name__}")
        if layout.world_size != world_size:
            raise ValueError(f"layout has {layout.world_size} slabs but there are {world_size} ranks")
        self.layout = layout
        self.padding = padding
        self.use_fft = bool(use_fft)
        self.register_buffer("filter", self._checked_filter(filter))
        self.to(device)

    # ------------------------------------------------------------------ geometry

    def _checked_filter(self, filter) -> torch.Tensor:
        if not isinstance(filter, torch.Tensor):
            raise TypeError(f"filter must be a torch.Tensor, got {type(filter).__name__}")
        if filter.dim() not in (4, 5):
            raise ValueError(
                f"filter must be 4-D (b, c, h, w) or 5-D (b, c, d, h, w), got shape {tuple(filter.shape)}"
            )
        check_finite("filter", filter)
        self.measurement_layout(filter)  # raises when the filter does not fit the layout
        return filter

    def measurement_layout(self, filter: torch.Tensor | None = None) -> SlabLayout:
        """Every rank's rows of :math:`y = A x` along ``dim=2`` (the signal layout unless ``"valid"``).

        :param torch.Tensor filter: the filter to plan for (default: the current one).
        :raises ValueError: the filter is longer than the signal along the split axis, or (``"valid"``)
            a rank would hold no measurement row.
        """
        filter = self.filter if filter is None else filter
        size, n = filter.shape[2], self.layout.n
        if size > n:
            raise ValueError(
                f"filter has {size} taps along the split axis but the signal has {n} rows: "
                f"a filter larger than the signal is not supported (filter shape {tuple(filter.shape)})"
            )
        if self.padding != "valid":
            return self.layout
        before, after = filter_reach(size)
        bounds = []
        for rank, (start, stop) in enumerate(self.layout.bounds):
            first, last = max(start, before), min(stop, n - after)
            if last <= first:
                raise ValueError(
                    f"padding='valid' leaves rank {rank} no measurement row: its slab holds rows "
                    f"[{start}, {stop}) but a filter of {size} taps is centred only on rows "
                    f"[{before}, {n - after}); use fewer ranks or larger end slabs (layout {self.layout.bounds})"
                )
            bounds.append((first - before, last - before))
        return SlabLayout(tuple(bounds))

    def _check_slab(self, x: torch.Tensor, expected: SlabLayout, name: str) -> None:
        if x.dim() != self.filter.dim():
            raise ValueError(
                f"{name} must be {self.filter.dim()}-D like the filter {tuple(self.filter.shape)}, got shape {tuple(x.shape)}"
            )
        rank = comm.world()[0]
        if x.shape[2] != expected.length(rank):
            raise ValueError(
                f"mismatched shard shapes: {name} has {x.shape[2]} rows along dim=2 on rank {rank}, but the layout "
                f"gives it {expected.length(rank)} (rows {expected.bounds[rank]} of {expected.n})"
            )
        if name == "y" and self.padding == "valid":
            return  # a valid measurement is smaller than the signal by construction
        for axis in range(3, x.dim()):
            if self.filter.shape[axis] > x.shape[axis]:
                raise ValueError(
                    f"filter {tuple(self.filter.shape)} is larger than the signal along axis {axis} "
                    f"({name} shape {tuple(x.shape)}): a filter larger than the signal is not supported"
                )

    def _reaches(self) -> list[tuple[int, int]]:
        """``(before, after)`` per non-split spatial axis (zero for ``"valid"``)."""
        if self.padding == "valid":
            return [(0, 0)] * (self.filter.dim() - 3)
        return [filter_reach(size) for size in self.filter.shape[3:]]

    # ------------------------------------------------------------------ operator

    def A(self, x: torch.Tensor, filter: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        r"""This rank's slab of :math:`A x` (collective).

        :param torch.Tensor x: this rank's slab of the signal.
        :param torch.Tensor filter: a new filter to store and use (optional, as in deepinv's ``Blur``).
        """
        if filter is not None:
            self.update_parameters(filter=self._checked_filter(filter))
        self._check_slab(x, self.layout, "x")
        before, after = filter_reach(self.filter.shape[2])
        mode = _BORDER_MODE[self.padding]
        extended = halo_exchange(x, before, after, dim=2, mode=mode, layout=self.layout, site="blur.halo")
        for axis, (lo, hi) in enumerate(self._reaches(), start=3):
            extended = _pad_axis(extended, axis, lo, hi, mode)
        return self._conv(extended)

    def A_adjoint(self, y: torch.Tensor, filter: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        r"""This rank's slab of :math:`A^\top y` (collective).

        :param torch.Tensor y: this rank's slab of the measurement (:meth:`measurement_layout`).
        :param torch.Tensor filter: a new filter to store and use (optional).
        """
        if filter is not None:
            self.update_parameters(filter=self._checked_filter(filter))
        self._check_slab(y, self.measurement_layout(), "y")
        before, after = filter_reach(self.filter.shape[2])
        mode = _BORDER_MODE[self.padding]
        extended = self._conv_transpose(y)
        for axis, (lo, hi) in reversed(list(enumerate(self._reaches(), start=3))):
            extended = _pad_axis_adjoint(extended, axis, lo, hi, mode)
        return halo_accumulate(
            extended, before, after, dim=2, mode=mode, layout=self.layout, site="blur.halo_adjoint"
        )

    def _conv(self, extended: torch.Tensor) -> torch.Tensor:
        if extended.dim() == 4:
            conv = dF.conv2d_fft if self.use_fft else dF.conv2d
        else:
            conv = dF.conv3d_fft if self.use_fft else dF.conv3d
        return conv(extended, self.filter, padding="valid")

    def _conv_transpose(self, y: torch.Tensor) -> torch.Tensor:
        if y.dim() == 4:
            conv = dF.conv_transpose2d_fft if self.use_fft else dF.conv_transpose2d
        else:
            conv = dF.conv_transpose3d_fft if self.use_fft else dF.conv_transpose3d
        return conv(y, self.filter, padding="valid")

    # ------------------------------------------------------------------ distributed-aware deepinv methods

    def compute_sqnorm(
        self, x0: torch.Tensor, *, max_iter: int = 100, tol: float = 1e-3, verbose: bool = False,
        rng: torch.Generator | None = None, **kwargs,
    ) -> torch.Tensor:
        r""":math:`\|A\|^2` of the whole operator by power iteration (collective; inner products all-reduced).

        :param torch.Tensor x0: a tensor shaped like this rank's slab (its values are not used).
        :param int max_iter: most iterations.
        :param float tol: relative change at which it stops.
        :param bool verbose: print the estimate on rank 0.
        :param torch.Generator rng: generator of the random start vector (default: torch's global one).
        :return: the same 0-d tensor on every rank.
        """
        start = torch.randn(x0.shape, generator=rng, dtype=x0.dtype, device=x0.device)
        estimate = sharded_sqnorm(self, start, PowerIteration(max_iter=max_iter, tol=tol))
        if verbose and comm.world()[0] == 0:
            print(f"power iteration: ||A||_2^2 = {estimate.value.item():.6g} after {estimate.iterations} iterations")
        return estimate.value

    def adjointness_test(self, u: torch.Tensor, num_samples: int = 1, **kwargs) -> torch.Tensor:
        r"""Relative error of :math:`\langle A u, v\rangle = \langle u, A^\top v\rangle`, sums over all ranks.

        The distributed counterpart of deepinv's ``adjointness_test`` (which sums over one rank only):
        :math:`\sqrt{E|\langle v, Au\rangle - \langle u, A^\top v\rangle|^2} / \sqrt{E|\langle v, Au\rangle|^2}`
        with standard normal :math:`u, v` drawn on every rank.

        :param torch.Tensor u: a tensor shaped like this rank's slab (one sample; values not used).
        :param int num_samples: number of random pairs.
        :param kwargs: passed to :meth:`A` and :meth:`A_adjoint` (e.g. ``filter``).
        :return: the same 0-d tensor on every rank, of the order of the dtype's precision.
        """
        u_in = torch.randn((num_samples,) + tuple(u.shape[1:]), dtype=u.dtype, device=u.device)
        Au = self.A(u_in, **kwargs)
        v = torch.randn_like(Au)
        Atv = self.A_adjoint(v, **kwargs)
        sums = torch.stack([(v * Au).reshape(num_samples, -1).sum(-1), (u_in * Atv).reshape(num_samples, -1).sum(-1)])
        s1, s2 = comm.all_reduce(sums, site="blur.adjointness")
        return ((s1 - s2).abs().pow(2).mean() / s1.abs().pow(2).mean()).sqrt()

    def _single_rank_only(self, method: str) -> None:
        if comm.world()[1] > 1:
            raise NotImplementedError(
                f"ShardedBlur.{method} on {comm.world()[1]} ranks: deepinv's least-squares solvers use per-rank "
                "inner products, which are wrong on a sharded signal; use a distributed solver"
            )

    def A_dagger(self, y: torch.Tensor, **kwargs) -> torch.Tensor:
        """deepinv's pseudo-inverse; on one rank only (see :class:`NotImplementedError` otherwise)."""
        self._single_rank_only("A_dagger")
        return super().A_dagger(y, **kwargs)

    def prox_l2(self, z: torch.Tensor, y: torch.Tensor, gamma, **kwargs) -> torch.Tensor:
        """deepinv's proximal operator of the L2 data term; on one rank only."""
        self._single_rank_only("prox_l2")
        return super().prox_l2(z, y, gamma, **kwargs)
