r"""The radio measurement operator: an image to the visibilities of a block of (u, v) points, by NUFFT.

An image ``img`` of :math:`N \times N` pixels of size :math:`\delta` (radians) holds the sky at
:math:`l_j = (j - \lfloor N/2 \rfloor)\,\delta` (towards east) and :math:`m_i = (i - \lfloor N/2 \rfloor)\,\delta`
(towards north). Its visibility at :math:`(u_k, v_k)` (wavelengths) is

.. math::

    V_k = (F x)_k = \sum_{i, j} \mathrm{img}[i, j]\; e^{+2\pi i\,(u_k l_j + v_k m_i)},

the sign of the Measurement Sets written by CASA and pyuvdata (:mod:`distinv.radio.ms`). The w-term
:math:`e^{2\pi i w (n - 1)}` is left out: the **small-field approximation**, valid while
:math:`\pi |w|_{\max} (l^2 + m^2)_{\max} \ll 1` over the image (at 1.3 GHz, MeerKAT's 7.7 km and a 0.5° field:
about 0.3 rad at the field's corner). Unnormalised, a unit source at the phase centre gives :math:`V_k = 1`.

**Natural weighting** enters as :math:`\sqrt{w}` on both sides: :math:`A = \mathrm{diag}(\sqrt{w})\,F`, the
measurements are :math:`y = \sqrt{w} \odot V` (:meth:`RadioNUFFT.weigh`), so that
:math:`\tfrac12\|Ax - y\|^2 = \tfrac12\sum_k w_k |(Fx)_k - V_k|^2` and :math:`A^H y = F^H W V`. The dirty
image is :math:`\mathrm{Re}(F^H W V) / \sum_k w_k` (:meth:`RadioNUFFT.dirty`), which peaks at the flux of an
unresolved source at the phase centre. Images are real: :meth:`~RadioNUFFT.A_adjoint` returns
:math:`\mathrm{Re}(A^H y)`, the adjoint for the real inner product :math:`\mathrm{Re}\langle\cdot,\cdot\rangle`
(``real_projection=False`` keeps the complex :math:`A^H y`).

Backends:

- ``"finufft"`` (default): FINUFFT's type 2 (uniform → non-uniform) for :math:`A` and type 1 for
  :math:`A^H`, at relative tolerance ``eps``, with as many threads as torch uses; points
  :math:`(2\pi v \delta, 2\pi u \delta)` on the (row, column) axes, sign :math:`+1` forward. CPU tensors;
  single or double precision follows the input. Plans are made once per (type, batch, precision, threads).
- ``"deepinv"``: deepinv's :class:`~deepinv.physics.RadioInterferometry` (torchkbnufft, 7-point
  Kaiser-Bessel, oversampling 2, complex64), the reference. Its ``norm="ortho"`` divides by the
  oversampled grid size :math:`\sqrt{2N \cdot 2N} = 2N`, multiplied back here; its frequencies are
  :math:`\omega = (-2\pi v\delta, -2\pi u\delta)`.
- ``"cufinufft"``: FINUFFT's GPU library on CUDA tensors, the same transforms as ``"finufft"`` (for the GPU
  check; it needs the ``cufinufft`` wheel and a GPU, so the CPU tests do not exercise it).

``"finufft"`` and ``"deepinv"`` are checked against :func:`direct_dft` (tests), and are differentiable.

>>> import torch
>>> uv = torch.tensor([[0.0, 0.0], [120.0, -40.0]])
>>> physics = RadioNUFFT(uv, npix=16, cell_rad=1e-3)
>>> x = torch.zeros(1, 1, 16, 16, dtype=torch.float64); x[0, 0, 8, 8] = 2.0  # 2 Jy at the phase centre
>>> [round(v, 6) for v in physics.A(x).abs().flatten().tolist()]
[2.0, 2.0]
>>> round(float(physics.dirty(physics.A(x))[0, 0, 8, 8]), 6)
2.0
"""

from __future__ import annotations

import math

import numpy as np
import torch
from deepinv.physics import LinearPhysics

__all__ = ["BACKENDS", "RadioNUFFT", "check_cell", "direct_dft", "direct_dft_adjoint", "max_cell_rad"]

BACKENDS = ("finufft", "deepinv", "cufinufft")
_ARCSEC = math.pi / (180 * 3600)


def max_cell_rad(uv_max: float) -> float:
    r"""Largest pixel size (radians) that samples a maximum :math:`|u|, |v|` of ``uv_max`` wavelengths without
    aliasing: :math:`1 / (2\,uv_{\max})` (Nyquist).

    >>> max_cell_rad(1000.0)
    0.0005
    """
    return math.inf if uv_max <= 0 else 1.0 / (2.0 * uv_max)


def check_cell(cell_rad: float, uv_max: float) -> None:
    """Raise when pixels of ``cell_rad`` radians are too large for the longest baseline (aliasing).

    :param float cell_rad: pixel size in radians, ``> 0``.
    :param float uv_max: the largest ``|u|`` or ``|v|`` in wavelengths.
    :raises ValueError: ``cell_rad > 1 / (2 uv_max)``, with both numbers in arcseconds.
    """
    if not (isinstance(cell_rad, (int, float)) and math.isfinite(cell_rad) and cell_rad > 0):
        raise ValueError(f"cell must be a positive finite size, got {cell_rad!r} rad")
    limit = max_cell_rad(uv_max)
    if cell_rad > limit:
        raise ValueError(
            f"cell={cell_rad / _ARCSEC:.4g} arcsec is too large for the longest baseline: max |u|, |v| = "
            f"{uv_max:.6g} wavelengths needs cell <= 1/(2 max|u|) = {limit / _ARCSEC:.4g} arcsec, "
            "otherwise the image aliases (use a smaller cell, and more pixels to keep the field)")


def _pixel_offsets(npix: int, cell_rad: float, dtype: torch.dtype, device) -> torch.Tensor:
    return (torch.arange(npix, dtype=dtype, device=device) - npix // 2) * cell_rad


def direct_dft(image: torch.Tensor, uv: torch.Tensor, cell_rad: float) -> torch.Tensor:
    r"""The measurement equation summed directly:
    :math:`V_k = \sum_{i,j} \mathrm{img}[i,j]\,e^{2\pi i(u_k l_j + v_k m_i)}`.

    ``O(K N²)`` time and memory: small cases only (tests).

    :param torch.Tensor image: ``(..., N, N)`` real or complex.
    :param torch.Tensor uv: ``(K, 2)`` (u, v) in wavelengths.
    :param float cell_rad: pixel size in radians.
    :return: ``(..., K)`` complex.
    """
    npix = image.shape[-1]
    real = torch.float64 if image.dtype in (torch.float64, torch.complex128) else torch.float32
    offsets = _pixel_offsets(npix, cell_rad, real, image.device)
    uv = uv.to(real)
    phase_l = torch.exp(2j * math.pi * uv[:, 0, None] * offsets[None, :])  # (K, N) over columns j
    phase_m = torch.exp(2j * math.pi * uv[:, 1, None] * offsets[None, :])  # (K, N) over rows i
    return torch.einsum("...ij,ki,kj->...k", image.to(phase_l.dtype), phase_m, phase_l)


def direct_dft_adjoint(vis: torch.Tensor, uv: torch.Tensor, npix: int, cell_rad: float) -> torch.Tensor:
    r""":math:`F^H V`: :math:`\sum_k V_k e^{-2\pi i(u_k l_j + v_k m_i)}` on the ``(N, N)`` grid (complex)."""
    real = torch.float64 if vis.dtype == torch.complex128 else torch.float32
    offsets = _pixel_offsets(npix, cell_rad, real, vis.device)
    uv = uv.to(real)
    phase_l = torch.exp(-2j * math.pi * uv[:, 0, None] * offsets[None, :])
    phase_m = torch.exp(-2j * math.pi * uv[:, 1, None] * offsets[None, :])
    return torch.einsum("...k,ki,kj->...ij", vis, phase_m, phase_l)


# --------------------------------------------------------------------------- finufft kernels


class _FinufftPlans:
    """FINUFFT plans of one point set, made on first use per (type, batch, precision, threads)."""

    def __init__(self, rows: np.ndarray, cols: np.ndarray, npix: int, eps: float):
        self.points = {np.float64: (rows, cols), np.float32: (rows.astype(np.float32), cols.astype(np.float32))}
        self.npix, self.eps, self._plans = npix, eps, {}

    def __getstate__(self) -> dict:  # copies and pickles drop the plans (C objects); they are made again
        return {**self.__dict__, "_plans": {}}

    def plan(self, nufft_type: int, n_trans: int, real: type):
        import finufft

        threads = torch.get_num_threads()
        key = (nufft_type, n_trans, real, threads)
        if key not in self._plans:
            complex_dtype = "complex128" if real is np.float64 else "complex64"
            eps = max(self.eps, 1e-6) if real is np.float32 else self.eps
            plan = finufft.Plan(nufft_type, (self.npix, self.npix), n_trans=n_trans, eps=eps,
                                isign=1 if nufft_type == 2 else -1, dtype=complex_dtype, nthreads=threads)
            plan.setpts(*self.points[real])
            self._plans[key] = plan
        return self._plans[key]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``(..., N, N)`` complex → ``(..., K)`` complex (type 2)."""
        batch = image.shape[:-2]
        flat = image.detach().reshape(-1, self.npix, self.npix).contiguous().numpy()
        real = np.float64 if flat.dtype == np.complex128 else np.float32
        out = self.plan(2, flat.shape[0], real).execute(flat)
        return torch.from_numpy(np.ascontiguousarray(out)).reshape(*batch, -1)

    def adjoint(self, vis: torch.Tensor) -> torch.Tensor:
        """``(..., K)`` complex → ``(..., N, N)`` complex (type 1)."""
        batch = vis.shape[:-1]
        flat = vis.detach().reshape(-1, vis.shape[-1]).contiguous().numpy()
        real = np.float64 if flat.dtype == np.complex128 else np.float32
        out = self.plan(1, flat.shape[0], real).execute(flat)
        return torch.from_numpy(np.ascontiguousarray(out)).reshape(*batch, self.npix, self.npix)


class _CufinufftPlans:
    """cufinufft plans of one point set on a GPU (torch CUDA tensors in and out), made on first use.

    The same interface as :class:`_FinufftPlans`; used by ``backend="cufinufft"`` (the GPU check). Not tested
    here (no GPU on the CPU machines): ``distinv.bench.studies.radio.gpu_operator_check`` records a failure and
    falls back to deepinv's torchkbnufft.
    """

    def __init__(self, rows: np.ndarray, cols: np.ndarray, npix: int, eps: float, device: torch.device):
        self.points = {torch.float64: (torch.from_numpy(rows).to(device), torch.from_numpy(cols).to(device))}
        self.points[torch.float32] = tuple(p.float() for p in self.points[torch.float64])
        self.npix, self.eps, self.device, self._plans = npix, eps, device, {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_plans": {}}

    def plan(self, nufft_type: int, n_trans: int, real: torch.dtype):
        import cufinufft

        key = (nufft_type, n_trans, real)
        if key not in self._plans:
            eps = max(self.eps, 1e-6) if real == torch.float32 else self.eps
            plan = cufinufft.Plan(nufft_type, (self.npix, self.npix), n_trans=n_trans, eps=eps,
                                  isign=1 if nufft_type == 2 else -1,
                                  dtype="complex128" if real == torch.float64 else "complex64")
            plan.setpts(*self.points[real])
            self._plans[key] = plan
        return self._plans[key]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        batch = image.shape[:-2]
        flat = image.detach().reshape(-1, self.npix, self.npix).contiguous()
        real = torch.float64 if flat.dtype == torch.complex128 else torch.float32
        data = flat[0] if flat.shape[0] == 1 else flat
        out = torch.as_tensor(self.plan(2, flat.shape[0], real).execute(data), device=image.device)
        return out.reshape(*batch, -1)

    def adjoint(self, vis: torch.Tensor) -> torch.Tensor:
        batch = vis.shape[:-1]
        flat = vis.detach().reshape(-1, vis.shape[-1]).contiguous()
        real = torch.float64 if flat.dtype == torch.complex128 else torch.float32
        data = flat[0] if flat.shape[0] == 1 else flat
        out = torch.as_tensor(self.plan(1, flat.shape[0], real).execute(data), device=vis.device)
        return out.reshape(*batch, self.npix, self.npix)


class _Forward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, image, plans):
        ctx.plans = plans
        return plans.forward(image)

    @staticmethod
    def backward(ctx, grad):
        return _Adjoint.apply(grad, ctx.plans), None


class _Adjoint(torch.autograd.Function):
    @staticmethod
    def forward(ctx, vis, plans):
        ctx.plans = plans
        return plans.adjoint(vis)

    @staticmethod
    def backward(ctx, grad):
        return _Forward.apply(grad, ctx.plans), None


# --------------------------------------------------------------------------- the physics


class RadioNUFFT(LinearPhysics):
    r"""Visibilities of an image at a block of (u, v) points, naturally weighted: :math:`A = \mathrm{diag}(\sqrt{w}) F`.

    See the module notes for :math:`F`, the sign, the small-field approximation, the weighting and the
    backends. Images are ``(B, C, N, N)`` (real, or complex with ``real_projection=False``);
    measurements ``(B, C, K)`` complex. One block per rank gives :math:`A^H y = \sum_r A_r^H y_r`
    (one all-reduce of an image).

    :param uv: ``(K, 2)`` (u, v) in wavelengths (tensor or array).
    :param int npix: image side ``N``.
    :param float cell_rad: pixel size in radians; must satisfy :func:`check_cell`.
    :param weights: ``(K,)`` natural weights ``w_k > 0`` (inverse variances); ``None`` = all 1.
    :param str backend: ``"finufft"`` or ``"deepinv"``.
    :param float eps: FINUFFT's relative tolerance (``>= 1e-6`` is used in single precision).
    :param bool real_projection: :meth:`A_adjoint` returns the real part (images are real).
    :param device: ``"cpu"`` (finufft); deepinv's backend also runs on CUDA.
    :param bool check_aliasing: refuse a cell too large for these points (:func:`check_cell`); a caller
        that splits the points over ranks checks the longest baseline of all of them instead.
    """

    def __init__(self, uv, npix: int, cell_rad: float, weights=None, backend: str = "finufft", eps: float = 1e-6,
                 real_projection: bool = True, device: torch.device | str = "cpu", check_aliasing: bool = True,
                 **kwargs):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if backend == "finufft" and torch.device(device).type != "cpu":
            raise ValueError(f"backend='finufft' runs on CPU tensors, got device={device!r}; use backend='deepinv'")
        if backend == "cufinufft" and torch.device(device).type != "cuda":
            raise ValueError(f"backend='cufinufft' runs on CUDA tensors, got device={device!r}; use backend='finufft'")
        super().__init__(device=device, **kwargs)
        if isinstance(npix, bool) or not isinstance(npix, (int, np.integer)) or npix < 2:
            raise ValueError(f"npix must be an integer >= 2, got {npix!r}")
        if not (isinstance(eps, float) and 0 < eps < 1):
            raise ValueError(f"eps must be a float in (0, 1), got {eps!r}")
        uv = torch.as_tensor(uv, dtype=torch.float64).detach().cpu()
        if uv.ndim != 2 or uv.shape[1] != 2 or uv.shape[0] == 0:
            raise ValueError(f"uv must have shape (K, 2) with K >= 1, got {tuple(uv.shape)}")
        if not torch.isfinite(uv).all():
            raise ValueError("uv holds non-finite coordinates")
        uv_max = float(uv.abs().max())
        if check_aliasing:
            check_cell(float(cell_rad), uv_max)
        elif not (isinstance(cell_rad, (int, float)) and math.isfinite(cell_rad) and cell_rad > 0):
            raise ValueError(f"cell must be a positive finite size, got {cell_rad!r} rad")
        if weights is None:
            weights = torch.ones(uv.shape[0], dtype=torch.float64)
        weights = torch.as_tensor(weights, dtype=torch.float64).detach().cpu()
        if weights.shape != (uv.shape[0],):
            raise ValueError(f"weights must have shape ({uv.shape[0]},) like uv's first axis, "
                             f"got {tuple(weights.shape)}")
        if not bool((weights > 0).all()) or not bool(torch.isfinite(weights).all()):
            raise ValueError("weights must be finite and > 0 (drop flagged samples before building the operator)")
        self.npix, self.cell_rad, self.backend, self.eps = int(npix), float(cell_rad), backend, eps
        self.real_projection = real_projection
        self.img_size = (1, self.npix, self.npix)
        self.register_buffer("uv", uv.to(device))
        self.register_buffer("sqrt_weights", weights.sqrt().to(device))
        self.sum_weights = float(weights.sum())
        rows = (2 * math.pi * self.cell_rad * uv[:, 1]).numpy()
        cols = (2 * math.pi * self.cell_rad * uv[:, 0]).numpy()
        if backend == "finufft":
            self._plans = _FinufftPlans(rows, cols, self.npix, eps)
        elif backend == "cufinufft":
            self._plans = _CufinufftPlans(rows, cols, self.npix, eps, torch.device(device))
        else:
            from deepinv.physics import RadioInterferometry

            omega = torch.stack([-torch.from_numpy(rows), -torch.from_numpy(cols)]).to(torch.float32)
            self._reference = RadioInterferometry(img_size=(self.npix, self.npix), samples_loc=omega.to(device),
                                                  dataWeight=torch.ones(1, device=device),
                                                  real_projection=False, device=device)
            self._grid_scale = math.sqrt(math.prod(self._reference.grid_size))

    @property
    def n_visibilities(self) -> int:
        """Number of (u, v) points ``K``."""
        return int(self.uv.shape[0])

    def _complex(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_complex():
            return x
        return x.to(torch.complex128 if x.dtype == torch.float64 else torch.complex64)

    def _fourier(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`F x` (unweighted)."""
        x = self._complex(x)
        if self.backend in ("finufft", "cufinufft"):
            return _Forward.apply(x, self._plans)
        return (self._reference.A(x) * self._grid_scale).to(x.dtype)

    def _fourier_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """:math:`F^H y` (unweighted, complex)."""
        if self.backend in ("finufft", "cufinufft"):
            return _Adjoint.apply(y, self._plans)
        return (self._reference.A_adjoint(y.to(torch.complex64)) * self._grid_scale).to(y.dtype)

    def A(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        r""":math:`\sqrt{w} \odot F x`: ``(B, C, N, N)`` → ``(B, C, K)`` complex."""
        y = self._fourier(x)
        return y * self.sqrt_weights.to(y.real.dtype)

    def A_adjoint(self, y: torch.Tensor, **kwargs) -> torch.Tensor:
        r""":math:`\mathrm{Re}\,F^H(\sqrt{w} \odot y)` (complex without the real projection):
        ``(B, C, K)`` → ``(B, C, N, N)``."""
        y = self._complex(y)
        image = self._fourier_adjoint(y * self.sqrt_weights.to(y.real.dtype))
        return image.real if self.real_projection else image

    def weigh(self, vis: torch.Tensor) -> torch.Tensor:
        r"""Measurements from visibilities: :math:`y = \sqrt{w} \odot V`."""
        vis = self._complex(torch.as_tensor(vis))
        return vis * self.sqrt_weights.to(vis.real.dtype)

    def dirty(self, y: torch.Tensor) -> torch.Tensor:
        r"""The dirty image :math:`\mathrm{Re}(A^H y) / \sum_k w_k` (a unit source at the phase centre peaks at 1)."""
        image = self._fourier_adjoint(self._complex(y) * self.sqrt_weights.to(y.real.dtype))
        return image.real / self.sum_weights
