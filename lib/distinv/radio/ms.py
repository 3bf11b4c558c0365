r"""Read any Measurement Set with python-casacore, one block of rows per rank.

A Measurement Set (MS) is a casacore table with one row per (baseline, time): ``UVW`` in metres, a data
column (``DATA``, ``CORRECTED_DATA``, ``MODEL_DATA``, ...) of shape ``(n_channels, n_correlations)``,
``FLAG`` of the same shape, ``FLAG_ROW``, ``WEIGHT`` (per correlation) or ``WEIGHT_SPECTRUM`` (per channel
and correlation), and ``DATA_DESC_ID``, which selects a spectral window (``SPECTRAL_WINDOW/CHAN_FREQ``)
and a polarisation setup (``POLARIZATION/CORR_TYPE``).

A rank reads only its rows (:func:`rows_for_rank`, then :func:`read_rows`, which calls
``getcol(column, startrow, nrow)``); no rank reads the whole MS. The rows become a flat
:class:`VisibilityBlock` of Stokes-I samples, one per unflagged (row, channel), in row-then-channel order:

- **Stokes I** from the correlations present (CASA's convention, the one of CASA, WSClean and of MSs
  written by pyuvdata): :math:`I = (XX + YY)/2` for linear feeds, :math:`I = (RR + LL)/2` for circular ones,
  ``I`` itself when the MS holds Stokes parameters, and, with a single parallel-hand correlation
  (``XX``, ``YY``, ``RR`` or ``LL`` alone), that correlation, which equals ``I`` only for an
  unpolarised sky (:attr:`MeasurementSetInfo.stokes_i` says which rule was used).
- **Weights**: for :math:`I = \sum_k c_k C_k`, :math:`w_I = 1 / \sum_k c_k^2 / w_k` (inverse variance), from
  ``WEIGHT_SPECTRUM`` when present, else ``WEIGHT`` broadcast over channels; without either (or with
  ``weight_column="none"``) every sample weighs 1.
- **Flags**: a sample is dropped when ``FLAG_ROW`` is set, when any correlation used for ``I`` is flagged,
  when :math:`w_I \le 0` or when the value is not finite (flagged → weight 0 → dropped).
- **Coordinates** in wavelengths per channel: :math:`(u, v, w)\,\nu_c / c`.

The sign convention is the MS's: :math:`V = \sum S\, e^{+2\pi i (u l + v m + w(n-1))}`
(:mod:`distinv.radio.nufft`).

>>> rows_for_rank(10, world=3, rank=0), rows_for_rank(10, world=3, rank=2)
((0, 4), (7, 10))
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from distinv.radio.observation import SPEED_OF_LIGHT

__all__ = ["CORRELATION_TYPES", "MeasurementSetInfo", "VisibilityBlock", "open_measurement_set", "read_rows",
           "read_visibilities", "require_samples", "rows_for_rank"]

#: casacore's Stokes enumeration for the correlations we use (``POLARIZATION/CORR_TYPE``).
CORRELATION_TYPES = {1: "I", 2: "Q", 3: "U", 4: "V", 5: "RR", 6: "RL", 7: "LR", 8: "LL", 9: "XX", 10: "XY",
                     11: "YX", 12: "YY"}
WEIGHT_COLUMNS = ("auto", "WEIGHT_SPECTRUM", "WEIGHT", "none")
_PAIRS = (("XX", "YY"), ("RR", "LL"))


def rows_for_rank(n_rows: int, world: int, rank: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` of rank ``rank`` out of ``world``: contiguous blocks whose sizes differ by at most 1.

    :param int n_rows: rows of the MS.
    :param int world: number of ranks, ``1 <= world <= n_rows``.
    :param int rank: ``0 <= rank < world``.
    :raises ValueError: more ranks than rows, or a rank outside ``[0, world)``.
    """
    for name, value in (("n_rows", n_rows), ("world", world), ("rank", rank)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if world < 1:
        raise ValueError(f"world must be >= 1, got {world}")
    if world > n_rows:
        raise ValueError(f"world={world} ranks but the Measurement Set has only n_rows={n_rows} rows: "
                         f"every rank needs at least one row, use at most {n_rows} ranks")
    if not 0 <= rank < world:
        raise ValueError(f"rank must be in [0, {world}), got {rank}")
    base, extra = divmod(int(n_rows), int(world))
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


@dataclass(frozen=True)
class MeasurementSetInfo:
    """What a reader needs to know about an MS before reading rows (no visibilities).

    :param str path: the MS folder.
    :param int n_rows: rows of the main table.
    :param str column: the data column read.
    :param str weight_column: ``"WEIGHT_SPECTRUM"``, ``"WEIGHT"`` or ``None`` (unit weights).
    :param numpy.ndarray frequencies_hz: ``(n_data_descriptions, n_channels)`` channel frequencies.
    :param tuple correlations: correlation names in the data's last axis (``("XX", "XY", "YX", "YY")``).
    :param str stokes_i: the rule that forms Stokes I, e.g. ``"(XX + YY) / 2"``.
    :param tuple phase_centre_rad: ``(ra, dec)`` of the first field's phase centre.
    """

    path: str
    n_rows: int
    column: str
    weight_column: str | None
    frequencies_hz: np.ndarray
    correlations: tuple[str, ...]
    stokes_i: str
    phase_centre_rad: tuple[float, float]
    _indices: tuple[int, ...] = field(repr=False, default=())
    _coefficients: tuple[float, ...] = field(repr=False, default=())


@dataclass
class VisibilityBlock:
    """Stokes-I samples of a block of rows, one per unflagged (row, channel).

    :param numpy.ndarray uvw: ``(K, 3)`` coordinates in wavelengths.
    :param numpy.ndarray vis: ``(K,)`` complex Stokes-I visibilities (Jy).
    :param numpy.ndarray weight: ``(K,)`` inverse-variance weights, all ``> 0``.
    :param tuple rows: ``(start, stop)`` rows of the MS that were read.
    :param int n_samples: (row, channel) samples in those rows, flagged ones included.
    """

    uvw: np.ndarray
    vis: np.ndarray
    weight: np.ndarray
    rows: tuple[int, int]
    n_samples: int

    @property
    def n_visibilities(self) -> int:
        """Samples kept (unflagged)."""
        return int(self.vis.shape[0])

    @property
    def uv(self) -> np.ndarray:
        """``(K, 2)`` (u, v) in wavelengths (w dropped: the small-field approximation)."""
        return self.uvw[:, :2]

    @classmethod
    def concatenate(cls, blocks: list["VisibilityBlock"]) -> "VisibilityBlock":
        """Consecutive blocks joined (rows from the first start to the last stop)."""
        if not blocks:
            raise ValueError("blocks must hold at least one VisibilityBlock")
        return cls(np.concatenate([b.uvw for b in blocks]), np.concatenate([b.vis for b in blocks]),
                   np.concatenate([b.weight for b in blocks]), (blocks[0].rows[0], blocks[-1].rows[1]),
                   sum(b.n_samples for b in blocks))


# --------------------------------------------------------------------------- opening


def _table(path: str, subtable: str = ""):
    from casacore.tables import table

    return table(path + ("/" + subtable if subtable else ""), readonly=True, ack=False)


def _check_is_ms(path: str) -> None:
    if not os.path.exists(path):
        raise FileNotFoundError(f"path {path!r} does not exist")
    from casacore.tables import tableexists

    if not os.path.isdir(path) or not tableexists(path):
        raise ValueError(f"path {path!r} is not a Measurement Set: not a casacore table folder")
    for subtable in ("SPECTRAL_WINDOW", "POLARIZATION", "DATA_DESCRIPTION"):
        if not tableexists(os.path.join(path, subtable)):
            raise ValueError(f"path {path!r} is not a Measurement Set: it has no {subtable} subtable")


def _stokes_rule(correlations: tuple[str, ...], path: str) -> tuple[str, tuple[int, ...], tuple[float, ...]]:
    if "I" in correlations:
        return "I", (correlations.index("I"),), (1.0,)
    for a, b in _PAIRS:
        if a in correlations and b in correlations:
            return f"({a} + {b}) / 2", (correlations.index(a), correlations.index(b)), (0.5, 0.5)
    for single in ("XX", "YY", "RR", "LL"):
        if single in correlations:
            return (f"{single} (single parallel hand: equals I for an unpolarised sky only)",
                    (correlations.index(single),), (1.0,))
    raise ValueError(f"cannot form Stokes I in {path!r} from the correlations {', '.join(correlations)}: "
                     "need I, XX and YY, RR and LL, or one parallel hand")


def open_measurement_set(path: str | os.PathLike, column: str = "DATA",
                         weight_column: str = "auto") -> MeasurementSetInfo:
    """Check that ``path`` is an MS holding ``column`` and read its metadata (no visibilities).

    :param path: the MS folder.
    :param str column: the data column, e.g. ``"DATA"``, ``"CORRECTED_DATA"``, ``"MODEL_DATA"``.
    :param str weight_column: ``"auto"`` (``WEIGHT_SPECTRUM`` when it holds values, else ``WEIGHT``, else
        none), ``"WEIGHT_SPECTRUM"``, ``"WEIGHT"`` or ``"none"`` (every Stokes-I sample weighs 1).
    :raises FileNotFoundError: ``path`` does not exist.
    :raises ValueError: not an MS, a missing column (the available ones are named), no rows, mixed
        polarisation setups or channel counts, or no way to form Stokes I.
    """
    path = os.fspath(path)
    if weight_column not in WEIGHT_COLUMNS:
        raise ValueError(f"weight_column must be one of {WEIGHT_COLUMNS}, got {weight_column!r}")
    _check_is_ms(path)
    with _table(path) as main:
        names = main.colnames()
        n_rows = main.nrows()
        if "UVW" not in names:
            raise ValueError(f"path {path!r} is not a Measurement Set: its main table has no UVW column")
        if column not in names:
            data_columns = [c for c in names if "complex" in str(main.getcoldesc(c).get("valueType", ""))]
            raise ValueError(f"column={column!r} is not in {path!r}: the data columns are "
                             f"{', '.join(data_columns) or 'none'} (all columns: {', '.join(names)})")
        if n_rows == 0:
            raise ValueError(f"the Measurement Set {path!r} has no rows")
        if weight_column == "auto":
            if "WEIGHT_SPECTRUM" in names and main.iscelldefined("WEIGHT_SPECTRUM", 0):
                weight_column = "WEIGHT_SPECTRUM"
            elif "WEIGHT" in names:
                weight_column = "WEIGHT"
            else:
                weight_column = "none"
        elif weight_column != "none" and weight_column not in names:
            raise ValueError(f"weight_column={weight_column!r} is not in {path!r}: available weight columns are "
                             f"{', '.join(c for c in ('WEIGHT_SPECTRUM', 'WEIGHT') if c in names) or 'none'}")
    with _table(path, "DATA_DESCRIPTION") as ddesc:
        spw_ids = ddesc.getcol("SPECTRAL_WINDOW_ID")
        pol_ids = ddesc.getcol("POLARIZATION_ID")
    with _table(path, "SPECTRAL_WINDOW") as spw:
        channel_counts = {len(spw.getcell("CHAN_FREQ", int(i))) for i in spw_ids}
        if len(channel_counts) != 1:
            raise ValueError(f"{path!r}: spectral windows with different channel counts {sorted(channel_counts)} "
                             "are not supported")
        frequencies = np.stack([np.asarray(spw.getcell("CHAN_FREQ", int(i)), dtype=np.float64) for i in spw_ids])
    with _table(path, "POLARIZATION") as pol:
        setups = {tuple(int(c) for c in pol.getcell("CORR_TYPE", int(i))) for i in pol_ids}
    if len(setups) != 1:
        raise ValueError(f"{path!r}: data descriptions with different correlations {sorted(setups)} are not supported")
    codes = setups.pop()
    correlations = tuple(CORRELATION_TYPES.get(c, f"code {c}") for c in codes)
    rule, indices, coefficients = _stokes_rule(correlations, path)
    phase_centre = (float("nan"), float("nan"))
    from casacore.tables import tableexists

    if tableexists(os.path.join(path, "FIELD")):
        with _table(path, "FIELD") as fields:
            if fields.nrows() > 0:
                direction = np.asarray(fields.getcell("PHASE_DIR", 0), dtype=np.float64).reshape(-1)
                phase_centre = (float(direction[0]), float(direction[1]))
    return MeasurementSetInfo(path, n_rows, column, None if weight_column == "none" else weight_column, frequencies,
                              correlations, rule, phase_centre, indices, coefficients)


# --------------------------------------------------------------------------- reading


def read_rows(info: MeasurementSetInfo | str | os.PathLike, start: int, stop: int,
              column: str = "DATA") -> VisibilityBlock:
    """Rows ``[start, stop)`` of an MS as Stokes-I samples (module notes: Stokes I, weights, flags).

    :param info: an :class:`MeasurementSetInfo` (from :func:`open_measurement_set`), or the MS path.
    :param int start: first row.
    :param int stop: one past the last row, ``start < stop <= n_rows``.
    :param str column: the data column when ``info`` is a path (else ``info.column`` is used).
    :return: a :class:`VisibilityBlock` (it may hold no sample if every one is flagged).
    """
    if not isinstance(info, MeasurementSetInfo):
        info = open_measurement_set(info, column=column)
    if not 0 <= start < stop <= info.n_rows:
        raise ValueError(f"rows [start, stop) must satisfy 0 <= start < stop <= {info.n_rows}, "
                         f"got start={start}, stop={stop}")
    nrow = stop - start
    with _table(info.path) as main:
        uvw = main.getcol("UVW", startrow=start, nrow=nrow).astype(np.float64)
        data = main.getcol(info.column, startrow=start, nrow=nrow)
        names = main.colnames()
        flag = main.getcol("FLAG", startrow=start, nrow=nrow) if "FLAG" in names else np.zeros(data.shape, bool)
        flag_row = (main.getcol("FLAG_ROW", startrow=start, nrow=nrow) if "FLAG_ROW" in names
                    else np.zeros(nrow, bool))
        ddid = (main.getcol("DATA_DESC_ID", startrow=start, nrow=nrow) if "DATA_DESC_ID" in names
                else np.zeros(nrow, int))
        if info.weight_column == "WEIGHT_SPECTRUM":
            weight = main.getcol("WEIGHT_SPECTRUM", startrow=start, nrow=nrow).astype(np.float64)
        elif info.weight_column == "WEIGHT":
            weight = main.getcol("WEIGHT", startrow=start, nrow=nrow).astype(np.float64)[:, None, :]
        else:
            weight = None
    n_channels = data.shape[1]
    indices, coefficients = list(info._indices), np.asarray(info._coefficients)
    vis = np.tensordot(data[:, :, indices], coefficients, axes=([2], [0])).astype(np.complex128)
    if weight is None:
        weight_i = np.ones((nrow, n_channels))
    else:
        parts = np.broadcast_to(weight[:, :, indices], (nrow, n_channels, len(indices)))
        with np.errstate(divide="ignore"):
            variance = np.sum(coefficients**2 / parts, axis=2)
            weight_i = np.where(np.all(parts > 0, axis=2), 1.0 / variance, 0.0)
    keep = (~flag_row[:, None] & ~np.any(flag[:, :, indices], axis=2) & (weight_i > 0) & np.isfinite(vis)
            & np.isfinite(weight_i))
    scale = info.frequencies_hz[ddid] / SPEED_OF_LIGHT  # (nrow, n_channels)
    uvw_lambda = uvw[:, None, :] * scale[:, :, None]
    return VisibilityBlock(uvw_lambda[keep], vis[keep], weight_i[keep], (start, stop), nrow * n_channels)


def require_samples(n_visibilities: int, info: MeasurementSetInfo) -> None:
    """Raise when an MS (all ranks together) left no unflagged sample.

    :raises ValueError: ``n_visibilities == 0``.
    """
    if n_visibilities == 0:
        raise ValueError(f"all rows of {info.path!r} are flagged (or have zero weight) in column {info.column!r}: "
                         f"no visibility left among its {info.n_rows} rows")


def read_visibilities(path: str | os.PathLike, column: str = "DATA", weight_column: str = "auto") -> VisibilityBlock:
    """Every row of an MS in one process (small MSs, tests); see :func:`read_rows`.

    :raises ValueError: every sample is flagged (and the errors of :func:`open_measurement_set`).
    """
    info = open_measurement_set(path, column=column, weight_column=weight_column)
    block = read_rows(info, 0, info.n_rows)
    require_samples(block.n_visibilities, info)
    return block


def measurement_set_bytes(path: str | os.PathLike) -> int:
    """Size of an MS folder on disk, in bytes."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
