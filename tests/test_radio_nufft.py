"""The radio operator: both backends against a direct DFT (N = 32, 200 visibilities), a tested adjoint,
autograd, natural weighting, the dirty image's normalisation and position, and clear errors."""

import math

import pytest
import torch

from distinv.radio.nufft import RadioNUFFT, check_cell, direct_dft, direct_dft_adjoint, max_cell_rad

NPIX, N_VIS, CELL = 32, 200, 1e-4
# backend, image dtype, tolerance against the direct DFT (relative, max norm)
CASES = [("finufft", torch.float64, 1e-5), ("finufft", torch.float32, 1e-4), ("deepinv", torch.float32, 3e-3)]
IDS = [f"{b}-{str(d).split('.')[-1]}" for b, d, _ in CASES]


def _uv(n=N_VIS, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 2, generator=generator, dtype=torch.float64) * 2 - 1) * 0.45 / CELL


def _relative(a, b):
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("backend, dtype, tol", CASES, ids=IDS)
def test_forward_and_adjoint_match_the_direct_dft(backend, dtype, tol):
    uv = _uv()
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2, 1, NPIX, NPIX, generator=generator, dtype=torch.float64)
    y = torch.randn(2, 1, N_VIS, generator=generator, dtype=torch.complex128)
    physics = RadioNUFFT(uv, NPIX, CELL, backend=backend)
    complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    forward = physics.A(x.to(dtype))
    assert forward.shape == (2, 1, N_VIS) and forward.dtype == complex_dtype
    assert _relative(forward.to(torch.complex128), direct_dft(x, uv, CELL)) < tol
    adjoint = physics.A_adjoint(y.to(complex_dtype))
    assert adjoint.shape == (2, 1, NPIX, NPIX) and adjoint.dtype == dtype
    assert _relative(adjoint.to(torch.float64), direct_dft_adjoint(y, uv, NPIX, CELL).real) < tol


def test_direct_dft_follows_the_stated_sign():
    """A source at (l, m) = (3, -2) cells: V = exp(+2πi(u l + v m))."""
    uv = _uv(5)
    image = torch.zeros(NPIX, NPIX, dtype=torch.float64)
    image[NPIX // 2 - 2, NPIX // 2 + 3] = 1.0
    expected = torch.exp(2j * math.pi * (uv[:, 0] * 3 * CELL + uv[:, 1] * (-2) * CELL))
    torch.testing.assert_close(direct_dft(image, uv, CELL), expected)


DOT_CASES = [("finufft", torch.complex128, 1e-12), ("finufft", torch.complex64, 1e-6),
             ("deepinv", torch.complex64, 1e-5)]


@pytest.mark.parametrize("backend, dtype, tol", DOT_CASES, ids=["finufft-c128", "finufft-c64", "deepinv-c64"])
def test_complex_dot_test(backend, dtype, tol):
    """<A x, y> = <x, Aᴴ y> for complex x and y (weights included)."""
    weights = torch.rand(N_VIS, dtype=torch.float64) + 0.5
    physics = RadioNUFFT(_uv(), NPIX, CELL, weights=weights, backend=backend, real_projection=False)
    torch.manual_seed(2)
    assert float(physics.adjointness_test(img_size=(1, NPIX, NPIX), dtype=dtype, num_samples=3)) < tol
    x = torch.randn(1, 1, NPIX, NPIX, dtype=dtype)
    y = torch.randn(1, 1, N_VIS, dtype=dtype)
    left = torch.vdot(physics.A(x).flatten(), y.flatten())
    right = torch.vdot(x.flatten(), physics.A_adjoint(y).flatten())
    assert abs(complex(left - right)) < 10 * tol * abs(complex(left))


def test_real_images_adjoint_is_the_real_part():
    physics = RadioNUFFT(_uv(), NPIX, CELL)
    x = torch.randn(1, 1, NPIX, NPIX, dtype=torch.float64)
    y = torch.randn(1, 1, N_VIS, dtype=torch.complex128)
    left = torch.vdot(physics.A(x).flatten(), y.flatten()).real
    right = torch.dot(x.flatten(), physics.A_adjoint(y).flatten())
    assert abs(float(left - right)) < 1e-10 * abs(float(left))


def test_autograd_matches_the_adjoint():
    physics = RadioNUFFT(_uv(), NPIX, CELL, weights=torch.rand(N_VIS, dtype=torch.float64) + 0.1)
    x = torch.randn(1, 1, NPIX, NPIX, dtype=torch.float64, requires_grad=True)
    y = torch.randn(1, 1, N_VIS, dtype=torch.complex128)
    loss = 0.5 * (physics.A(x) - y).abs().pow(2).sum()
    loss.backward()
    torch.testing.assert_close(x.grad, physics.A_adjoint(physics.A(x.detach()) - y), rtol=1e-10, atol=1e-10)


def test_natural_weighting_is_sqrt_w_on_both_sides():
    uv, weights = _uv(), torch.rand(N_VIS, dtype=torch.float64) + 0.1
    weighted, plain = RadioNUFFT(uv, NPIX, CELL, weights=weights), RadioNUFFT(uv, NPIX, CELL)
    x = torch.randn(1, 1, NPIX, NPIX, dtype=torch.float64)
    vis = torch.randn(1, 1, N_VIS, dtype=torch.complex128)
    torch.testing.assert_close(weighted.A(x), plain.A(x) * weights.sqrt())
    torch.testing.assert_close(weighted.A_adjoint(weighted.weigh(vis)), plain.A_adjoint(vis * weights))
    assert weighted.sum_weights == pytest.approx(float(weights.sum()))


@pytest.mark.parametrize("backend", ["finufft", "deepinv"])
@pytest.mark.parametrize("offset", [(0, 0), (5, -9)])
def test_dirty_image_peaks_on_the_source_with_its_flux(backend, offset):
    flux = 2.5
    image = torch.zeros(1, 1, NPIX, NPIX, dtype=torch.float64)
    row, col = NPIX // 2 + offset[0], NPIX // 2 + offset[1]
    image[0, 0, row, col] = flux
    weights = torch.rand(N_VIS, dtype=torch.float64) + 0.5
    vis = direct_dft(image, _uv(), CELL)  # the visibilities of the sky, from the direct sum
    physics = RadioNUFFT(_uv(), NPIX, CELL, weights=weights, backend=backend)
    dirty = physics.dirty(physics.weigh(vis))[0, 0]
    assert divmod(int(dirty.argmax()), NPIX) == (row, col)
    assert float(dirty[row, col]) == pytest.approx(flux, rel=2e-3 if backend == "deepinv" else 1e-6)


def test_cell_too_large_for_the_longest_baseline():
    uv = torch.tensor([[2000.0, -500.0], [100.0, 10.0]], dtype=torch.float64)
    assert max_cell_rad(2000.0) == 1 / 4000
    check_cell(1 / 4000, 2000.0)
    with pytest.raises(ValueError, match=r"cell=61.88 arcsec is too large for the longest baseline: max \|u\|, \|v\| = "
                                         r"2000 wavelengths needs cell <= 1/\(2 max\|u\|\) = 51.57 arcsec.*aliases"):
        RadioNUFFT(uv, 16, 1.2 / 4000)


def test_bad_inputs():
    uv = _uv(10)
    with pytest.raises(ValueError, match=r"backend must be one of \('finufft', 'deepinv', 'cufinufft'\), got 'kbnufft'"):
        RadioNUFFT(uv, NPIX, CELL, backend="kbnufft")
    with pytest.raises(ValueError, match=r"uv must have shape \(K, 2\) with K >= 1, got \(10, 3\)"):
        RadioNUFFT(torch.zeros(10, 3), NPIX, CELL)
    with pytest.raises(ValueError, match=r"weights must have shape \(10,\) like uv's first axis, got \(9,\)"):
        RadioNUFFT(uv, NPIX, CELL, weights=torch.ones(9))
    with pytest.raises(ValueError, match=r"weights must be finite and > 0"):
        RadioNUFFT(uv, NPIX, CELL, weights=torch.zeros(10))
    with pytest.raises(ValueError, match=r"npix must be an integer >= 2, got 1"):
        RadioNUFFT(uv, 1, CELL)
    with pytest.raises(ValueError, match=r"cell must be a positive finite size, got -1.0 rad"):
        RadioNUFFT(uv, NPIX, -1.0)
    with pytest.raises(ValueError, match=r"backend='finufft' runs on CPU tensors, got device='cuda'"):
        RadioNUFFT(uv, NPIX, CELL, device="cuda")


def test_a_copy_computes_the_same():
    """copy.deepcopy drops the FINUFFT plans (C objects); the copy makes its own and computes the same."""
    import copy

    physics = RadioNUFFT(_uv(), NPIX, CELL)
    x = torch.randn(1, 1, NPIX, NPIX, dtype=torch.float64)
    y = physics.A(x)
    twin = copy.deepcopy(physics)
    torch.testing.assert_close(twin.A(x), y)
    torch.testing.assert_close(twin.A_adjoint(y), physics.A_adjoint(y))
