"""Tiny Measurement Sets written with python-casacore directly (independent of pyuvdata), for the radio tests."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

SPEED_OF_LIGHT = 299_792_458.0
ARCSEC = math.pi / (180 * 3600)
CORR_CODES = {"I": 1, "RR": 5, "RL": 6, "LR": 7, "LL": 8, "XX": 9, "XY": 10, "YX": 11, "YY": 12}


def write_tiny_ms(path: Path, uvw_m: np.ndarray, data: np.ndarray, freqs_hz: np.ndarray,
                  correlations=("XX", "XY", "YX", "YY"), flag=None, flag_row=None, weight=None,
                  weight_spectrum=None, phase_centre=(1.0, -0.5), extra_columns=()) -> Path:
    """A minimal valid MS: main table (UVW, DATA, FLAG, FLAG_ROW, WEIGHT[, WEIGHT_SPECTRUM]) and the
    SPECTRAL_WINDOW, POLARIZATION, DATA_DESCRIPTION and FIELD rows that a reader needs.

    :param data: ``(n_rows, n_channels, n_correlations)`` complex.
    """
    from casacore.tables import default_ms, makearrcoldesc, maketabdesc, table

    n_rows, n_chan, n_corr = data.shape
    columns = [makearrcoldesc("DATA", 0j, valuetype="complex", shape=[n_chan, n_corr])]
    for name in extra_columns:
        columns.append(makearrcoldesc(name, 0j, valuetype="complex", shape=[n_chan, n_corr]))
    if weight_spectrum is not None:
        columns.append(makearrcoldesc("WEIGHT_SPECTRUM", 0.0, valuetype="float", shape=[n_chan, n_corr]))
    ms = default_ms(str(path), tabdesc=maketabdesc(columns))
    ms.addrows(n_rows)
    ms.putcol("UVW", np.asarray(uvw_m, dtype=np.float64))
    ms.putcol("DATA", np.asarray(data, dtype=np.complex64))
    for name in extra_columns:
        ms.putcol(name, np.zeros_like(data, dtype=np.complex64))
    ms.putcol("FLAG", np.zeros(data.shape, bool) if flag is None else flag)
    ms.putcol("FLAG_ROW", np.zeros(n_rows, bool) if flag_row is None else flag_row)
    ms.putcol("WEIGHT", np.ones((n_rows, n_corr), np.float32) if weight is None else weight.astype(np.float32))
    ms.putcol("SIGMA", np.ones((n_rows, n_corr), np.float32))
    if weight_spectrum is not None:
        ms.putcol("WEIGHT_SPECTRUM", weight_spectrum.astype(np.float32))
    ms.putcol("ANTENNA1", np.zeros(n_rows, np.int32))
    ms.putcol("ANTENNA2", np.ones(n_rows, np.int32))
    ms.putcol("DATA_DESC_ID", np.zeros(n_rows, np.int32))
    ms.putcol("TIME", 5.0e9 + np.arange(n_rows, dtype=np.float64))
    ms.close()
    with table(f"{path}/SPECTRAL_WINDOW", readonly=False, ack=False) as spw:
        spw.addrows(1)
        spw.putcell("CHAN_FREQ", 0, np.asarray(freqs_hz, dtype=np.float64))
        spw.putcell("NUM_CHAN", 0, n_chan)
        for name in ("CHAN_WIDTH", "EFFECTIVE_BW", "RESOLUTION"):
            spw.putcell(name, 0, np.full(n_chan, 1.0e6))
    with table(f"{path}/POLARIZATION", readonly=False, ack=False) as pol:
        pol.addrows(1)
        pol.putcell("CORR_TYPE", 0, np.array([CORR_CODES[c] for c in correlations], np.int32))
        pol.putcell("NUM_CORR", 0, n_corr)
        pol.putcell("CORR_PRODUCT", 0, np.zeros((n_corr, 2), np.int32))
    with table(f"{path}/DATA_DESCRIPTION", readonly=False, ack=False) as ddesc:
        ddesc.addrows(1)
        ddesc.putcell("SPECTRAL_WINDOW_ID", 0, 0)
        ddesc.putcell("POLARIZATION_ID", 0, 0)
    with table(f"{path}/FIELD", readonly=False, ack=False) as field:
        field.addrows(1)
        direction = np.array([[phase_centre[0], phase_centre[1]]])
        for name in ("PHASE_DIR", "DELAY_DIR", "REFERENCE_DIR"):
            field.putcell(name, 0, direction)
    return path


def point_source_ms(path: Path, offset_pixels=(5, -7), cell_arcsec: float = 2.0, flux: float = 1.5,
                    n_rows: int = 300, freqs_hz=(1.0e9, 1.1e9), seed: int = 0, flag_rows=()) -> Path:
    """An MS of one unresolved source of ``flux`` Jy at (row, column) offset ``offset_pixels`` from the phase
    centre, V = S exp(+2πi(ul + vm)) in XX and YY (w = 0), XY = YX = 0, uv inside the Nyquist limit."""
    rng = np.random.default_rng(seed)
    freqs = np.asarray(freqs_hz)
    limit_m = 0.45 / (cell_arcsec * ARCSEC) * SPEED_OF_LIGHT / freqs.max()
    uvw = np.zeros((n_rows, 3))
    uvw[:, :2] = rng.uniform(-limit_m, limit_m, size=(n_rows, 2))
    l, m = offset_pixels[1] * cell_arcsec * ARCSEC, offset_pixels[0] * cell_arcsec * ARCSEC
    u = uvw[:, None, 0] * freqs[None, :] / SPEED_OF_LIGHT
    v = uvw[:, None, 1] * freqs[None, :] / SPEED_OF_LIGHT
    vis = flux * np.exp(2j * np.pi * (u * l + v * m))
    data = np.zeros((n_rows, freqs.size, 4), np.complex128)
    data[:, :, 0] = data[:, :, 3] = vis
    flag_row = np.zeros(n_rows, bool)
    flag_row[list(flag_rows)] = True
    return write_tiny_ms(path, uvw, data, freqs, flag_row=flag_row)


def dirty_and_aliasing_rank(good, too_coarse) -> dict | None:
    """Rank function (importable): the dirty image of ``good``, then the error every rank raises for
    ``too_coarse`` (a cell too large for the longest baseline), in one launch."""
    from distinv.distributed import comm
    from distinv.radio.dirty import dirty_image_rank

    result = dirty_image_rank(good)
    try:
        dirty_image_rank(too_coarse)
        message = None
    except ValueError as error:
        message = str(error)
    messages = [None] * comm.world()[1]
    comm.all_gather_object(messages, message, site="test.messages")
    return None if result is None else {**result, "aliasing_errors": messages}


def sky_ms(path: Path, npix: int = 32, n_antennas: int = 8, n_times: int = 12, freqs_hz=(1.28e9, 1.3e9),
           noise_jy: float = 0.002, seed: int = 5, cell_fraction: float = 0.8) -> tuple[Path, float]:
    """An MS of a small procedural sky (:func:`distinv.radio.sky.radio_sky`, seed ``seed``) seen by the first
    ``n_antennas`` MeerKAT dishes: visibilities by a direct DFT (w = 0), complex noise of ``noise_jy`` per
    real part of XX and YY (WEIGHT = 1 / noise²), and the true sky beside it as ``NAME.sky.npz``.

    :return: ``(path, cell_arcsec)``: the cell is ``cell_fraction`` of the Nyquist limit of the longest baseline.
    """
    import torch

    from distinv.radio.nufft import direct_dft, max_cell_rad
    from distinv.radio.observation import ObservationConfig
    from distinv.radio.sky import SkyConfig, radio_sky, save_sky

    obs = ObservationConfig(duration_s=6 * 3600.0, integration_s=6 * 3600.0 / n_times, n_channels=1,
                            n_antennas=n_antennas)
    uvw = obs.uvw_m().reshape(-1, 3)
    freqs = np.asarray(freqs_hz)
    uv = uvw[:, None, :2] * freqs[None, :, None] / SPEED_OF_LIGHT  # (rows, channels, 2)
    cell_rad = cell_fraction * max_cell_rad(float(np.abs(uv).max()))
    cell_arcsec = cell_rad / ARCSEC
    sky = radio_sky(SkyConfig(npix=npix, cell_arcsec=cell_arcsec, n_points=6, n_galaxies=1, n_diffuse=1,
                              flux_min=1e-2), seed=seed)
    vis = direct_dft(torch.from_numpy(sky), torch.from_numpy(uv.reshape(-1, 2)), cell_rad).numpy()
    rng = np.random.default_rng(seed)
    data = np.zeros((uvw.shape[0], freqs.size, 4), np.complex128)
    for corr in (0, 3):
        noise = noise_jy * (rng.standard_normal(vis.shape) + 1j * rng.standard_normal(vis.shape))
        data[:, :, corr] = (vis + noise).reshape(uvw.shape[0], freqs.size)
    weight = np.full((uvw.shape[0], 4), 1.0 / noise_jy**2)
    write_tiny_ms(path, uvw, data, freqs, weight=weight)
    save_sky(Path(path).with_suffix(".sky.npz"), sky, cell_arcsec, 60.0, -30.0)
    return path, cell_arcsec
