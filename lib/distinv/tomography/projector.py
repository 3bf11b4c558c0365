r"""The parallel-beam projector of the CT chapter: one sparse matrix, applied to every slice at once.

For parallel beam turned about :math:`z`, the volume operator is the same 2D operator on every slice,

.. math::

    (A x)_{z} = M\, x_{z}, \qquad (A^\top y)_{z} = M^\top y_{z},

with :math:`x_z \in \mathbb R^{N^2}` slice :math:`z` (row-major) and :math:`M \in \mathbb R^{(V D) \times N^2}`
the ray-pixel weights of the :math:`V` views and :math:`D` detector cells (rows view-major, then detector).
Stacking the slices as the columns of :math:`X \in \mathbb R^{N^2 \times Z}`, :math:`A` is one sparse-dense
product :math:`M X` and :math:`A^\top` is :math:`M^\top Y`. Because the operator acts slice by slice, the
same object serves a whole volume or any z-slab of it.

:math:`M` comes from ASTRA's 2D CPU ``linear`` projector (Joseph's method: along each ray, linear
interpolation between the two nearest pixel centres of every pixel row or column it crosses). It is the
discretisation of ASTRA's GPU projectors, the cone-beam path of this package, so both paths of the
chapter use one model. ``strip`` (area weights) has 1.8× more non-zeros, hence 1.8× slower products,
and ``line`` (intersection lengths) 0.7× as many (measured 3.13 M, 1.77 M and 1.25 M non-zeros for
strip, linear and line at 128²/60 views). The matrix is built once per (geometry,
views) in a process (:func:`projection_matrix` is cached), 5–11 s at 256²/180 views, and it is
**exactly** the transpose pair: :math:`A^\top` applies the stored :math:`M^\top` (a second CSR matrix:
a product with a transposed CSR is several times slower).

**Backends** (``backend=``): ``"torch"`` (torch sparse CSR times dense, CPU and CUDA; the CSR shares
scipy's int32 index arrays), ``"scipy"`` (scipy CSR, CPU only, one thread) and ``"matrix-free"``
(:mod:`distinv.tomography.joseph`: the same weights recomputed view by view at every product, nothing
stored, so a rank's memory falls with its slab; slower, see that module). Median wall times of
:math:`A` / :math:`A^\top` on the whole volume, 180 views, float32, 3 or 5 interleaved rounds of 5 runs,
printed by ``OMP_NUM_THREADS=T python -m distinv.tomography.speed --size N --views 180 --repeats 5
--rounds R --threads T --backends torch scipy`` (add ``--skip-deepinv`` to time the sparse backends only)
on this project's 2-core machine (torch 2.14, scipy 1.17), which other jobs kept at a load average of
7–18 during every run (absolute times are inflated 3–4×; the interleaved rounds keep the comparison fair):

=========  ================  ================  ==========================
size       torch             scipy             paired scipy / torch
=========  ================  ================  ==========================
128³, T=2  1.42 s / 0.97 s   1.26 s / 1.17 s   —
128³, T=1  0.29 s / 0.20 s   0.46 s / 0.41 s   A 1.32, Aᵀ 2.01
256³, T=2  8.14 s / 5.28 s   6.05 s / 5.24 s   —
256³, T=1  5.29 s / 4.30 s   4.73 s / 5.02 s   A 0.78, Aᵀ 1.19
=========  ================  ================  ==========================

(M and Mᵀ: 5.3 M non-zeros at 128², 21.2 M and 325 MB at 256²; a second torch thread did not help on
cores that other jobs held.) Neither backend wins everywhere; ``"torch"`` is the default
(:data:`DEFAULT_BACKEND`): per thread it was faster at 128³ and for Aᵀ at 256³, and it is the one that runs
on CUDA too. Both are more than 10× faster than deepinv's torch ``Tomography`` at 256³
(:mod:`distinv.tomography.speed`).

>>> import torch
>>> from distinv.tomography.geometry import ParallelBeamGeometry
>>> physics = ParallelBeamProjector(ParallelBeamGeometry(size=16, views=8))
>>> physics.A(torch.ones(1, 1, 3, 16, 16)).shape
torch.Size([1, 1, 3, 8, 24])
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np
import scipy.sparse as sp
import torch
from deepinv.physics import LinearPhysics

from distinv.tomography.geometry import ParallelBeamGeometry

__all__ = ["ParallelBeamProjector", "projection_matrix", "build_projection_matrix", "normalize_views", "BACKENDS",
           "DEFAULT_BACKEND", "ASTRA_PROJECTOR"]

BACKENDS = ("torch", "scipy", "matrix-free")
DEFAULT_BACKEND = "torch"
#: ASTRA's 2D CPU projector type (see the module notes).
ASTRA_PROJECTOR = "linear"


def normalize_views(geometry: ParallelBeamGeometry, views: Sequence[int] | None) -> tuple[int, ...]:
    """The view indexes as a tuple of distinct integers in ``[0, geometry.views)``; ``None`` means all.

    :param ParallelBeamGeometry geometry: the scan.
    :param views: indexes of the views, in the order of the measurement rows; ``None`` for all views.
    :return: a tuple (a cache key).

    >>> normalize_views(ParallelBeamGeometry(size=16, views=4), None)
    (0, 1, 2, 3)
    """
    if not isinstance(geometry, ParallelBeamGeometry):
        raise TypeError(f"geometry must be a ParallelBeamGeometry, got {type(geometry).__name__}")
    if views is None:
        return tuple(range(geometry.views))
    if isinstance(views, (str, bytes)) or not isinstance(views, (Sequence, np.ndarray, range)):
        raise TypeError(f"views must be a sequence of view indexes or None, got {type(views).__name__}")
    indexes = []
    for view in views:
        if not isinstance(view, (int, np.integer)) or isinstance(view, bool):
            raise TypeError(f"views must hold integers, got {view!r} ({type(view).__name__})")
        if not 0 <= view < geometry.views:
            raise ValueError(f"views must be indexes in [0, {geometry.views}) for views={geometry.views}, "
                             f"got {int(view)}")
        indexes.append(int(view))
    if not indexes:
        raise ValueError("views must hold at least one view index, got an empty sequence")
    if len(set(indexes)) != len(indexes):
        raise ValueError(f"views must be distinct, got {indexes}")
    return tuple(indexes)


def build_projection_matrix(geometry: ParallelBeamGeometry, views: Sequence[int] | None = None) -> sp.csr_matrix:
    """:func:`projection_matrix` built afresh and not kept (for one-off uses such as the norm).

    :param ParallelBeamGeometry geometry: the scan.
    :param views: view indexes (``None``: all views).
    :return: ``scipy.sparse.csr_matrix``, float32, sorted column indexes.
    """
    import astra

    views = normalize_views(geometry, views)
    volume = astra.create_vol_geom(geometry.size, geometry.size)
    scan = astra.create_proj_geom("parallel", 1.0, geometry.detectors, geometry.angles()[list(views)])
    projector = astra.create_projector(ASTRA_PROJECTOR, scan, volume)
    try:
        matrix_id = astra.projector.matrix(projector)
        try:
            matrix = astra.matrix.get(matrix_id)
        finally:
            astra.matrix.delete(matrix_id)
    finally:
        astra.projector.delete(projector)
    # ASTRA computes the weights in float32 (returned as float64): float32 storage loses nothing
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    matrix.sum_duplicates()  # sorted, unique column indexes per row (torch's CSR invariant)
    return matrix


@lru_cache(maxsize=16)
def _cached_matrix(geometry: ParallelBeamGeometry, views: tuple[int, ...]) -> sp.csr_matrix:
    return build_projection_matrix(geometry, views)


@lru_cache(maxsize=16)
def _cached_transpose(geometry: ParallelBeamGeometry, views: tuple[int, ...]) -> sp.csr_matrix:
    transpose = _cached_matrix(geometry, views).T.tocsr()
    transpose.sum_duplicates()
    return transpose


def projection_matrix(geometry: ParallelBeamGeometry, views: Sequence[int] | None = None,
                      transpose: bool = False) -> sp.csr_matrix:
    r"""The ray-pixel weights :math:`M` of one slice for the given views (scipy CSR, float32; cached).

    Rows are ordered view-major (in the order of ``views``), then detector cell; columns are the pixels
    of a slice in row-major order. Pixels and detector cells have width 1. The result is cached per
    ``(geometry, views)`` in the process (every iteration of a solver reuses it): do not modify it.

    :param ParallelBeamGeometry geometry: the scan.
    :param views: view indexes (``None``: all views).
    :param bool transpose: return :math:`M^\top` as a CSR matrix instead (cached too).
    :return: ``scipy.sparse.csr_matrix`` of shape ``(len(views) * detectors, size**2)`` (or its transpose).

    >>> matrix = projection_matrix(ParallelBeamGeometry(size=16, views=8), views=[0, 4])
    >>> matrix.shape, matrix.dtype.name
    ((48, 256), 'float32')
    """
    key = normalize_views(geometry, views)
    return _cached_transpose(geometry, key) if transpose else _cached_matrix(geometry, key)


def _torch_csr(matrix: sp.csr_matrix, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A torch CSR tensor with the matrix's values (no copy on CPU in float32)."""
    values = torch.from_numpy(matrix.data).to(dtype)  # shares the cached array: torch only reads it
    with warnings.catch_warnings():  # "sparse CSR support is in beta" and "invariant checks are disabled"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(torch.from_numpy(matrix.indptr), torch.from_numpy(matrix.indices), values,
                                       size=matrix.shape, device=device)


class _LinearMap(torch.autograd.Function):
    """``rows -> apply(rows)`` for a linear ``apply``, whose gradient is ``apply_transpose``."""

    @staticmethod
    def forward(rows, apply, apply_transpose):
        return apply(rows)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.linear_map, ctx.transpose_map = inputs[1], inputs[2]  # (``ctx.apply`` is autograd's own)

    @staticmethod
    def backward(ctx, grad):
        return _LinearMap.apply(grad, ctx.transpose_map, ctx.linear_map), None, None


def _rebuild(kwargs: dict) -> ParallelBeamProjector:
    return ParallelBeamProjector(**kwargs)


class ParallelBeamProjector(LinearPhysics):
    r"""Parallel-beam projection of every slice of a volume (or of a z-slab of it), for a set of views.

    .. math::

        y_{b,c,z} = M\, x_{b,c,z}, \qquad (A^\top y)_{b,c,z} = M^\top y_{b,c,z},

    with :math:`M` = :func:`projection_matrix` of ``geometry`` and ``views``. Signal shape
    ``(B, C, Z, N, N)`` (``C = 1`` for a gray volume; any number ``Z`` of slices), measurement shape
    ``(B, C, Z, len(views), detectors)``. :meth:`A_adjoint` is the exact transpose of :meth:`A`; both
    are differentiable (the gradient of one is the other). Pixels and detector cells have width 1,
    so :math:`\|A\|^2` grows like :math:`N \cdot V`: use
    :func:`~distinv.tomography.norm.parallel_beam_sqnorm` for step sizes (the norm of the full scan,
    not of this view subset).

    Pickling or copying it rebuilds it from its arguments (the matrix comes from the process cache);
    the noise and sensor models are not carried (deepinv's hold lambdas, which do not pickle).

    :param ParallelBeamGeometry geometry: the scan.
    :param views: the view indexes of this operator (``None``: all views).
    :param torch.device, str device: where the matrices live (CPU or CUDA with ``backend="torch"``).
    :param torch.dtype dtype: ``torch.float32`` or ``torch.float64``; signals must have this dtype.
    :param str backend: ``"torch"``, ``"scipy"`` (CPU only) or ``"matrix-free"`` (no stored matrix, weights
        recomputed per product); ``None`` for :data:`DEFAULT_BACKEND`.
    :param kwargs: passed to :class:`deepinv.physics.LinearPhysics` (e.g. ``noise_model``).

    >>> import torch
    >>> from distinv.tomography.geometry import ParallelBeamGeometry
    >>> physics = ParallelBeamProjector(ParallelBeamGeometry(size=16, views=6), views=[1, 3], dtype=torch.float64)
    >>> x, y = torch.randn(2, 1, 4, 16, 16, dtype=torch.float64), torch.randn(2, 1, 4, 2, 24, dtype=torch.float64)
    >>> bool(torch.isclose((physics.A(x) * y).sum(), (x * physics.A_adjoint(y)).sum(), rtol=1e-12))
    True
    """

    def __init__(
        self,
        geometry: ParallelBeamGeometry,
        views: Sequence[int] | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        backend: str | None = None,
        **kwargs,
    ):
        views = normalize_views(geometry, views)
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        backend = DEFAULT_BACKEND if backend is None else backend
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS} or None, got {backend!r}")
        device = torch.device(device)
        if backend == "scipy" and device.type != "cpu":
            raise ValueError(f"backend='scipy' runs on the CPU only, got device={str(device)!r}; use backend='torch'")
        super().__init__(device=device, **kwargs)
        self.geometry = geometry
        self.views = views
        self.backend = backend
        self._dtype = dtype
        self._device = device
        self._init_kwargs = dict(kwargs)
        if backend == "matrix-free":  # the weights are recomputed view by view (distinv.tomography.joseph)
            self._angles = tuple(float(a) for a in geometry.angles()[list(views)])
            return
        matrix = projection_matrix(geometry, views)
        transpose = projection_matrix(geometry, views, transpose=True)
        if backend == "torch":
            self.register_buffer("_matrix", _torch_csr(matrix, dtype, device), persistent=False)
            self.register_buffer("_transpose", _torch_csr(transpose, dtype, device), persistent=False)
        else:
            numpy_dtype = np.float32 if dtype == torch.float32 else np.float64
            self._scipy = (matrix.astype(numpy_dtype, copy=False), transpose.astype(numpy_dtype, copy=False))

    # ------------------------------------------------------------------ shapes
    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the matrices (signals and measurements must have it)."""
        return self._matrix.dtype if self.backend == "torch" else self._dtype

    @property
    def measurement_size(self) -> tuple[int, int]:
        """``(len(views), detectors)``: the last two axes of a measurement."""
        return len(self.views), self.geometry.detectors

    def signal_shape(self, batch: int = 1, channels: int = 1, slices: int = 1) -> tuple[int, ...]:
        """The shape of a signal with these leading sizes."""
        return (batch, channels, slices) + self.geometry.signal_shape

    def measurement_shape(self, batch: int = 1, channels: int = 1, slices: int = 1) -> tuple[int, ...]:
        """The shape of a measurement with these leading sizes."""
        return (batch, channels, slices) + self.measurement_size

    def _check(self, name: str, t: torch.Tensor, last: tuple[int, int], what: str) -> None:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 5 or tuple(t.shape[-2:]) != last:
            raise ValueError(f"{name} must be a {what} of shape (B, C, Z, {last[0]}, {last[1]}), "
                             f"got shape {tuple(t.shape)}")
        if t.dtype != self.dtype:
            raise TypeError(f"{name} must have dtype {self.dtype} (the projector's), got {t.dtype}")

    # ------------------------------------------------------------------ products
    def _product(self, which: int) -> Callable[[torch.Tensor], torch.Tensor]:
        """``rows (S, n) -> rows @ Kᵀ (S, m)`` for K = M (which=0) or Mᵀ (which=1): K applied to every row."""
        if self.backend == "matrix-free":
            from distinv.tomography.joseph import back_project_rows, project_rows

            kernel = project_rows if which == 0 else back_project_rows
            size, detectors = self.geometry.size, self.geometry.detectors

            def apply(rows: torch.Tensor) -> torch.Tensor:
                return kernel(rows.T.contiguous(), self._angles, size, detectors).T.contiguous()
        elif self.backend == "torch":
            matrix = self._matrix if which == 0 else self._transpose

            def apply(rows: torch.Tensor) -> torch.Tensor:
                return (matrix @ rows.T.contiguous()).T.contiguous()
        else:
            matrix = self._scipy[which]

            def apply(rows: torch.Tensor) -> torch.Tensor:
                columns = np.ascontiguousarray(rows.detach().numpy().T)
                return torch.from_numpy(np.ascontiguousarray((matrix @ columns).T))
        return apply

    def _map_slices(self, t: torch.Tensor, which: int, out_last: tuple[int, int]) -> torch.Tensor:
        leading = t.shape[:3]
        rows = t.reshape(-1, t.shape[-2] * t.shape[-1])
        out = _LinearMap.apply(rows, self._product(which), self._product(1 - which))
        return out.reshape(*leading, *out_last)

    def A(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        r"""Project every slice: :math:`y_{b,c,z} = M x_{b,c,z}`.

        :param torch.Tensor x: signal ``(B, C, Z, N, N)``.
        :return: measurement ``(B, C, Z, len(views), detectors)``.
        """
        self._check("x", x, self.geometry.signal_shape, "signal")
        return self._map_slices(x, 0, self.measurement_size)

    def A_adjoint(self, y: torch.Tensor, **kwargs) -> torch.Tensor:
        r"""Back-project every slice: :math:`(A^\top y)_{b,c,z} = M^\top y_{b,c,z}` (the exact transpose).

        :param torch.Tensor y: measurement ``(B, C, Z, len(views), detectors)``.
        :return: signal ``(B, C, Z, N, N)``.
        """
        self._check("y", y, self.measurement_size, "measurement")
        return self._map_slices(y, 1, self.geometry.signal_shape)

    def __reduce__(self):
        device = self._matrix.device if self.backend == "torch" else self._device
        kwargs = {name: value for name, value in self._init_kwargs.items()
                  if name not in ("noise_model", "sensor_model")}  # deepinv's hold lambdas: not picklable
        kwargs.update(geometry=self.geometry, views=self.views, device=str(device), dtype=self.dtype,
                      backend=self.backend)
        return _rebuild, (kwargs,)

    def extra_repr(self) -> str:
        return (f"size={self.geometry.size}, views={len(self.views)} of {self.geometry.views}, "
                f"detectors={self.geometry.detectors}, backend={self.backend!r}, dtype={self.dtype}")
