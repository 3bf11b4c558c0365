r"""Radio telescope arrays: dish positions shipped as small CSV files, and their baselines.

A file ``data/<name>.csv`` lists one dish per row (``name, east_m, north_m, up_m, diameter_m``): offsets
in metres on the local tangent plane at the array reference, whose geodetic position is given in the
header comments (``# latitude_deg: ...``, ``# longitude_deg: ...``, ``# altitude_m: ...``) beside the
source and licence of the positions. A baseline of the pair :math:`(p, q)`, :math:`p < q`, is the vector
:math:`\mathbf{b}_{pq} = \mathbf{x}_q - \mathbf{x}_p` (east, north, up).

This module imports nothing but numpy: the simulator's environment may read the same files.

>>> meerkat = load_array("meerkat")
>>> meerkat.n_antennas, meerkat.n_baselines
(64, 2016)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["ARRAYS", "AntennaArray", "load_array", "read_array_csv"]

_DATA = Path(__file__).parent / "data"
#: Arrays shipped with the package: name -> CSV file in ``distinv/radio/data``.
ARRAYS = {"meerkat": _DATA / "meerkat.csv"}
_HEADER_KEYS = ("latitude_deg", "longitude_deg", "altitude_m")
_COLUMNS = ("name", "east_m", "north_m", "up_m", "diameter_m")


@dataclass(frozen=True)
class AntennaArray:
    """Dishes of one array: names, east/north/up offsets from the reference, diameters, reference position.

    :param str name: the array's name.
    :param tuple names: one name per dish.
    :param numpy.ndarray enu: ``(n_antennas, 3)`` east, north, up offsets in metres.
    :param numpy.ndarray diameters: ``(n_antennas,)`` dish diameters in metres.
    :param float latitude_deg: geodetic latitude of the reference (WGS84), degrees.
    :param float longitude_deg: longitude of the reference, degrees east.
    :param float altitude_m: height of the reference above the ellipsoid, metres.
    """

    name: str
    names: tuple[str, ...]
    enu: np.ndarray
    diameters: np.ndarray
    latitude_deg: float
    longitude_deg: float
    altitude_m: float

    @property
    def n_antennas(self) -> int:
        """Number of dishes."""
        return len(self.names)

    @property
    def n_baselines(self) -> int:
        """Number of distinct pairs, :math:`n(n-1)/2` (no autocorrelations)."""
        return self.n_antennas * (self.n_antennas - 1) // 2

    def antenna_pairs(self) -> np.ndarray:
        """``(n_baselines, 2)`` dish indices ``(p, q)`` with ``p < q``, ordered by ``p`` then ``q``.

        >>> load_array().antenna_pairs()[:2].tolist()
        [[0, 1], [0, 2]]
        """
        p, q = np.triu_indices(self.n_antennas, k=1)
        return np.stack([p, q], axis=1)

    def baselines(self) -> np.ndarray:
        r"""``(n_baselines, 3)`` east, north, up of :math:`\mathbf{x}_q - \mathbf{x}_p` in metres, pairs as
        :meth:`antenna_pairs`."""
        pairs = self.antenna_pairs()
        return self.enu[pairs[:, 1]] - self.enu[pairs[:, 0]]

    def baseline_lengths(self) -> np.ndarray:
        """``(n_baselines,)`` lengths of :meth:`baselines` in metres (3D, up included).

        >>> lengths = load_array().baseline_lengths()
        >>> round(float(lengths.min())), round(float(lengths.max()))
        (29, 7698)
        """
        return np.linalg.norm(self.baselines(), axis=1)

    def subset(self, n_antennas: int) -> "AntennaArray":
        """The first ``n_antennas`` dishes (small test cases).

        :param int n_antennas: between 2 and :attr:`n_antennas`.

        >>> load_array().subset(4).n_baselines
        6
        """
        if isinstance(n_antennas, bool) or not isinstance(n_antennas, (int, np.integer)):
            raise TypeError(f"n_antennas must be an integer, got {n_antennas!r} ({type(n_antennas).__name__})")
        if not 2 <= n_antennas <= self.n_antennas:
            raise ValueError(f"n_antennas must be between 2 and {self.n_antennas}, got {n_antennas}")
        n = int(n_antennas)
        return AntennaArray(self.name, self.names[:n], self.enu[:n].copy(), self.diameters[:n].copy(),
                            self.latitude_deg, self.longitude_deg, self.altitude_m)


def read_array_csv(path: str | Path, name: str | None = None) -> AntennaArray:
    """Read an array file (see the module notes for its format).

    :param path: the CSV file.
    :param str name: the array's name; default the file's stem.
    :raises ValueError: a header key or a column is missing, or a row does not have 5 fields.
    """
    path = Path(path)
    header: dict[str, float] = {}
    rows: list[list[str]] = []
    columns: list[str] | None = None
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.strip()
        if not text:
            continue
        if text.startswith("#"):
            key, sep, value = text[1:].partition(":")
            if sep and key.strip() in _HEADER_KEYS:
                header[key.strip()] = float(value)
            continue
        fields = [field.strip() for field in text.split(",")]
        if columns is None:
            columns = fields
            if tuple(columns) != _COLUMNS:
                raise ValueError(f"{path}: the column header must be {','.join(_COLUMNS)}, got {text!r}")
            continue
        if len(fields) != len(_COLUMNS):
            raise ValueError(f"{path}, line {number}: expected {len(_COLUMNS)} fields, got {len(fields)}: {text!r}")
        rows.append(fields)
    missing = [key for key in _HEADER_KEYS if key not in header]
    if missing:
        raise ValueError(f"{path}: header comments lack {', '.join(missing)} (lines '# key: value')")
    if len(rows) < 2:
        raise ValueError(f"{path}: an array needs at least 2 dishes, found {len(rows)}")
    values = np.array([[float(v) for v in row[1:]] for row in rows])
    return AntennaArray(name or path.stem, tuple(row[0] for row in rows), values[:, :3], values[:, 3],
                        header["latitude_deg"], header["longitude_deg"], header["altitude_m"])


def load_array(name: str = "meerkat") -> AntennaArray:
    """An array shipped with distinv, by name (see :data:`ARRAYS`).

    :param str name: ``"meerkat"`` (64 dishes of 13.5 m, SARAO positions).
    :raises ValueError: an unknown name.

    >>> round(load_array().latitude_deg, 4)
    -30.7111
    """
    if name not in ARRAYS:
        raise ValueError(f"name must be one of {sorted(ARRAYS)}, got {name!r}")
    return read_array_csv(ARRAYS[name], name=name)
