"""An MS written by another tool: pyuvsim and matvis in their own environment (``make simulator``), read and
imaged here. The source lands on its pixel with its flux, the MS's UVW match our earth-rotation geometry,
and the sidecar and the true sky are written."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from distinv.radio.dirty import dirty_image
from distinv.radio.ms import open_measurement_set, read_visibilities
from distinv.radio.observation import ObservationConfig
from distinv.radio.sky import point_source_sky, save_sky

REPO = Path(__file__).resolve().parents[1]
SIM_PYTHON = REPO / ".venv-sim" / "bin" / "python"
SCRIPT = REPO / "data_scripts" / "simulate_observation.py"
NPIX, CELL, FLUX = 64, 2.0, 1.3
ROW, COL = NPIX // 2 + 6, NPIX // 2 - 10  # 12" north, 20" west of the phase centre
OBSERVATION = ObservationConfig(ra_deg=60.0, dec_deg=-30.0, start="2026-03-21T15:00:00", duration_s=120.0,
                                integration_s=60.0, n_channels=2, n_antennas=32)  # 2 x 496 x 2 = 1984 visibilities
ENGINES = ("pyuvsim", "matvis")


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """Both engines on the same one-source sky, run side by side in the simulator's environment."""
    subprocess.run(["make", "-s", "simulator"], cwd=REPO, check=True, timeout=1200)  # idempotent (a stamp file)
    folder = tmp_path_factory.mktemp("simulated")
    sky = save_sky(folder / "sky.npz", point_source_sky(NPIX, [(ROW, COL, FLUX)]), CELL, OBSERVATION.ra_deg,
                   OBSERVATION.dec_deg)
    runs = {engine: subprocess.Popen([str(SIM_PYTHON), str(SCRIPT), "--sky", str(sky), "--out",
                                      str(folder / f"{engine}.ms"), "--engine", engine,
                                      *OBSERVATION.simulator_arguments()],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for engine in ENGINES}
    for engine, run in runs.items():
        out, err = run.communicate(timeout=600)
        assert run.returncode == 0, f"{engine} failed:\n{err[-3000:]}"
    return folder, sky


@pytest.mark.parametrize("engine", ENGINES)
def test_source_on_its_pixel_with_its_flux(simulated, engine):
    folder, _ = simulated
    result = dirty_image(str(folder / f"{engine}.ms"), NPIX, CELL)
    image = result["image"]
    assert np.unravel_index(image.argmax(), image.shape) == (ROW, COL)
    assert image[ROW, COL] == pytest.approx(FLUX, rel=1e-3)
    assert result["n_visibilities"] == OBSERVATION.n_visibilities == 1984


@pytest.mark.parametrize("engine", ENGINES)
def test_ms_conventions_match_ours(simulated, engine):
    """UVW as our geometry computes them (sign included), Stokes I = (XX + YY)/2 holding the flux."""
    folder, _ = simulated
    path = folder / f"{engine}.ms"
    info = open_measurement_set(path)
    assert info.correlations == ("XX", "XY", "YX", "YY") and info.stokes_i == "(XX + YY) / 2"
    np.testing.assert_allclose(np.degrees(info.phase_centre_rad), (60.0, -30.0), atol=1e-9)
    np.testing.assert_allclose(info.frequencies_hz[0], OBSERVATION.frequencies_hz())
    from casacore.tables import table

    with table(str(path), ack=False) as main:
        uvw_ms = main.getcol("UVW")
    ours = OBSERVATION.uvw_m().reshape(-1, 3)
    lengths = np.linalg.norm(ours, axis=1)
    assert (np.linalg.norm(uvw_ms - ours, axis=1) / lengths).max() < 2e-4  # nutation, aberration left out
    block = read_visibilities(path)
    assert np.abs(block.vis).max() == pytest.approx(FLUX, rel=1e-6)  # |V| = S for one point source
    # the stored UVW and DATA against the direct sum V = S exp(+2πi(ul + vm + w(n - 1))), and not its conjugate
    cell = np.radians(CELL / 3600)
    l, m = (COL - NPIX // 2) * cell, (ROW - NPIX // 2) * cell
    phase = block.uvw @ np.array([l, m, np.sqrt(1 - l * l - m * m) - 1])
    assert np.abs(block.vis - FLUX * np.exp(2j * np.pi * phase)).max() < 1e-3 * FLUX
    assert np.abs(block.vis - FLUX * np.exp(-2j * np.pi * phase)).max() > 0.5 * FLUX


def test_engines_agree(simulated):
    folder, _ = simulated
    pyuvsim, matvis = (read_visibilities(folder / f"{engine}.ms").vis for engine in ENGINES)
    assert np.abs(pyuvsim - matvis).max() < 1e-3 * FLUX


@pytest.mark.parametrize("engine", ENGINES)
def test_sidecar_and_true_sky(simulated, engine):
    folder, sky = simulated
    info = json.loads((folder / f"{engine}.json").read_text())
    assert info["engine"] == engine and info["n_visibilities"] == 1984 and info["n_components"] == 1
    assert info["n_rows"] == 992 and info["ms_bytes"] > 0 and info["simulate_s"] > 0
    assert info["versions"][engine] and info["versions"]["pyuvdata"]
    with np.load(folder / f"{engine}.sky.npz") as true_sky, np.load(sky) as given:
        np.testing.assert_array_equal(true_sky["image"], given["image"])
        assert float(true_sky["cell_arcsec"]) == CELL


def test_refuses_to_overwrite(simulated):
    folder, sky = simulated
    run = subprocess.run([str(SIM_PYTHON), str(SCRIPT), "--sky", str(sky), "--out", str(folder / "pyuvsim.ms"),
                          *OBSERVATION.simulator_arguments()], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "exist: pass --force to overwrite" in run.stderr
