"""Procedural skies: deterministic per seed, non-negative, high dynamic range, power-law point fluxes, the seed
policy, and the file the simulator reads."""

import numpy as np
import pytest

from distinv.radio.sky import (SKY_TRAINING_SEEDS, SkyConfig, _power_law, check_sky_seed, load_sky,
                               point_source_sky, radio_sky, save_sky)

CONFIG = SkyConfig(npix=96)


def test_same_seed_same_sky_other_seed_other_sky():
    a, b = radio_sky(CONFIG, seed=11), radio_sky(CONFIG, seed=11)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, radio_sky(CONFIG, seed=12))
    assert a.shape == (96, 96) and a.dtype == np.float64 and (a >= 0).all()


def test_high_dynamic_range_and_extended_emission():
    sky = radio_sky(SkyConfig(npix=128, n_points=0, n_galaxies=3, n_diffuse=2), seed=4)
    assert sky.max() / np.percentile(sky[sky > 0], 50) > 1e3
    assert (sky > 1e-3 * sky.max()).sum() > 50  # resolved structure, not only single pixels
    points = radio_sky(SkyConfig(npix=128, n_points=40, n_galaxies=0, n_diffuse=0), seed=4)
    assert 30 <= (points > 0).sum() <= 40  # one pixel each (a few may share a pixel)
    assert points.sum() < radio_sky(SkyConfig(npix=128, n_points=40, n_galaxies=0, n_diffuse=0, flux_max=10.0),
                                    seed=4).sum()


def test_point_fluxes_follow_the_power_law():
    """p(S) ∝ S^-1.7 on [1e-4, 1]: the median is (2^{-1}(a_lo + a_hi))^{1/a}, a = -0.7."""
    fluxes = _power_law(np.random.default_rng(0), 200_000, 1e-4, 1.0, 1.7)
    a = -0.7
    median = ((1e-4**a + 1.0**a) / 2) ** (1 / a)
    assert np.median(fluxes) == pytest.approx(median, rel=0.02)
    assert fluxes.min() >= 1e-4 and fluxes.max() <= 1.0


def test_seed_policy():
    assert check_sky_seed(SKY_TRAINING_SEEDS.start, "training") == 1_000_000
    radio_sky(SkyConfig(npix=16, n_points=3, n_galaxies=0, n_diffuse=0), seed=1_500_000, purpose="training")
    with pytest.raises(ValueError, match=r"seed=1000000 is reserved for training skies \[1000000, 2000000\)"):
        radio_sky(CONFIG, seed=1_000_000)
    with pytest.raises(ValueError, match=r"seed=5 is outside the training range \[1000000, 2000000\)"):
        check_sky_seed(5, "training")
    with pytest.raises(ValueError, match=r"purpose must be one of \('evaluation', 'training'\), got 'test'"):
        check_sky_seed(5, "test")
    with pytest.raises(TypeError, match=r"seed must be an integer, got 1.5"):
        check_sky_seed(1.5)
    with pytest.raises(ValueError, match=r"seed must be >= 0, got -1"):
        check_sky_seed(-1)


def test_bad_sky_configs():
    with pytest.raises(ValueError, match=r"npix must be an integer >= 16, got 8"):
        SkyConfig(npix=8)
    with pytest.raises(ValueError, match=r"need 0 < flux_min < flux_max, got flux_min=1.0, flux_max=0.5"):
        SkyConfig(flux_min=1.0, flux_max=0.5)
    with pytest.raises(ValueError, match=r"slope must be > 1, got 1.0"):
        SkyConfig(slope=1.0)
    with pytest.raises(ValueError, match=r"n_points must be an integer >= 0, got -2"):
        SkyConfig(n_points=-2)


def test_point_source_sky_and_the_file_round_trip(tmp_path):
    image = point_source_sky(16, [(3, 12, 1.5), (8, 8, 0.25)])
    assert image.sum() == 1.75 and image[3, 12] == 1.5
    with pytest.raises(ValueError, match=r"source pixel \(16, 0\) is outside the 16x16 image"):
        point_source_sky(16, [(16, 0, 1.0)])
    path = save_sky(tmp_path / "sky.npz", image, cell_arcsec=1.5, ra_deg=60.0, dec_deg=-30.0)
    loaded = load_sky(path)
    np.testing.assert_array_equal(loaded["image"], image)
    assert (loaded["cell_arcsec"], loaded["ra_deg"], loaded["dec_deg"]) == (1.5, 60.0, -30.0)
    with pytest.raises(FileExistsError, match="sky.npz exists: pass overwrite=True to replace it"):
        save_sky(path, image, 1.5, 60.0, -30.0)
    with pytest.raises(ValueError, match=r"image must be square \(N, N\), got shape \(2, 3\)"):
        save_sky(tmp_path / "bad.npz", np.zeros((2, 3)), 1.0, 0.0, 0.0)
