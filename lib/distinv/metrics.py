"""Image quality metrics at full resolution with bounded memory.

deepinv's ``SSIM`` (torchmetrics underneath) builds five filtered copies of the padded image pair at
once, several gigabytes for a 4096² colour image (about 10 GB of peak RSS on CPU). SSIM is local
(an 11×11 Gaussian window), so :func:`banded_ssim` evaluates the same deepinv metric on bands of rows,
each with a halo of real neighbouring rows, keeps the map rows whose window lies inside the band plus
halo, and averages them: the value equals the whole-image one up to float summation order.
"""

from __future__ import annotations

import torch

__all__ = ["banded_ssim", "SSIM_HALO"]

#: Rows of context on each side of a band: covers the SSIM window (11 rows, radius 5) with room to spare.
SSIM_HALO = 16


def banded_ssim(x_hat: torch.Tensor, x: torch.Tensor, rows: int = 256, max_pixel: float = 1.0) -> torch.Tensor:
    r"""deepinv's SSIM (``deepinv.loss.metric.SSIM``, default window) computed ``rows`` rows at a time.

    :param torch.Tensor x_hat: estimate, ``(B, C, H, W)``.
    :param torch.Tensor x: reference, same shape.
    :param int rows: rows per band, ``>= 1`` (memory is about that of the whole-image metric times
        ``(rows + 2 * SSIM_HALO) / H``).
    :param float max_pixel: the images' range is ``[0, max_pixel]``.
    :return: one SSIM value per batch element, as deepinv returns it.

    >>> from deepinv.loss.metric import SSIM
    >>> x = torch.rand(1, 3, 70, 53, generator=torch.Generator().manual_seed(0))
    >>> y = (x + 0.1 * torch.rand(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    >>> bool(torch.allclose(banded_ssim(y, x, rows=16), SSIM()(y, x), atol=1e-6))
    True
    """
    from deepinv.loss.metric import SSIM

    if x_hat.shape != x.shape or x.ndim != 4:
        raise ValueError(f"x_hat and x must be (B, C, H, W) tensors of one shape, got {tuple(x_hat.shape)} "
                         f"and {tuple(x.shape)}")
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 1:
        raise ValueError(f"rows must be an integer >= 1, got {rows!r}")
    height = x.shape[2]
    metric = SSIM(max_pixel=max_pixel, torchmetric_kwargs={"return_full_image": True})
    total = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    for start in range(0, height, rows):
        stop = min(height, start + rows)
        low, high = max(0, start - SSIM_HALO), min(height, stop + SSIM_HALO)
        _, ssim_map = metric.metric(x_hat[:, :, low:high], x[:, :, low:high])
        # the map's rows within the window radius of an inner band edge saw reflected rows: drop them
        inside = ssim_map[:, :, start - low:stop - low]
        total += inside.sum(dim=(1, 2, 3), dtype=torch.float64)
    return (total / x[0].numel()).to(x.dtype)
