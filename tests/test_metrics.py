"""Banded SSIM equals deepinv's whole-image SSIM, for any band height, with bounded memory."""

import pytest
import torch
from deepinv.loss.metric import SSIM

from distinv.metrics import SSIM_HALO, banded_ssim


def _pair(shape, seed=0):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(seed))
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed + 1))
    return (x + 0.1 * noise).clamp(0, 1), x


@pytest.mark.parametrize("rows", [1, 7, SSIM_HALO, 64, 1000])
def test_equals_deepinv_ssim_exactly_in_float64(rows):
    """In float64 the sums agree to rounding; odd sizes, bands thinner than the window, one band."""
    y, x = _pair((2, 3, 101, 67))
    expected = SSIM()(y.double(), x.double())
    assert torch.allclose(banded_ssim(y.double(), x.double(), rows=rows), expected, rtol=0, atol=1e-12)


def test_float32_is_at_least_as_accurate_as_the_whole_image_metric():
    y, x = _pair((1, 3, 512, 384))
    exact = SSIM()(y.double(), x.double()).item()
    banded = banded_ssim(y, x, rows=100).item()
    whole = SSIM()(y, x).item()
    assert abs(banded - exact) <= max(abs(whole - exact), 1e-7)


def test_bad_input_is_named():
    y, x = _pair((1, 1, 16, 16))
    with pytest.raises(ValueError, match="rows must be an integer >= 1"):
        banded_ssim(y, x, rows=0)
    with pytest.raises(ValueError, match="one shape"):
        banded_ssim(y, x[..., :8])
