r"""Quality of a radio image against the true sky: SNR and logSNR (dynamic range), as the radio literature reports.

- **SNR** (reconstruction signal-to-noise ratio, in dB), the figure of the SARA / uSARA / AIRI papers:

  .. math:: \mathrm{SNR}(x, \hat x) = 20\log_{10}\frac{\|x\|_2}{\|x - \hat x\|_2}.

- **logSNR**, the same on images mapped to a logarithmic scale, so that faint emission counts as much as
  the bright sources (the high dynamic range of radio images):

  .. math:: \mathrm{rlog}(z) = z_{\max}\,\log_a\!\Big(\frac{a}{z_{\max}}\,z + 1\Big), \qquad
            \mathrm{logSNR}(x, \hat x) = \mathrm{SNR}\big(\mathrm{rlog}(x), \mathrm{rlog}(\hat x)\big),

  with :math:`z` clipped at 0, :math:`z_{\max}` the maximum of each image, and :math:`a` the dynamic range
  of the sky (the ratio of its brightest to its faintest emission that should count): the definition of
  Terris, Dabbech, Tang & Wiaux (2023), "Image reconstruction algorithms in radio interferometry: from
  handcrafted to learned regularization denoisers", MNRAS 518, 604 (AIRI), also used for R2D2 (Aghabiglou
  et al. 2024; the ``to_log`` mapping of their code). A pixel at :math:`z_{\max}/a` maps to
  :math:`z_{\max}\log_a 2`, one at :math:`z_{\max}` to :math:`z_{\max}\log_a(a + 1) \approx z_{\max}`.

>>> x = torch.tensor([[1.0, 0.01], [0.001, 0.0]])
>>> round(snr(x, x + 0.01), 2), round(log_snr(x, x, 1e3), 1)
(33.98, inf)
>>> [round(v, 4) for v in rlog(x, 1e3).flatten().tolist()]
[1.0001, 0.3471, 0.1003, 0.0]
"""

from __future__ import annotations

import math

import torch

__all__ = ["snr", "rlog", "log_snr", "psnr_peak", "band_limited"]


def snr(x_true: torch.Tensor, x_hat: torch.Tensor) -> float:
    r""":math:`20\log_{10}(\|x\|/\|x - \hat x\|)` in dB (``inf`` when equal), sums in float64.

    :param torch.Tensor x_true: the true image :math:`x`.
    :param torch.Tensor x_hat: the estimate :math:`\hat x` (same shape).
    """
    if x_true.shape != x_hat.shape:
        raise ValueError(f"x_true and x_hat must have the same shape, got {tuple(x_true.shape)} and "
                         f"{tuple(x_hat.shape)}")
    signal = float(torch.linalg.vector_norm(x_true.double()))
    error = float(torch.linalg.vector_norm(x_true.double() - x_hat.double()))
    if error == 0:
        return math.inf
    if signal == 0:
        return -math.inf
    return 20.0 * math.log10(signal / error)


def rlog(z: torch.Tensor, a: float) -> torch.Tensor:
    r""":math:`z_{\max}\log_a(a z / z_{\max} + 1)` of ``z`` clipped at 0 (module notes); zeros stay zeros.

    :param torch.Tensor z: an image.
    :param float a: the dynamic range, ``> 1``.
    """
    if not (isinstance(a, (int, float)) and a > 1):
        raise ValueError(f"a (the dynamic range of the log map) must be a number > 1, got {a!r}")
    z = z.double().clamp_min(0.0)
    peak = float(z.max()) if z.numel() else 0.0
    if peak == 0:
        return torch.zeros_like(z)
    return peak * torch.log10(a * z / peak + 1.0) / math.log10(a)


def log_snr(x_true: torch.Tensor, x_hat: torch.Tensor, a: float) -> float:
    r""":math:`\mathrm{SNR}(\mathrm{rlog}(x), \mathrm{rlog}(\hat x))` in dB (module notes).

    :param torch.Tensor x_true: the true image.
    :param torch.Tensor x_hat: the estimate.
    :param float a: the dynamic range of the log map, ``> 1``.
    """
    return snr(rlog(x_true, a), rlog(x_hat, a))


def psnr_peak(x_true: torch.Tensor, x_hat: torch.Tensor) -> float:
    r"""PSNR with the true image's peak: :math:`20\log_{10}(\max|x| / \mathrm{RMSE})` in dB.

    >>> round(psnr_peak(torch.tensor([2.0, 0.0]), torch.tensor([2.0, 0.2])), 2)
    23.01
    """
    rmse = float(torch.sqrt(torch.mean((x_true.double() - x_hat.double()) ** 2)))
    peak = float(x_true.double().abs().max())
    if rmse == 0:
        return math.inf
    return 20.0 * math.log10(peak / rmse) if peak > 0 else -math.inf


def band_limited(image: torch.Tensor, cell_rad: float, uv_max: float) -> torch.Tensor:
    r"""``image`` with its Fourier components beyond :math:`\sqrt{u^2 + v^2} > uv_{\max}` removed (FFT, periodic).

    What an instrument whose longest baseline is ``uv_max`` wavelengths could at best recover without a prior:
    the SNR of the band-limited truth against the truth bounds what resolution alone allows.

    :param torch.Tensor image: ``(N, N)`` sky.
    :param float cell_rad: pixel size in radians.
    :param float uv_max: the longest baseline in wavelengths.

    >>> x = torch.zeros(16, 16); x[8, 8] = 1.0
    >>> float(band_limited(x, 1e-3, 1e6).sub(x).abs().max()) < 1e-6, float(band_limited(x, 1e-3, 1.0).sum())
    (True, 1.0)
    """
    n = image.shape[-1]
    frequencies = torch.fft.fftfreq(n, d=cell_rad, dtype=torch.float64)
    u, v = torch.meshgrid(frequencies, frequencies, indexing="xy")
    mask = (u**2 + v**2) <= uv_max**2
    return torch.fft.ifft2(torch.fft.fft2(image.double()) * mask).real.to(image.dtype)
