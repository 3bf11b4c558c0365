"""Small conv nets with a known receptive field, called ``(x, sigma)`` like a deepinv denoiser.

``ThreeConvNet``: three 3-wide convolutions with zero padding, so output sample ``y`` depends on inputs
``y - 3 .. y + 3``: receptive-field radius 3, no downsampling (align 1).

``DownUpNet``: conv 3 → conv 3 stride 2 → conv 3 (half resolution) → transposed conv 2 stride 2 →
conv 3, cropped to the input size (any size). Following the index ranges back: an even output ``2m``
depends on ``2m - 6 .. 2m + 4``, an odd one ``2m + 1`` on ``2m - 4 .. 2m + 6``: radius 6, align 2.
"""

import torch
from torch import nn

__all__ = ["ThreeConvNet", "DownUpNet"]


def _conv(dim, *args, **kwargs):
    return (nn.Conv2d if dim == 2 else nn.Conv3d)(*args, **kwargs)


def _scale(sigma, x):
    if isinstance(sigma, torch.Tensor) and sigma.ndim > 0:
        sigma = sigma.reshape(-1, *([1] * (x.ndim - 1)))
    return 1 + sigma


class ThreeConvNet(nn.Module):
    radius = 3
    align = 1

    def __init__(self, channels: int = 2, dim: int = 2, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        width = 4
        self.body = nn.Sequential(
            _conv(dim, channels, width, 3, padding=1), nn.Tanh(),
            _conv(dim, width, width, 3, padding=1), nn.Tanh(),
            _conv(dim, width, channels, 3, padding=1),
        )

    def forward(self, x, sigma):
        return self.body(x) * _scale(sigma, x)


class DownUpNet(nn.Module):
    radius = 6
    align = 2

    def __init__(self, channels: int = 1, dim: int = 2, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        width = 4
        self.head = _conv(dim, channels, width, 3, padding=1)
        self.down = _conv(dim, width, width, 3, stride=2, padding=1)
        self.body = _conv(dim, width, width, 3, padding=1)
        self.up = (nn.ConvTranspose2d if dim == 2 else nn.ConvTranspose3d)(width, width, 2, stride=2)
        self.tail = _conv(dim, width, channels, 3, padding=1)

    def forward(self, x, sigma):
        h = torch.tanh(self.head(x))
        u = self.up(torch.tanh(self.body(torch.tanh(self.down(h)))))
        u = u[(..., *[slice(0, s) for s in x.shape[2:]])]
        return self.tail(u + h) * _scale(sigma, x)
