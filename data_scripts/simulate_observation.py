r"""Simulate a radio observation with an external simulator and write a standard Measurement Set.

Runs in the simulator's own environment (``make simulator`` builds ``.venv-sim``), never in the torch
one, and imports neither torch nor distinv: the array comes as a CSV file (``lib/distinv/radio/data``)
and the sky as an ``.npz`` file written by the torch side (:func:`distinv.radio.sky.save_sky`).

::

    .venv-sim/bin/python data_scripts/simulate_observation.py --sky sky.npz --out obs.ms \
        --engine pyuvsim --start 2026-03-21T18:00:00 --duration-s 600 --integration-s 60 \
        --freq-start-hz 1.284e9 --channel-width-hz 1e6 --n-channels 2
    .venv-sim/bin/mpiexec -n 2 .venv-sim/bin/python data_scripts/simulate_observation.py ...  # pyuvsim on 2 ranks

Engines:

- ``pyuvsim``: the exact measurement equation per (baseline-time, channel) task, MPI-parallel under
  ``mpiexec -n P`` (the mpich wheel ships ``mpiexec``); the reference for accuracy, slow: about 1,000
  to 2,000 tasks per second per core, whatever the number of components (measured here: 1e5
  visibilities of MeerKAT in 106 s with one component, 136 s with 671).
- ``matvis``: the same sky as one matrix product per time and channel, for large counts (1e5
  visibilities in 0.8 s with one component, 6.7 s with 671). It agreed with pyuvsim to 1e-7 of the
  peak visibility on the 671-component case (uniform beam).

Both use a uniform primary beam (no attenuation across the field), every pixel of the sky image above
``--min-flux-jy`` becoming one point component at its pixel centre: ``img[i, j]`` is the flux in Jy at
``l = (j - N//2)·cell``, ``m = (i - N//2)·cell`` (``l`` towards east, ``m`` towards north), mapped to
(RA, Dec) by the inverse orthographic (SIN) projection about the phase centre.

Outputs, for ``--out NAME.ms``: the Measurement Set ``NAME.ms`` (pyuvdata ``write_ms``, python-casacore
underneath), the true sky ``NAME.sky.npz`` (the input image, cell and phase centre) and a JSON sidecar
``NAME.json`` (engine, counts, times, MS size, versions, arguments). Conventions of the MS, as a reader
sees it:

- ``UVW`` and ``DATA`` satisfy :math:`V = \sum S\, e^{+2\pi i (u l + v m + w(n-1))}` (pyuvdata flips the
  UVW and conjugates the data on writing, to CASA's convention);
- correlations ``XX, XY, YX, YY``; for an unpolarised sky ``XX = YY = I`` (CASA's
  :math:`I = (XX + YY)/2`). pyuvsim and matvis put :math:`I/2` in ``XX`` and ``YY`` (the coherency
  :math:`\tfrac12 (I + Q)`), so those are doubled before writing. ``XY`` and ``YX`` are written as 0, what
  ideal orthogonal feeds give for an unpolarised sky: pyuvdata's uniform beam has a Jones matrix of
  :math:`1/\sqrt2` in every entry (each feed sees both sky polarisations), which would put :math:`I/2` in
  them too;
- the true sky file is the input image; pixels at or below ``--min-flux-jy`` are not simulated (the
  sidecar gives the flux simulated and the flux left out);
- the data are phased to the phase centre (``write_ms`` refuses unphased data); ``WEIGHT`` and
  ``WEIGHT_SPECTRUM`` are 1, or :math:`1/\sigma^2` per correlation with ``--noise-jy σ`` (complex Gaussian
  noise of standard deviation σ on the real and on the imaginary part of every correlation).

Plugging in another simulator (Karabo/OSKAR, CASA ``simobserve``, ``simms`` + a predictor, real data):
the contract is the Measurement Set, nothing else. Any tool that writes an MS with ``UVW``, a data
column (``DATA``, or name it with ``--column``), ``FLAG``, ``WEIGHT`` or ``WEIGHT_SPECTRUM``, the
``SPECTRAL_WINDOW`` and ``POLARIZATION`` subtables and CASA's sign and Stokes conventions above can be
imaged with ``python -m distinv.radio.dirty NAME.ms ...``; run it in its own environment or container
before the torch job, as this script is (a notebook cell's subprocess, or a step of the cluster job
before ``torchrun``). Check a new tool once with a single point source away from the phase centre:
the dirty image must put it on its pixel with its flux (``tests/test_radio_simulator.py`` does this
for pyuvsim).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ENGINES = ("pyuvsim", "matvis")
_REPO = Path(__file__).resolve().parent.parent
DEFAULT_ARRAY = _REPO / "lib" / "distinv" / "radio" / "data" / "meerkat.csv"
_HEADER_KEYS = ("latitude_deg", "longitude_deg", "altitude_m")


# --------------------------------------------------------------------------- inputs


def read_array(path: Path) -> dict:
    """Dish names, east/north/up offsets (metres) and diameters, and the reference position of an array CSV."""
    header, rows = {}, []
    for line in Path(path).read_text().splitlines():
        text = line.strip()
        if not text:
            continue
        if text.startswith("#"):
            key, sep, value = text[1:].partition(":")
            if sep and key.strip() in _HEADER_KEYS:
                header[key.strip()] = float(value)
            continue
        rows.append([field.strip() for field in text.split(",")])
    if rows[0][0] != "name" or any(key not in header for key in _HEADER_KEYS):
        raise ValueError(f"{path} is not an array file: need '# latitude_deg: ...' etc. and a name,east_m,... header")
    body = rows[1:]
    return {"names": [row[0] for row in body], "enu": np.array([[float(v) for v in row[1:4]] for row in body]),
            "diameters": np.array([float(row[4]) for row in body]), **header}


def read_sky(path: Path) -> dict:
    """The sky image (Jy per pixel), its cell (arcsec) and, when present, its phase centre."""
    with np.load(path) as npz:
        if "image" not in npz or "cell_arcsec" not in npz:
            raise ValueError(f"{path} must hold 'image' (N, N) and 'cell_arcsec'; found {sorted(npz.files)}")
        sky = {key: npz[key] for key in npz.files}
    image = np.asarray(sky["image"], dtype=np.float64)
    if image.ndim != 2 or image.shape[0] != image.shape[1]:
        raise ValueError(f"{path}: 'image' must be square (N, N), got shape {image.shape}")
    sky["image"] = image
    sky["cell_arcsec"] = float(sky["cell_arcsec"])
    return sky


def sky_components(image: np.ndarray, cell_arcsec: float, ra_deg: float, dec_deg: float,
                   min_flux_jy: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RA and Dec (radians) and flux (Jy) of one point component per pixel with ``|flux| > min_flux_jy``.

    Pixel ``(i, j)`` sits at ``l = (j - N//2)·cell``, ``m = (i - N//2)·cell``; the inverse SIN projection
    about ``(ra0, dec0)`` gives ``dec = asin(m cos dec0 + n sin dec0)``,
    ``ra = ra0 + atan2(l, n cos dec0 - m sin dec0)`` with ``n = sqrt(1 - l² - m²)``.
    """
    n_pix = image.shape[0]
    rows, cols = np.nonzero(np.abs(image) > min_flux_jy)
    if rows.size == 0:
        raise ValueError(f"the sky has no pixel above min_flux_jy={min_flux_jy}: nothing to simulate")
    cell = math.radians(cell_arcsec / 3600.0)
    l, m = (cols - n_pix // 2) * cell, (rows - n_pix // 2) * cell
    n = np.sqrt(1.0 - l**2 - m**2)
    ra0, dec0 = math.radians(ra_deg), math.radians(dec_deg)
    dec = np.arcsin(m * math.cos(dec0) + n * math.sin(dec0))
    ra = np.mod(ra0 + np.arctan2(l, n * math.cos(dec0) - m * math.sin(dec0)), 2 * math.pi)
    return ra, dec, image[rows, cols]


# --------------------------------------------------------------------------- the observation


def template(array: dict, args) -> "UVData":  # noqa: F821
    """An empty, unprojected UVData: every baseline (p < q) at every integration centre, 4 linear pols."""
    from astropy import units
    from astropy.coordinates import EarthLocation
    from astropy.time import Time
    from pyuvdata import Telescope, UVData, utils

    n_ant = len(array["names"]) if args.n_antennas is None else args.n_antennas
    names, enu, diameters = array["names"][:n_ant], array["enu"][:n_ant], array["diameters"][:n_ant]
    lat, lon, alt = math.radians(array["latitude_deg"]), math.radians(array["longitude_deg"]), array["altitude_m"]
    location = EarthLocation.from_geodetic(lon=array["longitude_deg"] * units.deg,
                                           lat=array["latitude_deg"] * units.deg, height=alt * units.m)
    ecef = utils.ECEF_from_ENU(enu, latitude=lat, longitude=lon, altitude=alt)
    relative = ecef - np.array(utils.XYZ_from_LatLonAlt(lat, lon, alt))
    telescope = Telescope.new(name="MeerKAT", location=location, antenna_positions=relative,
                              antenna_names=list(names), antenna_numbers=list(range(n_ant)),
                              antenna_diameters=diameters, instrument="distinv-sim", feeds=["x", "y"],
                              mount_type="alt-az", update_from_known=False)
    start = Time(args.start, format="isot", scale="utc")
    n_times = max(1, round(args.duration_s / args.integration_s))
    times = start.jd + (np.arange(n_times) + 0.5) * args.integration_s / 86_400.0
    freqs = args.freq_start_hz + args.channel_width_hz * np.arange(args.n_channels)
    pairs = [(p, q) for p in range(n_ant) for q in range(p + 1, n_ant)]
    uvd = UVData.new(freq_array=freqs, polarization_array=np.array([-5, -6, -7, -8]), times=times,
                      telescope=telescope, antpairs=pairs, do_blt_outer=True, time_axis_faster_than_bls=False,
                      integration_time=args.integration_s, channel_width=args.channel_width_hz,
                      vis_units="Jy", empty=True)
    uvd.blt_order = ("time", "baseline")
    return uvd


def simulate_pyuvsim(uvd, ra, dec, flux):
    """pyuvsim's visibilities into ``uvd`` (rank 0 returns the filled UVData, other ranks ``None``)."""
    import pyuvsim
    from astropy import units
    from astropy.coordinates import Latitude, Longitude
    from pyradiosky import SkyModel
    from pyuvdata import UniformBeam

    stokes = np.zeros((4, 1, flux.size))
    stokes[0, 0] = flux
    sky = SkyModel(name=[f"c{k}" for k in range(flux.size)], ra=Longitude(ra * units.rad),
                   dec=Latitude(dec * units.rad), stokes=stokes * units.Jy, spectral_type="flat", frame="icrs")
    beams = pyuvsim.BeamList([UniformBeam()])
    beam_dict = {name: 0 for name in uvd.telescope.antenna_names}
    out = pyuvsim.uvsim.run_uvdata_uvsim(uvd, beams, beam_dict=beam_dict, catalog=sky, quiet=True)
    return out if pyuvsim.mpi.get_rank() == 0 else None


def simulate_matvis(uvd, ra, dec, flux, enu):
    """matvis's visibilities (xx = yy, cross-pols 0) in the layout of ``uvd``."""
    from astropy.time import Time
    from matvis import simulate_vis
    from pyuvdata import UniformBeam

    times = Time(np.unique(uvd.time_array), format="jd", scale="utc")
    pairs = np.stack([uvd.ant_1_array[: uvd.Nbls], uvd.ant_2_array[: uvd.Nbls]], axis=1)
    n_ant = uvd.telescope.Nants
    fluxes = np.repeat(flux[:, None], uvd.Nfreqs, axis=1)
    vis = simulate_vis(ants={k: enu[k] for k in range(n_ant)}, fluxes=fluxes, ra=ra, dec=dec,
                       freqs=uvd.freq_array, times=times, beams=[UniformBeam()],
                       telescope_loc=uvd.telescope.location, polarized=False, precision=2, antpairs=pairs)
    # (Nfreqs, Ntimes, Nbls) -> (Nblts, Nfreqs), time major as the template (same conjugation as pyuvsim's)
    data = np.transpose(vis, (1, 2, 0)).reshape(uvd.Nblts, uvd.Nfreqs)
    uvd.data_array[:, :, 0] = data
    uvd.data_array[:, :, 1] = data
    return uvd


# --------------------------------------------------------------------------- outputs


def _replace_atomically(tmp: Path, target: Path) -> None:
    if tmp.is_file():
        os.chmod(tmp, 0o644)  # mkstemp leaves files readable by their owner only
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
    os.replace(tmp, target)


def write_outputs(uvd, args, sky: dict, info: dict, started: float) -> dict:
    """Phase, convert to CASA's Stokes convention, add noise, write the MS, the true sky and the JSON
    sidecar (each atomically); ``started`` is the ``perf_counter`` of the run's start."""
    out = Path(args.out)
    uvd.phase(lon=math.radians(args.ra_deg), lat=math.radians(args.dec_deg), cat_name="field", cat_type="sidereal")
    uvd.data_array[:, :, :2] *= 2.0  # XX, YY: pyuvsim's I/2 (coherency ½(I + Q)) -> CASA's XX = I + Q
    uvd.data_array[:, :, 2:] = 0.0  # XY, YX of ideal feeds and an unpolarised sky (see the module notes)
    if args.noise_jy > 0:
        rng = np.random.default_rng(args.noise_seed)
        noise = rng.standard_normal((2,) + uvd.data_array.shape)
        uvd.data_array += args.noise_jy * (noise[0] + 1j * noise[1])
    uvd.history += f" Simulated by distinv data_scripts/simulate_observation.py ({args.engine})."
    tic = time.perf_counter()
    tmp_dir = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        tmp_ms = tmp_dir / out.name
        uvd.write_ms(str(tmp_ms), clobber=True)
        if args.noise_jy > 0:
            from casacore.tables import table

            with table(str(tmp_ms), readonly=False, ack=False) as tab:
                weight = 1.0 / args.noise_jy**2
                tab.putcol("WEIGHT", np.full((tab.nrows(), 4), weight, dtype=np.float32))
                tab.putcol("SIGMA", np.full((tab.nrows(), 4), args.noise_jy, dtype=np.float32))
                if "WEIGHT_SPECTRUM" in tab.colnames():
                    tab.putcol("WEIGHT_SPECTRUM", np.full((tab.nrows(), uvd.Nfreqs, 4), weight, dtype=np.float32))
        _replace_atomically(tmp_ms, out)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    info["write_s"] = time.perf_counter() - tic
    info["ms_bytes"] = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())

    sky_path, json_path = out.with_suffix(".sky.npz"), out.with_suffix(".json")
    handle, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{sky_path.name}.", suffix=".npz")
    os.close(handle)
    np.savez_compressed(tmp, image=sky["image"], cell_arcsec=sky["cell_arcsec"], ra_deg=args.ra_deg,
                        dec_deg=args.dec_deg)
    _replace_atomically(Path(tmp), sky_path)
    info["total_s"] = time.perf_counter() - started
    handle, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{json_path.name}.", suffix=".json")
    os.close(handle)
    Path(tmp).write_text(json.dumps(info, indent=2) + "\n")
    _replace_atomically(Path(tmp), json_path)
    return info


def versions() -> dict:
    import astropy
    import casacore
    import pyuvdata

    found = {"python": platform.python_version(), "numpy": np.__version__, "pyuvdata": pyuvdata.__version__,
             "astropy": astropy.__version__, "python-casacore": casacore.__version__}
    for name in ("pyuvsim", "matvis", "pyradiosky", "mpi4py"):
        try:
            found[name] = __import__(name).__version__
        except ImportError:
            found[name] = None
    return found


# --------------------------------------------------------------------------- command line


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sky", required=True, help="npz with 'image' (N, N) in Jy per pixel and 'cell_arcsec'")
    parser.add_argument("--out", required=True, help="the Measurement Set to write (NAME.ms)")
    parser.add_argument("--engine", choices=ENGINES, default="pyuvsim")
    parser.add_argument("--array-csv", default=str(DEFAULT_ARRAY), help="array file (default: MeerKAT)")
    parser.add_argument("--n-antennas", type=int, default=None, help="use the first N dishes only")
    parser.add_argument("--ra-deg", type=float, default=None, help="phase centre (default: the sky file's)")
    parser.add_argument("--dec-deg", type=float, default=None)
    parser.add_argument("--start", required=True, help="ISO 8601 UTC start, e.g. 2026-03-21T18:00:00")
    parser.add_argument("--duration-s", type=float, required=True)
    parser.add_argument("--integration-s", type=float, required=True)
    parser.add_argument("--freq-start-hz", type=float, default=1.284e9)
    parser.add_argument("--channel-width-hz", type=float, default=1.0e6)
    parser.add_argument("--n-channels", type=int, default=1)
    parser.add_argument("--min-flux-jy", type=float, default=0.0, help="pixels at or below become no component")
    parser.add_argument("--noise-jy", type=float, default=0.0, help="noise std per real/imag part per correlation")
    parser.add_argument("--noise-seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="overwrite existing outputs")
    args = parser.parse_args(argv)
    for name in ("duration_s", "integration_s", "freq_start_hz"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name)}")
    if args.n_channels < 1:
        parser.error(f"--n-channels must be >= 1, got {args.n_channels}")
    if args.noise_jy < 0:
        parser.error(f"--noise-jy must be >= 0, got {args.noise_jy}")
    if not args.out.endswith(".ms"):
        parser.error(f"--out must end with .ms, got {args.out!r}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    if not args.force:  # before the heavy imports; every MPI rank sees the same files
        existing = [p for p in (out, out.with_suffix(".sky.npz"), out.with_suffix(".json")) if p.exists()]
        if existing:
            print(f"error: {', '.join(map(str, existing))} exist: pass --force to overwrite", file=sys.stderr)
            return 2
    if args.engine == "pyuvsim":
        from pyuvsim import mpi

        mpi.start_mpi(block_nonroot_stdout=True)
    total = time.perf_counter()
    try:
        array = read_array(Path(args.array_csv))
        if args.n_antennas is not None and not 2 <= args.n_antennas <= len(array["names"]):
            raise ValueError(f"--n-antennas must be between 2 and {len(array['names'])}, got {args.n_antennas}")
        sky = read_sky(Path(args.sky))
        for key in ("ra_deg", "dec_deg"):
            if getattr(args, key) is None:
                if key not in sky:
                    raise ValueError(f"--{key.replace('_', '-')} is required (the sky file has no {key})")
                setattr(args, key, float(sky[key]))
        ra, dec, flux = sky_components(sky["image"], sky["cell_arcsec"], args.ra_deg, args.dec_deg,
                                       args.min_flux_jy)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    uvd = template(array, args)
    tic = time.perf_counter()
    if args.engine == "pyuvsim":
        uvd = simulate_pyuvsim(uvd, ra, dec, flux)
        if uvd is None:  # not rank 0
            return 0
    else:
        uvd = simulate_matvis(uvd, ra, dec, flux, array["enu"])
    simulate_s = time.perf_counter() - tic
    n_ranks = 1
    if args.engine == "pyuvsim":
        from pyuvsim import mpi

        n_ranks = mpi.get_Npus()
    info = {
        "engine": args.engine, "mpi_ranks": n_ranks, "n_rows": int(uvd.Nblts), "n_baselines": int(uvd.Nbls),
        "n_times": int(uvd.Ntimes), "n_channels": int(uvd.Nfreqs), "n_visibilities": int(uvd.Nblts * uvd.Nfreqs),
        "n_components": int(flux.size), "flux_simulated_jy": float(flux.sum()),
        "flux_below_min_jy": float(sky["image"].sum() - flux.sum()), "correlations": ["XX", "XY", "YX", "YY"],
        "stokes_convention": "XX = YY = I for an unpolarised sky (CASA: I = (XX + YY) / 2)",
        "sign_convention": "V = sum S exp(+2 pi i (u l + v m + w (n - 1)))",
        "simulate_s": simulate_s, "visibilities_per_s": uvd.Nblts * uvd.Nfreqs / simulate_s,
        "arguments": vars(args), "versions": versions(),
    }
    write_outputs(uvd, args, sky, info, started=total)
    print(json.dumps({key: info[key] for key in ("engine", "mpi_ranks", "n_visibilities", "n_components",
                                                 "simulate_s", "write_s", "total_s", "ms_bytes")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
