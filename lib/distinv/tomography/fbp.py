r"""Filtered back-projection (FBP) for :class:`~distinv.tomography.projector.ParallelBeamProjector`.

The inversion formula of the parallel-beam transform, discretised on :math:`V` views and unit detector
cells:

.. math::

    \mathrm{FBP}(y) = \frac{\pi}{V}\, A^\top (h \ast y), \qquad
    \widehat h(f) = |f|\, w(f),\ f \in [-\tfrac12, \tfrac12] \text{ cycles per cell},

where :math:`h \ast y` filters every view of every slice along the detector axis, :math:`A^\top` is the
projector's exact transpose, and :math:`w` the apodisation window: ``"ram-lak"`` :math:`w = 1`,
``"shepp-logan"`` :math:`w(f) = \operatorname{sinc}(f) = \sin(\pi f)/(\pi f)`, ``"hann"``
:math:`w(f) = \tfrac12 + \tfrac12\cos(2\pi f)`. The ramp is the band-limited one of Kak & Slaney
(ch. 3, eq. 61): the spatial kernel :math:`h_0 = 1/4`, :math:`h_n = -1/(\pi n)^2` for odd :math:`n`, 0 for
even :math:`n`, transformed on the padded length (this samples :math:`|f|` without setting the mean to
zero, so a flat region keeps its value). The convolution is a product of FFTs on rows zero-padded to a
power of two :math:`\ge 2D` (no wrap-around between the two ends of the detector).

**Against ASTRA.** These are ASTRA's own conventions (2.5, CPU ``FBP`` algorithm): on one 64² slice,
90 views, a textured disk, ours and ASTRA's agree to a relative 2.3e-6 for all three filters (float32
rounding). A plain frequency-sampled ramp :math:`|k|/L` (zero at :math:`f = 0`) differs from them by
1.7 % and reconstructs the disk's mean 1 % too low.

**Scale and view subsets.** The factor :math:`\pi / V` uses the **global** view count ``geometry.views``
even when the projector holds a subset of the views: every view is filtered on its own, so for view
groups :math:`A_k` that partition the views,

.. math::

    \sum_k \mathrm{FBP}_k(y_k) = \frac{\pi}{V} \sum_k A_k^\top (h \ast y_k) = \mathrm{FBP}(y),

which is how ranks compute the FBP with one all-reduce. The factor is exact for arcs of 180° and 360°
(every line measured once or twice); for other arcs it is the usual approximation.

>>> import torch
>>> from distinv.tomography.geometry import ParallelBeamGeometry
>>> from distinv.tomography.projector import ParallelBeamProjector
>>> physics = ParallelBeamProjector(ParallelBeamGeometry(size=32, views=64))
>>> x = torch.zeros(1, 1, 1, 32, 32)
>>> x[..., 8:24, 8:24] = 1.0
>>> round(filtered_back_projection(physics.A(x), physics)[..., 12:20, 12:20].mean().item(), 2)
1.0
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

__all__ = ["filtered_back_projection", "ramp_filter", "filter_response", "FILTERS"]

FILTERS = ("ram-lak", "shepp-logan", "hann")


def _padded_length(detectors: int) -> int:
    return 1 << max(1, math.ceil(math.log2(2 * detectors)))


@lru_cache(maxsize=32)
def _response(length: int, filter: str) -> np.ndarray:
    n = np.arange(length // 2 + 1)
    kernel = np.zeros(length)
    odd = np.arange(1, length // 2 + 1, 2)
    kernel[0] = 0.25
    kernel[odd] = kernel[-odd] = -1.0 / (np.pi * odd) ** 2
    response = np.fft.rfft(kernel).real  # the kernel is even: its transform is real
    f = n / length  # cycles per detector cell, in [0, 1/2]
    if filter == "shepp-logan":
        response = response * np.sinc(f)
    elif filter == "hann":
        response = response * (0.5 + 0.5 * np.cos(2 * np.pi * f))
    return response


def filter_response(detectors: int, filter: str = "ram-lak") -> np.ndarray:
    r"""The filter :math:`\widehat h` on the non-negative frequencies of the padded detector axis.

    :param int detectors: detector cells :math:`D`; rows are padded to the power of two :math:`L \ge 2D`.
    :param str filter: one of :data:`FILTERS`.
    :return: float64 array of length :math:`L/2 + 1` (frequency :math:`k / L`, :math:`k = 0 \dots L/2`);
        cached: do not modify it.

    >>> response = filter_response(24)
    >>> len(response), round(float(response[16]), 4)  # |f| at f = 16/64
    (33, 0.25)
    >>> bool(0 < response[0] < 0.01)  # not zero at f = 0: flat regions keep their level
    True
    """
    if filter not in FILTERS:
        raise ValueError(f"filter must be one of {FILTERS}, got {filter!r}")
    if not isinstance(detectors, int) or isinstance(detectors, bool) or detectors < 1:
        raise ValueError(f"detectors must be an integer >= 1, got {detectors!r}")
    return _response(_padded_length(detectors), filter)


def ramp_filter(sinogram: torch.Tensor, filter: str = "ram-lak") -> torch.Tensor:
    r"""Filter every detector row: :math:`h \ast y` along the last axis (zero-padded FFT convolution).

    :param torch.Tensor sinogram: ``(..., detectors)``, real.
    :param str filter: one of :data:`FILTERS`.
    :return: the filtered rows, same shape and dtype.

    >>> row = torch.zeros(1, 9, dtype=torch.float64)
    >>> row[0, 4] = 1.0  # a unit impulse gives the kernel: 1/4 at the centre, -1/(pi n)^2 at odd n
    >>> [round(v, 4) + 0.0 for v in ramp_filter(row)[0, 2:7].tolist()]
    [0.0, -0.1013, 0.25, -0.1013, 0.0]
    """
    if not isinstance(sinogram, torch.Tensor):
        raise TypeError(f"sinogram must be a torch.Tensor, got {type(sinogram).__name__}")
    detectors = sinogram.shape[-1]
    response = torch.tensor(filter_response(detectors, filter), dtype=sinogram.dtype, device=sinogram.device)
    length = _padded_length(detectors)
    spectrum = torch.fft.rfft(sinogram, n=length, dim=-1)
    return torch.fft.irfft(spectrum * response, n=length, dim=-1)[..., :detectors]


def filtered_back_projection(sinogram: torch.Tensor, projector, filter: str = "ram-lak") -> torch.Tensor:
    r"""The FBP :math:`\frac{\pi}{V} A^\top (h \ast y)` of the projector's views, scaled by the global view count.

    :param torch.Tensor sinogram: measurement ``(B, C, Z, len(projector.views), detectors)``.
    :param ParallelBeamProjector projector: its :meth:`A_adjoint` back-projects; ``projector.geometry.views``
        is the global :math:`V`.
    :param str filter: one of :data:`FILTERS`.
    :return: ``(B, C, Z, N, N)``; summed over view groups that partition the views, the FBP of all views.
    """
    if filter not in FILTERS:
        raise ValueError(f"filter must be one of {FILTERS}, got {filter!r}")
    geometry = getattr(projector, "geometry", None)
    if geometry is None or not hasattr(projector, "A_adjoint"):
        raise TypeError(f"projector must be a ParallelBeamProjector, got {type(projector).__name__}")
    if not isinstance(sinogram, torch.Tensor):
        raise TypeError(f"sinogram must be a torch.Tensor, got {type(sinogram).__name__}")
    if sinogram.shape[-1] != geometry.detectors:
        raise ValueError(f"sinogram must have {geometry.detectors} detector cells on its last axis, "
                         f"got shape {tuple(sinogram.shape)}")
    return projector.A_adjoint(ramp_filter(sinogram, filter)) * (math.pi / geometry.views)
