r"""Radio skies without download: point sources and procedural extended emission, seeded, on an image grid.

A sky is an ``(N, N)`` float64 image in Jy per pixel: ``img[i, j]`` is the flux at
:math:`l = (j - \lfloor N/2 \rfloor)\,\delta`, :math:`m = (i - \lfloor N/2 \rfloor)\,\delta` (``l`` towards east,
``m`` towards north, :math:`\delta` the cell), the grid of :mod:`distinv.radio.nufft`. It adds up:

- **point sources** (unresolved, one pixel each) with a power-law flux distribution
  :math:`dN/dS \propto S^{-\gamma}` between ``flux_min`` and ``flux_max`` (:math:`\gamma = 1.7` by default,
  close to the Euclidean 2.5 slope of the counts flattened at mJy levels): many faint, few bright;
- **radio galaxies**: a compact core, two opposite jets of decreasing brightness, and two lobes
  (elongated Gaussians) ending in hotspots; lengths, angles, bends, sizes and arm asymmetry are random;
- **diffuse emission**: a few broad, faint Gaussian blobs (halo- or relic-like).

Fluxes span ``flux_max / flux_min`` (:math:`10^4` by default): the high dynamic range of radio images.
Every draw comes from ``numpy.random.default_rng(seed)``: the same seed gives the same sky.

Seeds. :data:`SKY_TRAINING_SEEDS` is reserved for the skies a learned prior trains on; skies of
chapters, tests and benchmarks (``purpose="evaluation"``) must come from outside it, which
:func:`check_sky_seed` (called by :func:`radio_sky`) enforces.

>>> sky = radio_sky(SkyConfig(npix=64), seed=3)
>>> sky.shape, bool((sky >= 0).all()), bool(np.array_equal(sky, radio_sky(SkyConfig(npix=64), seed=3)))
((64, 64), True, True)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["PURPOSES", "SKY_TRAINING_SEEDS", "SKY_PRIOR_TRAIN_SEEDS", "SKY_PRIOR_VALIDATION_SEEDS", "SkyConfig",
           "check_sky_seed", "load_sky", "point_source_sky", "radio_sky", "save_sky", "sky_on_grid", "training_sky"]

#: Seeds reserved for the training skies of a learned prior; every other use draws outside this range.
SKY_TRAINING_SEEDS = range(1_000_000, 2_000_000)
#: The part of the reserved range a prior trains on, and the part held out for its validation.
SKY_PRIOR_TRAIN_SEEDS = range(1_000_000, 1_900_000)
SKY_PRIOR_VALIDATION_SEEDS = range(1_900_000, 2_000_000)
PURPOSES = ("evaluation", "training")


def check_sky_seed(seed: int, purpose: str = "evaluation") -> int:
    """Check that a sky seed suits its purpose: training seeds inside :data:`SKY_TRAINING_SEEDS`, others outside.

    :param int seed: a non-negative integer.
    :param str purpose: ``"evaluation"`` (chapters, tests, benchmarks) or ``"training"`` (a prior's data).
    :return: ``seed``.
    :raises ValueError: an evaluation seed inside the training range, or a training seed outside it.

    >>> check_sky_seed(7)
    7
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {seed!r} ({type(seed).__name__})")
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {PURPOSES}, got {purpose!r}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    reserved = f"[{SKY_TRAINING_SEEDS.start}, {SKY_TRAINING_SEEDS.stop})"
    if purpose == "evaluation" and seed in SKY_TRAINING_SEEDS:
        raise ValueError(f"seed={seed} is reserved for training skies {reserved}: chapter, test and benchmark "
                         "skies must use a seed outside it, so that a trained prior never saw them")
    if purpose == "training" and seed not in SKY_TRAINING_SEEDS:
        raise ValueError(f"seed={seed} is outside the training range {reserved}: training skies must draw "
                         "their seeds from it")
    return int(seed)


@dataclass(frozen=True)
class SkyConfig:
    """What a procedural sky holds.

    :param int npix: image side ``N``.
    :param float cell_arcsec: pixel size in arcseconds (sizes below scale with the image, not the cell).
    :param int n_points: number of point sources.
    :param int n_galaxies: number of radio galaxies.
    :param int n_diffuse: number of diffuse blobs.
    :param float flux_min: faintest point-source flux, Jy.
    :param float flux_max: brightest point-source flux, Jy; galaxies draw their total flux from the same
        law above ``sqrt(flux_min · flux_max)``.
    :param float slope: :math:`\\gamma` of :math:`dN/dS \\propto S^{-\\gamma}`, ``> 1``.
    :param float diffuse_brightness: peak of a diffuse blob, Jy per pixel (faint: a few ``flux_min``).
    """

    npix: int = 256
    cell_arcsec: float = 2.0
    n_points: int = 60
    n_galaxies: int = 4
    n_diffuse: int = 2
    flux_min: float = 1e-4
    flux_max: float = 1.0
    slope: float = 1.7
    diffuse_brightness: float = 3e-5

    def __post_init__(self):
        if isinstance(self.npix, bool) or not isinstance(self.npix, int) or self.npix < 16:
            raise ValueError(f"npix must be an integer >= 16, got {self.npix!r}")
        for name in ("n_points", "n_galaxies", "n_diffuse"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if not 0 < self.flux_min < self.flux_max:
            raise ValueError(f"need 0 < flux_min < flux_max, got flux_min={self.flux_min}, flux_max={self.flux_max}")
        if not self.slope > 1:
            raise ValueError(f"slope must be > 1, got {self.slope}")
        if not self.cell_arcsec > 0:
            raise ValueError(f"cell_arcsec must be > 0, got {self.cell_arcsec}")
        if not self.diffuse_brightness >= 0:
            raise ValueError(f"diffuse_brightness must be >= 0, got {self.diffuse_brightness}")


def _power_law(rng: np.random.Generator, n: int, low: float, high: float, slope: float) -> np.ndarray:
    """``n`` draws of :math:`p(S) \\propto S^{-\\gamma}` on ``[low, high]`` (inverse CDF)."""
    a = 1.0 - slope
    u = rng.random(n)
    return (low**a + u * (high**a - low**a)) ** (1.0 / a)


def _add_gaussian(image: np.ndarray, row: float, col: float, sigma_major: float, sigma_minor: float, angle: float,
                  flux: float) -> None:
    """Add an elliptical Gaussian of total ``flux`` (Jy), evaluated within 5 sigma of its centre."""
    n = image.shape[0]
    reach = int(math.ceil(5 * sigma_major)) + 1
    r0, r1 = max(0, int(row) - reach), min(n, int(row) + reach + 1)
    c0, c1 = max(0, int(col) - reach), min(n, int(col) + reach + 1)
    if r0 >= r1 or c0 >= c1:
        return
    rr, cc = np.meshgrid(np.arange(r0, r1) - row, np.arange(c0, c1) - col, indexing="ij")
    cos, sin = math.cos(angle), math.sin(angle)
    along, across = cc * cos + rr * sin, -cc * sin + rr * cos
    profile = np.exp(-0.5 * ((along / sigma_major) ** 2 + (across / sigma_minor) ** 2))
    image[r0:r1, c0:c1] += flux * profile / (2 * math.pi * sigma_major * sigma_minor)


def _add_radio_galaxy(image: np.ndarray, rng: np.random.Generator, flux: float) -> None:
    """A core, two jets and two lobes with hotspots, sharing ``flux`` Jy (see the module notes)."""
    n = image.shape[0]
    row, col = rng.uniform(0.15 * n, 0.85 * n, size=2)
    angle = rng.uniform(0, math.pi)
    length = rng.uniform(0.04, 0.15) * n
    core_fraction, jet_fraction = rng.uniform(0.02, 0.2), rng.uniform(0.05, 0.15)
    lobe_flux = flux * (1 - core_fraction - jet_fraction) / 2
    image[int(row), int(col)] += flux * core_fraction
    for side in (-1.0, 1.0):
        arm = length * rng.uniform(0.7, 1.3)
        bend = rng.normal(0, 0.15)
        n_knots = max(3, int(arm / 2))
        for k in range(1, n_knots + 1):
            t = k / n_knots
            direction = angle + bend * t * t
            r = row + side * arm * t * math.sin(direction)
            c = col + side * arm * t * math.cos(direction)
            _add_gaussian(image, r, c, 0.8 + 0.5 * t, 0.6, direction, flux * jet_fraction / 2 / n_knots * (1.5 - t))
        direction = angle + bend
        r_end = row + side * arm * math.sin(direction)
        c_end = col + side * arm * math.cos(direction)
        lobe = rng.uniform(0.2, 0.45) * arm
        hotspot = rng.uniform(0.1, 0.4)
        _add_gaussian(image, r_end, c_end, max(1.0, lobe), max(0.8, lobe * rng.uniform(0.4, 0.8)),
                      direction + rng.normal(0, 0.3), lobe_flux * (1 - hotspot))
        _add_gaussian(image, r_end + side * 0.3 * lobe * math.sin(direction),
                      c_end + side * 0.3 * lobe * math.cos(direction), 0.8, 0.8, 0.0, lobe_flux * hotspot)


def radio_sky(config: SkyConfig = SkyConfig(), seed: int = 0, purpose: str = "evaluation") -> np.ndarray:
    """A procedural sky (module notes), ``(N, N)`` float64 in Jy per pixel, non-negative.

    :param SkyConfig config: what the sky holds.
    :param int seed: the random seed (checked by :func:`check_sky_seed` against ``purpose``).
    :param str purpose: ``"evaluation"`` or ``"training"``.
    """
    check_sky_seed(seed, purpose)
    rng = np.random.default_rng(seed)
    n = config.npix
    image = np.zeros((n, n))
    for _ in range(config.n_diffuse):
        row, col = rng.uniform(0.2 * n, 0.8 * n, size=2)
        sigma = rng.uniform(0.04, 0.12) * n
        ratio = rng.uniform(0.5, 1.0)
        peak = config.diffuse_brightness * rng.uniform(0.5, 1.5)
        flux = peak * 2 * math.pi * sigma**2 * ratio
        _add_gaussian(image, row, col, sigma, sigma * ratio, rng.uniform(0, math.pi), flux)
    pivot = math.sqrt(config.flux_min * config.flux_max)
    for flux in _power_law(rng, config.n_galaxies, pivot, config.flux_max, config.slope):
        _add_radio_galaxy(image, rng, float(flux))
    fluxes = _power_law(rng, config.n_points, config.flux_min, config.flux_max, config.slope)
    rows, cols = rng.integers(0, n, size=(2, config.n_points))
    np.add.at(image, (rows, cols), fluxes)
    return image


def training_sky(seed: int, npix: int = 256) -> np.ndarray:
    """A sky of a prior's training set: the contents of :class:`SkyConfig` drawn at random from ``seed`` too.

    Point counts in [10, 200], 0 to 8 radio galaxies, 0 to 4 diffuse blobs, a flux range
    ``flux_max / flux_min`` of 10^2.5 to 10^5 (log-uniform), power-law slope in [1.4, 2.2] and diffuse
    brightness 0.1 to 1 times ``flux_min``: the chapter's default sky lies inside these ranges.

    :param int seed: a seed of :data:`SKY_TRAINING_SEEDS` (checked).
    :param int npix: image side.

    >>> sky = training_sky(1_000_003, 64)
    >>> sky.shape, bool(np.array_equal(sky, training_sky(1_000_003, 64)))
    ((64, 64), True)
    """
    check_sky_seed(seed, "training")
    rng = np.random.default_rng([seed, 1])  # not the stream radio_sky draws from the same seed
    flux_max = 1.0
    config = SkyConfig(npix=npix, n_points=int(rng.integers(10, 201)), n_galaxies=int(rng.integers(0, 9)),
                       n_diffuse=int(rng.integers(0, 5)), flux_min=flux_max / 10 ** rng.uniform(2.5, 5.0),
                       flux_max=flux_max, slope=float(rng.uniform(1.4, 2.2)))
    config = SkyConfig(**{**config.__dict__, "diffuse_brightness": config.flux_min * float(rng.uniform(0.1, 1.0))})
    return radio_sky(config, seed, purpose="training")


def point_source_sky(npix: int, sources: list[tuple[int, int, float]]) -> np.ndarray:
    """An ``(npix, npix)`` sky of unresolved sources ``(row, column, flux_jy)`` on pixel centres.

    >>> float(point_source_sky(8, [(4, 6, 2.5)])[4, 6])
    2.5
    """
    image = np.zeros((npix, npix))
    for row, col, flux in sources:
        if not (0 <= row < npix and 0 <= col < npix):
            raise ValueError(f"source pixel ({row}, {col}) is outside the {npix}x{npix} image")
        image[row, col] += flux
    return image


def save_sky(path: str | os.PathLike, image: np.ndarray, cell_arcsec: float, ra_deg: float, dec_deg: float,
             overwrite: bool = False) -> Path:
    """Write a sky for the simulator (``data_scripts/simulate_observation.py --sky``): an ``.npz`` with
    ``image``, ``cell_arcsec``, ``ra_deg`` and ``dec_deg`` (the phase centre), written atomically.

    :raises FileExistsError: ``path`` exists and ``overwrite`` is false.
    """
    from distinv.files import write_atomically

    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2 or image.shape[0] != image.shape[1]:
        raise ValueError(f"image must be square (N, N), got shape {image.shape}")

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as stream:
            np.savez(stream, image=image, cell_arcsec=float(cell_arcsec), ra_deg=float(ra_deg), dec_deg=float(dec_deg))

    return write_atomically(path, write, overwrite=overwrite, refusal_hint="pass overwrite=True to replace it")


def load_sky(path: str | os.PathLike) -> dict:
    """A sky file as ``{"image", "cell_arcsec", "ra_deg", "dec_deg"}`` (the last two when present)."""
    with np.load(path) as npz:
        return {key: (npz[key] if key == "image" else float(npz[key])) for key in npz.files}


def sky_on_grid(image: np.ndarray, cell_arcsec: float, npix: int, target_cell_arcsec: float) -> tuple[np.ndarray, str]:
    """A sky (Jy per pixel) on another grid: the same image when the grids agree, else its flux re-binned.

    Each pixel of ``image`` is a point component at its centre (as the simulator treats it,
    ``data_scripts/simulate_observation.py``); when the grid differs, every component's flux goes to the
    target pixel nearest its (l, m), so the total flux inside the target field is kept and positions move
    by at most half a target cell. Components outside the target field are dropped (the note says how
    much flux).

    :param numpy.ndarray image: ``(N, N)`` Jy per pixel, ``img[i, j]`` at ``l = (j - N//2)·cell``,
        ``m = (i - N//2)·cell``.
    :param float cell_arcsec: its pixel size.
    :param int npix: target side.
    :param float target_cell_arcsec: target pixel size.
    :return: ``(image on the target grid, a note saying which case applied)``.

    >>> sky = point_source_sky(8, [(4, 6, 2.0)])  # 2 Jy at l = 2 cells, m = 0
    >>> out, note = sky_on_grid(sky, 1.0, 4, 2.0)
    >>> float(out[2, 3]), note.split(":")[0]
    (2.0, 'resampled')
    >>> sky_on_grid(sky, 1.0, 8, 1.0)[1]
    'the grid of the sky file (8² pixels of 1 arcsec)'
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2 or image.shape[0] != image.shape[1]:
        raise ValueError(f"image must be square (N, N), got shape {image.shape}")
    n = image.shape[0]
    if n == npix and math.isclose(cell_arcsec, target_cell_arcsec, rel_tol=1e-9):
        return image.copy(), f"the grid of the sky file ({n}² pixels of {cell_arcsec:g} arcsec)"
    rows, cols = np.nonzero(image)
    l_cells = (cols - n // 2) * cell_arcsec / target_cell_arcsec
    m_cells = (rows - n // 2) * cell_arcsec / target_cell_arcsec
    target_cols = np.floor(l_cells + 0.5).astype(np.int64) + npix // 2
    target_rows = np.floor(m_cells + 0.5).astype(np.int64) + npix // 2
    inside = (target_rows >= 0) & (target_rows < npix) & (target_cols >= 0) & (target_cols < npix)
    out = np.zeros((npix, npix))
    flux = image[rows, cols]
    np.add.at(out, (target_rows[inside], target_cols[inside]), flux[inside])
    dropped = float(flux[~inside].sum())
    note = (f"resampled: {n}² pixels of {cell_arcsec:g} arcsec -> {npix}² of {target_cell_arcsec:g} arcsec, "
            f"each pixel's flux to the nearest target pixel; {dropped:.4g} Jy outside the field dropped")
    return out, note
