r"""Real cone-beam CT data: the CWI walnuts, fetched, corrected and converted for ASTRA's ``cone_vec``.

Source: H. Der Sarkissian, F. Lucka, M. van Eijnatten, G. Colacicco, S. B. Coban, K. J.
Batenburg, "A cone-beam X-ray computed tomography data collection designed for machine
learning", *Scientific Data* 6, 215 (2019), doi:10.1038/s41597-019-0235-y. Data on Zenodo under
CC BY 4.0, one zip per walnut (about 6 GB each, zip64); walnuts 1–8 are record 2686726
(concept DOI 10.5281/zenodo.2686725). Layout of one source orbit ("tube") inside
``WalnutN.zip``, as the authors' reconstruction scripts (github.com/cicwi/WalnutReconstructionCodes)
read it::

    WalnutN/Projections/tubeV{1,2,3}/scan_000000.tif ... scan_001200.tif   projections
    WalnutN/Projections/tubeV{1,2,3}/di000000.tif                          dark field
    WalnutN/Projections/tubeV{1,2,3}/io000000.tif, io000001.tif            flat fields (before, after)
    WalnutN/Projections/tubeV{1,2,3}/scan_geom_corrected.geom              one row per projection

Tube 1 is the highest source position, 2 the middle one (the source in the walnut's mid-plane),
3 the lowest. A geometry row holds 12 numbers in mm: source :math:`s`, detector centre
:math:`d`, and the detector's pixel steps :math:`u` (along a row, to the next column) and
:math:`v` (along a column, to the next row): exactly ASTRA's ``cone_vec`` convention, in which
detector pixel :math:`(r, c)` of an ``R × C`` detector is centred at

.. math::

    p_{rc} = d + \Big(c - \frac{C - 1}{2}\Big) u + \Big(r - \frac{R - 1}{2}\Big) v .

Two things make the images fit those rows (both done by :func:`read_tube`):

1. **Orientation.** The detector was read out in portrait mode: a raw TIFF is ``(768, 972)``, its
   rows being the detector's columns in reverse order. The image in the geometry's convention is
   ``raw[::-1, :].T`` (flip the raw rows, then transpose), ``(972, 768)`` = (rows, columns).
2. **Order.** There are 1201 projections and 1201 geometry rows over one turn, the last at the
   angle of the first; geometry row :math:`k` belongs to ``scan_{1200 - k}`` (the files run the
   other way round). The authors' scripts disagree by one view between versions (``1199 - k`` in
   some); we follow the one consistent with the duplicated end row (``1200 - k``, as in
   ``GroundTruthReconstruction.py`` and in dival's walnut loader). The last row, a repeat of the
   first, is dropped.

Pre-processing, per pixel, with dark :math:`D` and the mean flat :math:`F`:

.. math::

    t = \frac{P - D}{F - D}, \qquad y = -\log \max(t, t_{\min}),

(non-positive or non-finite transmissions, e.g. dead pixels, are clipped to :math:`t_{\min}`),
then optional ``b × b`` binning: the mean of the line integrals :math:`y` over each block (after
the log, so that the binned datum stays linear in the attenuation, as ASTRA models it), the
detector cropped to multiples of ``b`` at its high-index end; :math:`u, v` become :math:`b u, b v`
and the centre moves to the cropped detector's centre. Views can be subsampled (every ``k``-th).
The result is written, atomically, as an ``.npz`` with ``projections`` float32
``(rows, views, cols)`` (ASTRA's 3D sinogram layout), ``vectors`` float64 ``(views, 12)`` in mm
and ``metadata`` (a JSON string: source, licence, settings, file indices).

>>> rows = np.array([[0, -66.0, 0, 0, 133.0, 0, 0.15, 0, 0, 0, 0, 0.15]])
>>> binned_vectors(rows, detector_shape=(5, 4), binning=2)[0].round(3).tolist()
[0.0, -66.0, 0.0, 0.0, 133.0, -0.075, 0.3, 0.0, 0.0, 0.0, 0.0, 0.3]
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import sys
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from distinv.files import write_atomically
from distinv.validation import check_int as _check_int

__all__ = [
    "CITATION",
    "LICENCE",
    "WalnutScan",
    "binned_vectors",
    "bin_image",
    "download",
    "extract_tube",
    "find_tube_dir",
    "line_integrals",
    "load_scan",
    "orient_raw_image",
    "prepare_walnut",
    "read_geometry",
    "read_tube",
    "save_scan",
    "scan_file_name",
    "select_views",
    "walnut_url",
]

CITATION = (
    "H. Der Sarkissian, F. Lucka, M. van Eijnatten, G. Colacicco, S. B. Coban, K. J. Batenburg, "
    "A cone-beam X-ray computed tomography data collection designed for machine learning, "
    "Scientific Data 6, 215 (2019), doi:10.1038/s41597-019-0235-y"
)
LICENCE = "CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/)"
#: Zenodo record holding ``Walnut1.zip`` ... ``Walnut8.zip`` (verified in published loaders).
RECORD_1_TO_8 = 2686726
#: Concept DOIs of the six Zenodo records (walnuts 1–8, 9–16, 17–24, 25–32, 33–37, 38–42).
CONCEPT_DOIS = {
    range(1, 9): "10.5281/zenodo.2686725",
    range(9, 17): "10.5281/zenodo.2686970",
    range(17, 25): "10.5281/zenodo.2687386",
    range(25, 33): "10.5281/zenodo.2687634",
    range(33, 38): "10.5281/zenodo.2687896",
    range(38, 43): "10.5281/zenodo.2688111",
}
GEOMETRY_FILE = "scan_geom_corrected.geom"
DARK_FILE = "di000000.tif"
FLAT_PATTERN = "io*.tif"
SCAN_PATTERN = "scan_*.tif"
#: Transmissions below this (or non-finite) are clipped to it before the log (-log = 6.9).
TRANSMISSION_FLOOR = 1e-3
#: Zenodo turns away requests without a user agent of their own.
USER_AGENT = "distinv-fetch-walnut/0.1 (python urllib)"


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------


def _doi(walnut: int) -> str:
    return next(doi for walnuts, doi in CONCEPT_DOIS.items() if walnut in walnuts)


def walnut_url(walnut: int) -> str:
    """Download URL of ``WalnutN.zip`` (walnuts 1–8; other records: pass the URL yourself).

    :param int walnut: walnut number, in ``[1, 42]``.
    :raises ValueError: a walnut outside 1–8, whose record id we could not verify offline.

    >>> walnut_url(1)
    'https://zenodo.org/records/2686726/files/Walnut1.zip?download=1'
    """
    walnut = _check_int("walnut", walnut, 1, 42)
    if walnut > 8:
        raise ValueError(
            f"walnut={walnut}: only the record of walnuts 1-8 ({RECORD_1_TO_8}) is built in; open "
            f"https://doi.org/{_doi(walnut)}, copy the link of Walnut{walnut}.zip and pass it as url"
        )
    return f"https://zenodo.org/records/{RECORD_1_TO_8}/files/Walnut{walnut}.zip?download=1"


# --------------------------------------------------------------------------------------------
# download and extraction
# --------------------------------------------------------------------------------------------
def _digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _print(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _verify(path: Path, size: int | None, sha256: str | None, md5: str | None) -> None:
    actual = path.stat().st_size
    if size is not None and actual != size:
        raise ValueError(f"{path} has {actual} bytes, expected {size}: delete it and download again")
    for algorithm, expected in (("sha256", sha256), ("md5", md5)):
        actual_digest = _digest(path, algorithm) if expected is not None else None
        if actual_digest is not None and actual_digest != expected.lower():
            raise ValueError(
                f"{algorithm} of {path} is {actual_digest}, expected {expected.lower()}: "
                "the file is corrupt or was replaced; delete it and download again"
            )


def download(url: str, target: str | os.PathLike, size: int | None = None,
             sha256: str | None = None, md5: str | None = None,
             progress: Callable[[str], None] = _print, chunk_bytes: int = 1 << 20) -> Path:
    """Download ``url`` to ``target``, resuming a partial ``<target>.part``, then check it.

    An interrupted download leaves ``<target>.part``; the next call asks the server for the rest
    (HTTP ``Range``) and appends it, or starts again if the server sends the whole file. The
    finished file is checked (byte count, sha256, md5: those given) and renamed onto ``target``
    (atomic): ``target`` exists only complete. An existing ``target`` is checked, not fetched.

    :param str url: ``https://``, ``http://`` or ``file://`` URL.
    :param target: the file to create; its folder is created.
    :param int size: expected byte count, or None.
    :param str sha256: expected hex digest, or None.
    :param str md5: expected hex digest (Zenodo publishes md5), or None.
    :param progress: called with one-line progress messages (default: print to stderr).
    :param int chunk_bytes: read size.
    :return: ``target`` as a path.
    :raises ValueError: the size or a digest differs (the ``.part`` is kept for inspection).

    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp()); (folder / "a.bin").write_bytes(b"walnut")
    6
    >>> download((folder / "a.bin").as_uri(), folder / "b.bin", size=6, progress=len).read_bytes()
    b'walnut'
    """
    target = Path(target)
    if target.is_file():
        _verify(target, size, sha256, md5)
        progress(f"{target} is already there (checked)")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    have = partial.stat().st_size if partial.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as error:
        if error.code != 416 or not have:  # 416: nothing left after the bytes we have
            raise
        _verify(partial, size, sha256, md5)
        os.replace(partial, target)
        progress(f"{target}: complete ({have / 1e6:.1f} MB were already there)")
        return target
    with response:
        resumed = have > 0 and getattr(response, "status", None) == 206
        if have and not resumed:
            progress(f"the server sent the whole file: restarting {partial.name} from 0")
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else size
        done, next_report = have, have
        with open(partial, "ab" if resumed else "wb") as out:
            for block in iter(lambda: response.read(chunk_bytes), b""):
                out.write(block)
                done += len(block)
                if done >= next_report:
                    percent = f" ({100 * done / total:.1f} %)" if total else ""
                    progress(f"{target.name}: {done / 1e6:.1f} MB{percent}")
                    next_report = done + max(chunk_bytes, (total or 0) // 50)
            out.flush()
            os.fsync(out.fileno())
    if total is not None and partial.stat().st_size != total:
        raise ValueError(f"{partial}: got {partial.stat().st_size} bytes, the server announced {total}; "
                         "run again to resume")
    _verify(partial, size, sha256, md5)
    os.replace(partial, target)
    progress(f"{target}: {done / 1e6:.1f} MB, complete")
    return target


def extract_tube(archive: str | os.PathLike, walnut: int, tube: int, dest: str | os.PathLike,
                 progress: Callable[[str], None] = _print) -> Path:
    """Extract one orbit, ``WalnutN/Projections/tubeVt/``, from the walnut's zip into ``dest``.

    Only that folder's files are read (about a third of the archive's projections). A member
    already extracted with the right size is kept; each file is written atomically.

    :param archive: ``WalnutN.zip``.
    :param int walnut: walnut number (the archive's top folder).
    :param int tube: orbit, 1, 2 or 3.
    :param dest: folder receiving ``WalnutN/Projections/tubeVt/``.
    :return: the extracted tube folder.
    :raises ValueError: the archive has no such folder.
    """
    walnut, tube = _check_int("walnut", walnut, 1, 42), _check_int("tube", tube, 1, 3)
    prefix = f"Walnut{walnut}/Projections/tubeV{tube}/"
    dest = Path(dest).resolve()
    with zipfile.ZipFile(archive) as bundle:
        members = [m for m in bundle.infolist() if m.filename.startswith(prefix) and not m.is_dir()]
        if not members:
            raise ValueError(f"{archive} has no files under {prefix!r}: wrong walnut or tube?")
        for count, member in enumerate(members, 1):
            target = (dest / member.filename).resolve()
            if dest not in target.parents:
                raise ValueError(f"{archive}: member {member.filename!r} would leave {dest}")
            if target.is_file() and target.stat().st_size == member.file_size:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)

            def copy(tmp: Path, member=member) -> None:
                with bundle.open(member) as source, open(tmp, "wb") as out:
                    shutil.copyfileobj(source, out, length=1 << 20)

            write_atomically(target, copy)
            if count % 200 == 0 or count == len(members):
                progress(f"extracted {count} / {len(members)} files of {prefix}")
    return dest / prefix


def find_tube_dir(root: str | os.PathLike, walnut: int, tube: int) -> Path:
    """The folder of one orbit under an extracted archive.

    :param root: the folder holding ``WalnutN/`` (or ``WalnutN/`` itself, or the tube folder).
    :raises FileNotFoundError: none of the candidates holds the geometry file.
    """
    root = Path(root)
    candidates = [root / f"Walnut{walnut}" / "Projections" / f"tubeV{tube}",
                  root / "Projections" / f"tubeV{tube}", root]
    for candidate in candidates:
        if (candidate / GEOMETRY_FILE).is_file():
            return candidate
    raise FileNotFoundError(
        f"no {GEOMETRY_FILE} in {', '.join(str(c) for c in candidates)}: expected the extracted "
        f"layout Walnut{walnut}/Projections/tubeV{tube}/"
    )


# --------------------------------------------------------------------------------------------
# reading and correcting
# --------------------------------------------------------------------------------------------
def _imread(path: Path) -> np.ndarray:
    """A TIFF as a numpy array: ``tifffile`` (a scikit-image dependency), else imageio."""
    if not path.is_file():
        raise FileNotFoundError(f"missing image {path}")
    try:
        import tifffile
    except ImportError:  # pragma: no cover - tifffile comes with scikit-image
        import imageio.v3 as iio

        return np.asarray(iio.imread(path))
    return np.asarray(tifffile.imread(path))


def orient_raw_image(raw: np.ndarray) -> np.ndarray:
    """The raw portrait read-out ``(cols, rows)`` as the geometry's ``(rows, cols)`` image.

    ``out[r, c] = raw[C - 1 - c, r]``: flip the raw rows, then transpose.

    >>> orient_raw_image(np.array([[1, 2, 3], [4, 5, 6]])).tolist()
    [[4, 1], [5, 2], [6, 3]]
    """
    return np.ascontiguousarray(raw[::-1, :].T)


def read_geometry(path: str | os.PathLike) -> np.ndarray:
    """The ``(n, 12)`` float64 rows of a ``.geom`` file (source, detector centre, u, v; mm).

    :raises FileNotFoundError: no such file.
    :raises ValueError: rows that do not hold 12 numbers.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"missing geometry file {path}")
    rows = np.loadtxt(path, ndmin=2)
    if rows.shape[1] != 12:
        raise ValueError(f"{path} has rows of {rows.shape[1]} numbers, expected 12 "
                         "(source, detector centre, u, v)")
    return rows


def scan_file_name(row: int, rows: int) -> str:
    """Projection file of geometry row ``row`` out of ``rows``: ``scan_{rows - 1 - row}``.

    >>> scan_file_name(0, 1201), scan_file_name(1200, 1201)
    ('scan_001200.tif', 'scan_000000.tif')
    """
    return f"scan_{rows - 1 - row:06d}.tif"


def select_views(geometry: np.ndarray, every: int = 1) -> np.ndarray:
    """Geometry rows to use: one full turn (a last row repeating the first is dropped), every k-th.

    The last row counts as a repeat when its source lies closer to the first's than half the
    median step between consecutive sources.

    :param numpy.ndarray geometry: ``(n, 12)`` rows.
    :param int every: keep rows ``0, every, 2 every, ...``.

    >>> angles = np.linspace(0, 2 * np.pi, 9)  # 8 views and a repeat of the first
    >>> rows = np.zeros((9, 12)); rows[:, 0], rows[:, 1] = np.cos(angles), np.sin(angles)
    >>> select_views(rows, every=3).tolist()
    [0, 3, 6]
    """
    every = _check_int("every", every, 1)
    sources = geometry[:, :3]
    n = len(geometry)
    if n >= 3:
        step = np.median(np.linalg.norm(np.diff(sources, axis=0), axis=1))
        if np.linalg.norm(sources[-1] - sources[0]) < 0.5 * step:
            n -= 1
    return np.arange(0, n, every)


def line_integrals(projection: np.ndarray, dark: np.ndarray, flat: np.ndarray,
                   floor: float = TRANSMISSION_FLOOR) -> np.ndarray:
    """:math:`-\\log \\max((P - D) / (F - D), t_{\\min})`, float32 (non-finite ratios → the floor).

    :param projection: raw counts :math:`P`.
    :param dark: dark field :math:`D`.
    :param flat: (mean) flat field :math:`F`.
    :param float floor: :math:`t_{\\min} > 0`.

    >>> line_integrals(np.array([550.0, 1000.0, 100.0]), np.full(3, 100.0), np.full(3, 1000.0)).round(4)
    array([0.6931, 0.    , 6.9078], dtype=float32)
    """
    if not floor > 0:
        raise ValueError(f"floor must be > 0, got {floor!r}")
    projection, dark, flat = (np.asarray(a, dtype=np.float64) for a in (projection, dark, flat))
    with np.errstate(divide="ignore", invalid="ignore"):
        transmission = (projection - dark) / (flat - dark)
    transmission = np.where(np.isfinite(transmission) & (transmission > floor), transmission, floor)
    return (0.0 - np.log(transmission)).astype(np.float32)  # 0 - log: no -0.0


def bin_image(image: np.ndarray, binning: int) -> np.ndarray:
    """Means of ``binning × binning`` blocks; the last rows/columns that do not fill a block are cut.

    >>> bin_image(np.arange(20.0).reshape(4, 5), 2).tolist()
    [[3.0, 5.0], [13.0, 15.0]]
    """
    binning = _check_int("binning", binning, 1)
    if binning == 1:
        return image
    rows, cols = image.shape[0] // binning, image.shape[1] // binning
    if rows == 0 or cols == 0:
        raise ValueError(f"binning={binning} exceeds the detector {image.shape}")
    blocks = image[: rows * binning, : cols * binning].reshape(rows, binning, cols, binning)
    return blocks.mean(axis=(1, 3), dtype=np.float64).astype(image.dtype)


def binned_vectors(geometry: np.ndarray, detector_shape: tuple[int, int], binning: int = 1) -> np.ndarray:
    """ASTRA ``cone_vec`` rows for the binned detector.

    With :math:`R' = b\\lfloor R/b\\rfloor` rows and :math:`C'` columns kept (the first ones),
    :math:`u \\to b u`, :math:`v \\to b v` and :math:`d \\to d - \\frac{R - R'}{2} v - \\frac{C - C'}{2} u`
    (the centre of the kept pixels); :math:`s` is unchanged.

    :param numpy.ndarray geometry: ``(n, 12)`` rows ``(s, d, u, v)``.
    :param tuple detector_shape: ``(R, C)`` of the unbinned, oriented images.
    :param int binning: :math:`b \\ge 1`.
    :return: ``(n, 12)`` float64.
    """
    binning = _check_int("binning", binning, 1)
    geometry = np.asarray(geometry, dtype=np.float64)
    if geometry.ndim != 2 or geometry.shape[1] != 12:
        raise ValueError(f"geometry must have shape (n, 12), got {geometry.shape}")
    rows, cols = detector_shape
    kept_rows, kept_cols = rows // binning * binning, cols // binning * binning
    out = geometry.copy()
    u, v = geometry[:, 6:9], geometry[:, 9:12]
    out[:, 3:6] -= 0.5 * (rows - kept_rows) * v + 0.5 * (cols - kept_cols) * u
    out[:, 6:9] = binning * u
    out[:, 9:12] = binning * v
    return out


@dataclass
class WalnutScan:
    """One corrected orbit: ASTRA-ready projections, their ``cone_vec`` rows and provenance.

    :param numpy.ndarray projections: float32 ``(rows, views, cols)`` line integrals.
    :param numpy.ndarray vectors: float64 ``(views, 12)`` ``cone_vec`` rows in mm.
    :param dict metadata: source, licence, settings (JSON-serialisable).
    """

    projections: np.ndarray
    vectors: np.ndarray
    metadata: dict = field(default_factory=dict)

    def vectors_in_voxels(self, voxel_size_mm: float) -> np.ndarray:
        """The vectors in units of a voxel side, for an ASTRA volume of unit voxels centred at 0.

        :param float voxel_size_mm: voxel side in mm (the authors reconstruct at 0.1 mm).
        """
        if not voxel_size_mm > 0:
            raise ValueError(f"voxel_size_mm must be > 0, got {voxel_size_mm!r}")
        return self.vectors / voxel_size_mm

    def astra_geometry(self, voxel_size_mm: float = 1.0) -> dict:
        """ASTRA's ``cone_vec`` projection geometry (vectors divided by ``voxel_size_mm``)."""
        import astra

        rows, _, cols = self.projections.shape
        return astra.create_proj_geom("cone_vec", rows, cols, self.vectors_in_voxels(voxel_size_mm))


def read_tube(tube_dir: str | os.PathLike, binning: int = 1, every: int = 1,
              floor: float = TRANSMISSION_FLOOR,
              progress: Callable[[str], None] = _print) -> WalnutScan:
    """Read, correct, bin and subsample one orbit of an extracted walnut archive.

    Projections are read one at a time (memory: the result plus one image).

    :param tube_dir: ``WalnutN/Projections/tubeVt/``.
    :param int binning: detector binning :math:`b \\ge 1`.
    :param int every: keep every ``every``-th view of the turn.
    :param float floor: transmission floor :math:`t_{\\min}` before the log.
    :param progress: called with progress messages.
    :raises FileNotFoundError: a missing geometry, dark, flat or projection file.
    :raises ValueError: the number of projection files differs from the number of geometry rows,
        or images of different shapes.
    """
    tube_dir = Path(tube_dir)
    binning, every = _check_int("binning", binning, 1), _check_int("every", every, 1)
    geometry = read_geometry(tube_dir / GEOMETRY_FILE)
    scans = sorted(tube_dir.glob(SCAN_PATTERN))
    if len(scans) != len(geometry):
        raise ValueError(
            f"{tube_dir} has {len(scans)} projection files ({SCAN_PATTERN}) but {GEOMETRY_FILE} has "
            f"{len(geometry)} rows: they must match (one row per projection)"
        )
    flats = sorted(tube_dir.glob(FLAT_PATTERN))
    if not flats:
        raise FileNotFoundError(f"no flat field ({FLAT_PATTERN}) in {tube_dir}")
    dark = orient_raw_image(_imread(tube_dir / DARK_FILE)).astype(np.float64)
    flat = np.mean([orient_raw_image(_imread(f)).astype(np.float64) for f in flats], axis=0)
    if flat.shape != dark.shape:
        raise ValueError(f"flat fields {flat.shape} and dark field {dark.shape} differ in shape")
    views = select_views(geometry, every)
    detector = dark.shape
    rows_b, cols_b = detector[0] // binning, detector[1] // binning
    if rows_b == 0 or cols_b == 0:
        raise ValueError(f"binning={binning} exceeds the detector {detector}")
    projections = np.empty((rows_b, len(views), cols_b), dtype=np.float32)
    names = []
    for index, row in enumerate(views):
        name = scan_file_name(int(row), len(geometry))
        raw = orient_raw_image(_imread(tube_dir / name))
        if raw.shape != detector:
            raise ValueError(f"{tube_dir / name} is {raw.shape} once oriented, the dark field {detector}")
        projections[:, index, :] = bin_image(line_integrals(raw, dark, flat, floor), binning)
        names.append(name)
        if (index + 1) % 100 == 0 or index + 1 == len(views):
            progress(f"read {index + 1} / {len(views)} projections of {tube_dir}")
    metadata = {
        "source": CITATION,
        "licence": LICENCE,
        "tube_dir": str(tube_dir),
        "geometry_rows": len(geometry),
        "views": len(views),
        "geometry_row_indices": views.tolist(),
        "projection_files": names,
        "detector_shape_unbinned": list(detector),
        "binning": binning,
        "every": every,
        "transmission_floor": floor,
        "units": "mm",
        "layout": "projections (rows, views, cols): ASTRA 3D sinogram; vectors cone_vec (s, d, u, v)",
        "orientation": "image = raw[::-1, :].T; geometry row k <-> scan_{n-1-k}",
    }
    return WalnutScan(projections, binned_vectors(geometry[views], detector, binning), metadata)


# --------------------------------------------------------------------------------------------
# saving, loading, the whole pipeline
# --------------------------------------------------------------------------------------------
def save_scan(scan: WalnutScan, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``projections``, ``vectors`` and ``metadata`` (JSON) to an ``.npz``, atomically.

    :param WalnutScan scan: what to write.
    :param path: the ``.npz`` file.
    :param bool overwrite: replace an existing file.
    :raises FileExistsError: ``path`` exists and ``overwrite`` is false.

    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "scan.npz"
    >>> scan = WalnutScan(np.zeros((2, 3, 4), np.float32), np.ones((3, 12)), {"walnut": 1})
    >>> load_scan(save_scan(scan, path)).metadata
    {'walnut': 1}
    """
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, projections=scan.projections, vectors=scan.vectors,
                     metadata=np.array(json.dumps(scan.metadata)))

    return write_atomically(path, write, overwrite=overwrite, refusal_hint="pass --force to overwrite it")


def load_scan(path: str | os.PathLike) -> WalnutScan:
    """Read an ``.npz`` written by :func:`save_scan` (no pickles).

    :param path: the ``.npz`` file.
    """
    with np.load(path, allow_pickle=False) as archive:
        return WalnutScan(archive["projections"], archive["vectors"], json.loads(str(archive["metadata"])))


def prepare_walnut(walnut: int, tube: int, out_dir: str | os.PathLike, from_dir: str | os.PathLike | None = None,
                   url: str | None = None, binning: int = 1, every: int = 1,
                   size: int | None = None, sha256: str | None = None, md5: str | None = None,
                   force: bool = False, progress: Callable[[str], None] = _print) -> Path:
    """Fetch (or read) one orbit of one walnut and write ``walnut{N}_tube{t}_bin{b}_every{k}.npz``.

    Without ``from_dir``: download ``WalnutN.zip`` into ``out_dir`` (resumable, see
    :func:`download`; the sha256 of the first complete download is recorded in
    ``WalnutN.zip.sha256`` and checked on every later use, unless ``sha256`` is given), extract the
    tube into ``out_dir/extracted``, then convert.

    :param int walnut: 1..42 (a URL is built in for 1–8 only, see :func:`walnut_url`).
    :param int tube: source orbit 1 (high), 2 (middle) or 3 (low).
    :param out_dir: where the zip, the extracted tube and the ``.npz`` go.
    :param from_dir: an already extracted archive (see :func:`find_tube_dir`): no download.
    :param str url: the zip's URL (default :func:`walnut_url`); ``file://`` works.
    :param int binning: detector binning.
    :param int every: view subsampling.
    :param int size: expected zip size in bytes, if known.
    :param str sha256: expected zip sha256, if known.
    :param str md5: expected zip md5 (as Zenodo lists it), if known.
    :param bool force: overwrite an existing ``.npz``.
    :return: the ``.npz`` path.
    """
    walnut, tube = _check_int("walnut", walnut, 1, 42), _check_int("tube", tube, 1, 3)
    binning, every = _check_int("binning", binning, 1), _check_int("every", every, 1)  # before 6 GB
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"walnut{walnut}_tube{tube}_bin{binning}_every{every}.npz"
    if target.exists() and not force:
        raise FileExistsError(f"{target} exists: pass --force to overwrite it")
    source_url = None
    if from_dir is None:
        source_url = url or walnut_url(walnut)
        archive = out_dir / f"Walnut{walnut}.zip"
        record = archive.with_name(archive.name + ".sha256")
        recorded = record.read_text().split()[0] if (sha256 is None and record.is_file()) else None
        download(source_url, archive, size=size, sha256=sha256 or recorded, md5=md5, progress=progress)
        if not record.is_file():
            digest = f"{_digest(archive, 'sha256')}  {archive.name}\n"
            write_atomically(record, lambda tmp: tmp.write_text(digest))
        tube_dir = extract_tube(archive, walnut, tube, out_dir / "extracted", progress=progress)
    else:
        tube_dir = find_tube_dir(from_dir, walnut, tube)
    scan = read_tube(tube_dir, binning=binning, every=every, progress=progress)
    scan.metadata.update({
        "walnut": walnut,
        "tube": tube,
        "doi": _doi(walnut),
        "url": source_url,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    })
    save_scan(scan, target, overwrite=force)
    progress(f"wrote {target}: projections {scan.projections.shape}, vectors {scan.vectors.shape}")
    return target
