"""Earth-rotation (u, v, w) against hand-checked cases, sidereal time, counts from 1e4 to 1e8, the simulator's
arguments."""

import math

import numpy as np
import pytest

from distinv.radio.observation import ObservationConfig, gmst_rad, unix_from_iso, uvw_from_baselines
from data_scripts_loader import load_data_script


def test_source_at_zenith_sees_the_baseline_as_east_north_up():
    """H = 0 and δ = φ: (u, v, w) = (E, N, U) at any latitude."""
    enu = np.array([[120.0, -35.0, 4.0], [0.0, 800.0, -2.0]])
    for latitude in (-0.536, 0.0, 0.9):
        uvw = uvw_from_baselines(enu, latitude, np.array([0.0]), latitude)[0]
        np.testing.assert_allclose(uvw, enu, atol=1e-9)


def test_at_the_south_pole_baselines_rotate_in_the_uv_plane():
    """φ = δ = -90°: the uv track of a baseline is a circle of its length, w = up (source at zenith)."""
    hour_angles = np.linspace(-math.pi, math.pi, 25)
    uvw = uvw_from_baselines(np.array([[100.0, 0.0, 3.0]]), -math.pi / 2, hour_angles, -math.pi / 2)[:, 0]
    np.testing.assert_allclose(np.hypot(uvw[:, 0], uvw[:, 1]), 100.0, atol=1e-9)
    np.testing.assert_allclose(uvw[:, 2], 3.0, atol=1e-9)
    np.testing.assert_allclose(uvw[:, 0], 100.0 * np.cos(hour_angles), atol=1e-9)  # u = b cos H for an east baseline


def test_east_west_baseline_traces_an_ellipse():
    """u = b cos H, v = b sin δ sin H: axes b and b |sin δ| (Thompson, Moran & Swenson, fig. 4.4)."""
    hour_angles = np.linspace(-math.pi, math.pi, 49)
    declination = math.radians(-40.0)
    uvw = uvw_from_baselines(np.array([[250.0, 0.0, 0.0]]), math.radians(-30.7), hour_angles, declination)[:, 0]
    np.testing.assert_allclose((uvw[:, 0] / 250.0) ** 2 + (uvw[:, 1] / (250.0 * math.sin(declination))) ** 2, 1.0)
    np.testing.assert_allclose(np.linalg.norm(uvw, axis=1), 250.0)  # a rotation keeps the length


def test_sidereal_time():
    assert float(gmst_rad(unix_from_iso("2000-01-01T12:00:00"))) * 12 / math.pi == pytest.approx(18.697374558, abs=1e-6)
    one_sidereal_day = 86_164.0905
    assert float(gmst_rad(1.7e9 + one_sidereal_day) - gmst_rad(1.7e9)) == pytest.approx(0.0, abs=1e-5)


def test_default_track_is_centred_on_transit():
    obs = ObservationConfig(duration_s=7200.0, integration_s=600.0)
    hour_angles = obs.hour_angles_rad()
    assert obs.n_times == 12
    assert hour_angles[5] == pytest.approx(-hour_angles[6], abs=1e-4)
    assert hour_angles[0] == pytest.approx(-math.pi / 12 * 1.002738 * 11 / 12, abs=1e-3)


@pytest.mark.parametrize("target", [10**4, 10**5, 10**6, 10**7, 10**8])
def test_visibility_counts_from_1e4_to_1e8(target):
    obs = ObservationConfig(n_channels=8).with_visibilities(target)
    per_time = 2016 * 8
    assert target <= obs.n_visibilities < target + per_time
    assert obs.duration_s == 4 * 3600.0


def test_uvw_in_wavelengths_per_channel():
    obs = ObservationConfig(duration_s=120.0, integration_s=60.0, n_channels=3, channel_width_hz=5e7, n_antennas=4)
    uvw_m, uvw_lambda = obs.uvw_m(), obs.uvw_wavelengths().reshape(2, 6, 3, 3)
    for channel, frequency in enumerate(obs.frequencies_hz()):
        np.testing.assert_allclose(uvw_lambda[:, :, channel], uvw_m * frequency / 299_792_458.0)
    lengths = np.linalg.norm(uvw_m, axis=2)
    np.testing.assert_allclose(lengths, np.broadcast_to(obs.antenna_array().baseline_lengths(), (2, 6)))


def test_simulator_arguments_parse_to_the_same_track():
    simulate = load_data_script("simulate_observation")
    obs = ObservationConfig(start="2026-05-01T20:15:30", duration_s=900.0, integration_s=30.0, n_channels=2,
                            n_antennas=8)
    args = simulate.parse_args(["--sky", "s.npz", "--out", "o.ms", *obs.simulator_arguments()])
    assert (args.ra_deg, args.dec_deg, args.duration_s, args.integration_s) == (60.0, -30.0, 900.0, 30.0)
    assert args.start == "2026-05-01T20:15:30.000000" and args.n_channels == 2 and args.n_antennas == 8
    assert unix_from_iso(args.start) == obs.start_unix()


def test_bad_configurations():
    with pytest.raises(ValueError, match=r"dec_deg must be in \[-90, 90\], got 95"):
        ObservationConfig(dec_deg=95)
    with pytest.raises(ValueError, match=r"integration_s must be <= duration_s=60.0, got 120.0"):
        ObservationConfig(duration_s=60.0, integration_s=120.0)
    with pytest.raises(ValueError, match=r"n_channels must be an integer >= 1, got 0"):
        ObservationConfig(n_channels=0)
    with pytest.raises(ValueError, match=r"start must be an ISO 8601 date-time .* got 'tomorrow'"):
        ObservationConfig(start="tomorrow")
    with pytest.raises(ValueError, match=r"n_visibilities must be a number >= 1, got 0"):
        ObservationConfig().with_visibilities(0)
