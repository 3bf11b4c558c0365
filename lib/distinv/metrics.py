"""Image quality metrics at full resolution with bounded memory.

deepinv's ``SSIM`` (torchmetrics underneath) builds five filtered copies of the padded image pair at
once, several gigabytes for a 4096² colour image (about 10 GB of peak RSS on CPU). SSIM is local
(an 11×11 Gaussian window), so :func:`banded_ssim` evaluates the same deepinv metric on bands of rows,
each with a halo of real neighbouring rows, keeps the map rows whose window lies inside the band plus
halo, and averages them: the value equals the whole-image one up to float summation order.
"""

from __future__ import annotations

import torch

__all__ = ["banded_ssim", "SSIM_HALO", "image_quality", "preview", "volume_quality_sums", "psnr_from_sums"]

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


def image_quality(x: torch.Tensor, x_true: torch.Tensor) -> dict[str, float]:
    """deepinv's PSNR and SSIM of ``x`` clamped to ``[0, 1]`` (SSIM by bands of rows: bounded memory).

    :param torch.Tensor x: estimate ``(B, C, H, W)``.
    :param torch.Tensor x_true: reference of the same shape, in ``[0, 1]``.

    >>> x = torch.full((1, 1, 16, 16), 0.5)
    >>> round(image_quality(x + 0.01, x)["psnr"], 3)
    40.0
    """
    from deepinv.loss.metric import PSNR

    x = x.clamp(0.0, 1.0)
    return {"psnr": float(PSNR(max_pixel=1.0)(x, x_true)), "ssim": float(banded_ssim(x, x_true, max_pixel=1.0))}


def preview(x: torch.Tensor, side: int) -> torch.Tensor:
    """``x[0]`` clamped to ``[0, 1]`` and area-downsampled so that its sides are at most ``side`` (CPU, float).

    :param torch.Tensor x: ``(B, C, H, W)``.
    :param int side: largest side of the preview.

    >>> preview(torch.ones(1, 1, 64, 64), 16).shape
    torch.Size([1, 16, 16])
    """
    x = x.detach().clamp(0.0, 1.0)
    if max(x.shape[-2:]) > side:
        x = torch.nn.functional.interpolate(x, size=(side, side), mode="area")
    return x[0].float().cpu()


#: Slices whose SSIM :func:`volume_quality_sums` computes at once (bounds its temporaries on a large slab).
SSIM_SLICES = 2


def volume_quality_sums(x: torch.Tensor, x_true: torch.Tensor) -> torch.Tensor:
    r"""Sums behind the metrics of a volume (or of a slab of it): ``[Σ (x − x_true)², voxels, Σ SSIM_z, slices]``.

    ``x`` is clamped to ``[0, 1]``. SSIM is deepinv's 2D SSIM of each axial slice :math:`z`; the volume's
    SSIM is the mean over slices. The sums of slabs add up to those of the whole volume, so ranks holding
    slabs all-reduce them (:func:`psnr_from_sums`).

    :param torch.Tensor x: ``(1, 1, Z, H, W)`` estimate.
    :param torch.Tensor x_true: reference of the same shape, in ``[0, 1]``.
    :return: float64 tensor of 4 sums.

    >>> x = torch.full((1, 1, 3, 16, 16), 0.5)
    >>> volume_quality_sums(x + 0.01, x)[[1, 3]].tolist()
    [768.0, 3.0]
    """
    if x.shape != x_true.shape or x.ndim != 5:
        raise ValueError(f"x and x_true must be (B, C, Z, H, W) tensors of one shape, got {tuple(x.shape)} and "
                         f"{tuple(x_true.shape)}")
    x = x.clamp(0.0, 1.0)
    squared = torch.sum((x - x_true) ** 2, dtype=torch.float64)
    slices = x[0].transpose(0, 1)  # (Z, C, H, W)
    truth = x_true[0].transpose(0, 1)
    ssim = 0.0
    for start in range(0, slices.shape[0], SSIM_SLICES):  # a few slices at a time: SSIM's filtered maps are
        stop = start + SSIM_SLICES                          # several times the size of what they filter
        ssim += float(banded_ssim(slices[start:stop], truth[start:stop], max_pixel=1.0).to(torch.float64).sum())
    return torch.tensor([float(squared), x.numel(), float(ssim), slices.shape[0]], dtype=torch.float64)


def psnr_from_sums(sums: torch.Tensor) -> dict[str, float]:
    """PSNR (peak 1) and mean slice SSIM from the all-reduced :func:`volume_quality_sums`.

    >>> {k: round(v, 6) for k, v in psnr_from_sums(torch.tensor([1e-4 * 10, 10.0, 1.8, 2.0])).items()}
    {'psnr': 40.0, 'ssim': 0.9}
    """
    import math

    mse = float(sums[0]) / float(sums[1])
    psnr = float("inf") if mse == 0 else -10.0 * math.log10(mse)
    return {"psnr": psnr, "ssim": float(sums[2]) / float(sums[3])}
