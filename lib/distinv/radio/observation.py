r"""An observation by earth rotation: phase centre, times, channels, array → baseline coordinates (u, v, w).

A baseline :math:`(E, N, U)` (metres, east/north/up at latitude :math:`\phi`) is first written in the
equatorial frame (:math:`X` towards hour angle 0 on the equator, :math:`Y` towards :math:`-6^h`, i.e. east,
:math:`Z` towards the north celestial pole):

.. math::

    X = -N \sin\phi + U\cos\phi, \qquad Y = E, \qquad Z = N\cos\phi + U\sin\phi,

then projected towards the phase centre :math:`(\alpha_0, \delta_0)` at hour angle
:math:`H = \mathrm{LST} - \alpha_0` (Thompson, Moran & Swenson, eq. 4.1):

.. math::

    \begin{pmatrix} u \\ v \\ w \end{pmatrix} =
    \begin{pmatrix} \sin H & \cos H & 0 \\
                    -\sin\delta_0\cos H & \sin\delta_0\sin H & \cos\delta_0 \\
                    \cos\delta_0\cos H & -\cos\delta_0\sin H & \sin\delta_0 \end{pmatrix}
    \begin{pmatrix} X \\ Y \\ Z \end{pmatrix}.

:math:`u` points east and :math:`v` north in the plane of the sky, :math:`w` towards the phase centre.
The local sidereal time is GMST (IAU 1982, UT1 taken as UTC) plus the array's east longitude; the phase
centre, given in J2000 (ICRS), is precessed to the mean equinox of the track's middle (IAU 1976), and
:math:`(u, v)` are then turned by the angle :math:`\chi` between the north of date and J2000's north at the
phase centre, so that :math:`l, m` are J2000 offsets, as in a Measurement Set phased to a J2000 direction
by pyuvdata. Nutation and aberration are left out: (u, v, w) agree with pyuvdata's apparent-place ones
to about 1e-4 of the baseline (tested on a pyuvsim Measurement Set), which serves uv coverage, counts and
simulations on the torch side; imaging an MS uses the UVW stored in it. Sources below the horizon and
shadowing are not modelled.

**Sign.** The (u, v, w) of the pair :math:`(p, q)`, :math:`p < q` (``ANTENNA1 = p``, ``ANTENNA2 = q``) are those
of :math:`\mathbf{x}_p - \mathbf{x}_q`, as a Measurement Set stores them (CASA's convention, written so by
pyuvdata), so that :math:`V = \sum S\, e^{+2\pi i (u l + v m + w(n-1))}` (:mod:`distinv.radio.nufft`).

>>> obs = ObservationConfig(duration_s=3600.0, integration_s=60.0, n_channels=4)
>>> obs.n_times, obs.n_visibilities
(60, 483840)
>>> obs.uvw_m().shape
(60, 2016, 3)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timezone

import numpy as np

from distinv.radio.array import AntennaArray, load_array

__all__ = ["ObservationConfig", "SPEED_OF_LIGHT", "gmst_rad", "precess_from_j2000", "precession_matrix",
           "uvw_from_baselines", "unix_from_iso"]

#: Speed of light in vacuum, m/s.
SPEED_OF_LIGHT = 299_792_458.0
_UNIX_EPOCH_JD = 2_440_587.5
_J2000_JD = 2_451_545.0
_SIDEREAL_RATE = 1.002_737_909_350_795  # sidereal seconds per solar second


def unix_from_iso(text: str) -> float:
    """Seconds since 1970-01-01 UTC of an ISO 8601 date-time (UTC when no offset is given).

    >>> unix_from_iso("2000-01-01T12:00:00")
    946728000.0
    """
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValueError(f"start must be an ISO 8601 date-time such as '2026-03-21T20:00:00', got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def gmst_rad(unix_seconds: np.ndarray | float) -> np.ndarray:
    """Greenwich mean sidereal time (IAU 1982 expression, UT1 = UTC) in radians, in ``[0, 2π)``.

    :param unix_seconds: seconds since 1970-01-01 UTC.

    >>> round(float(gmst_rad(946728000.0)) * 12 / math.pi, 4)  # J2000.0: 18.697374558 h
    18.6974
    """
    days = np.asarray(unix_seconds, dtype=np.float64) / 86_400.0 + _UNIX_EPOCH_JD - _J2000_JD
    centuries = days / 36_525.0
    degrees = (280.460_618_37 + 360.985_647_366_29 * days + 0.000_387_933 * centuries**2
               - centuries**3 / 38_710_000.0)
    return np.deg2rad(np.mod(degrees, 360.0))


def precession_matrix(unix_seconds: float) -> np.ndarray:
    r"""The rotation from J2000 to the mean equator and equinox of date (IAU 1976):
    :math:`P = R_3(-z)\,R_2(\theta)\,R_3(-\zeta)`, applied to unit vectors :math:`(\cos\delta\cos\alpha,
    \cos\delta\sin\alpha, \sin\delta)`.

    :param float unix_seconds: the date, seconds since 1970 UTC.
    """
    t = (unix_seconds / 86_400.0 + _UNIX_EPOCH_JD - _J2000_JD) / 36_525.0
    arcsec = math.pi / (180 * 3600)
    zeta = (2306.2181 * t + 0.30188 * t**2 + 0.017998 * t**3) * arcsec
    z = (2306.2181 * t + 1.09468 * t**2 + 0.018203 * t**3) * arcsec
    theta = (2004.3109 * t - 0.42665 * t**2 - 0.041833 * t**3) * arcsec

    def r3(angle):
        c, s = math.cos(angle), math.sin(angle)
        return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])

    c, s = math.cos(theta), math.sin(theta)
    r2 = np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])
    return r3(-z) @ r2 @ r3(-zeta)


def _unit(ra: float, dec: float) -> np.ndarray:
    return np.array([math.cos(dec) * math.cos(ra), math.cos(dec) * math.sin(ra), math.sin(dec)])


def _east_north(ra: float, dec: float) -> tuple[np.ndarray, np.ndarray]:
    east = np.array([-math.sin(ra), math.cos(ra), 0.0])
    north = np.array([-math.sin(dec) * math.cos(ra), -math.sin(dec) * math.sin(ra), math.cos(dec)])
    return east, north


def precess_from_j2000(ra_rad: float, dec_rad: float, unix_seconds: float) -> tuple[float, float, float]:
    """Mean (RA, Dec) of date of a J2000 direction, and the angle from the north of date to J2000's north there.

    :param float ra_rad: J2000 right ascension, radians.
    :param float dec_rad: J2000 declination, radians.
    :param float unix_seconds: the date, seconds since 1970 UTC.
    :return: ``(ra, dec, chi)``: J2000's north at the source is ``cos χ · north + sin χ · east`` of date.

    >>> ra, dec, chi = precess_from_j2000(0.0, 0.0, unix_from_iso("2050-01-01T12:00:00"))
    >>> round(math.degrees(ra), 3), round(math.degrees(dec), 3), round(math.degrees(chi), 3)
    (0.641, 0.278, 0.002)
    """
    matrix = precession_matrix(unix_seconds)
    x, y, z = matrix @ _unit(ra_rad, dec_rad)
    ra, dec = math.atan2(y, x), math.asin(max(-1.0, min(1.0, z)))
    east, north = _east_north(ra, dec)
    north_j2000 = matrix @ _east_north(ra_rad, dec_rad)[1]
    return ra, dec, math.atan2(float(north_j2000 @ east), float(north_j2000 @ north))


def uvw_from_baselines(enu: np.ndarray, latitude_rad: float, hour_angle_rad: np.ndarray,
                       declination_rad: float) -> np.ndarray:
    """(u, v, w) in metres of east/north/up baselines at the given hour angles (module notes).

    :param numpy.ndarray enu: ``(n_baselines, 3)`` baselines in metres.
    :param float latitude_rad: the array's latitude.
    :param numpy.ndarray hour_angle_rad: ``(n_times,)`` hour angles of the phase centre.
    :param float declination_rad: declination of the phase centre.
    :return: ``(n_times, n_baselines, 3)``.

    An east-west baseline traces an ellipse of axes ``b`` and ``b |sin δ|``:

    >>> uvw = uvw_from_baselines(np.array([[100.0, 0, 0]]), 0.3, np.array([0.0, math.pi / 2]), -0.5)
    >>> np.round(uvw[:, 0], 3).tolist()
    [[100.0, 0.0, 0.0], [0.0, -47.943, -87.758]]
    """
    enu = np.asarray(enu, dtype=np.float64)
    east, north, up = enu[:, 0], enu[:, 1], enu[:, 2]
    sin_lat, cos_lat = math.sin(latitude_rad), math.cos(latitude_rad)
    x = -north * sin_lat + up * cos_lat
    y = east
    z = north * cos_lat + up * sin_lat
    h = np.asarray(hour_angle_rad, dtype=np.float64)[:, None]
    sin_h, cos_h = np.sin(h), np.cos(h)
    sin_d, cos_d = math.sin(declination_rad), math.cos(declination_rad)
    u = sin_h * x + cos_h * y
    v = -sin_d * cos_h * x + sin_d * sin_h * y + cos_d * z
    w = cos_d * cos_h * x - cos_d * sin_h * y + sin_d * z
    return np.stack([u, v, w], axis=-1)


@dataclass(frozen=True)
class ObservationConfig:
    r"""One track: phase centre, start, duration, integration, channels and array.

    Times are the centres of the integrations, ``start + (k + 1/2)·integration_s``. Channel ``c`` is at
    ``freq_start_hz + c·channel_width_hz``. With ``start=None`` the track is centred on the phase centre's
    transit on 2026-03-21 (highest elevation, best coverage).

    :param float ra_deg: right ascension of the phase centre, degrees.
    :param float dec_deg: declination of the phase centre, degrees.
    :param str start: ISO 8601 UTC start (``"2026-03-21T20:00:00"``) or ``None`` (centred on transit).
    :param float duration_s: length of the track, seconds.
    :param float integration_s: integration time per sample, seconds.
    :param float freq_start_hz: frequency of the first channel, Hz.
    :param float channel_width_hz: channel spacing, Hz.
    :param int n_channels: number of channels.
    :param str array: an array name of :data:`~distinv.radio.array.ARRAYS`.
    :param int n_antennas: use the first ``n_antennas`` dishes only (small cases); ``None`` = all.
    """

    ra_deg: float = 60.0
    dec_deg: float = -30.0
    start: str | None = None
    duration_s: float = 4 * 3600.0
    integration_s: float = 8.0
    freq_start_hz: float = 1.284e9
    channel_width_hz: float = 1.0e6
    n_channels: int = 1
    array: str = "meerkat"
    n_antennas: int | None = None

    def __post_init__(self):
        for name in ("ra_deg", "dec_deg", "duration_s", "integration_s", "freq_start_hz", "channel_width_hz"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise TypeError(f"{name} must be a finite number, got {value!r}")
        if not -90.0 <= self.dec_deg <= 90.0:
            raise ValueError(f"dec_deg must be in [-90, 90], got {self.dec_deg}")
        for name in ("duration_s", "integration_s", "freq_start_hz"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.integration_s > self.duration_s:
            raise ValueError(f"integration_s must be <= duration_s={self.duration_s}, got {self.integration_s}")
        if isinstance(self.n_channels, bool) or not isinstance(self.n_channels, int) or self.n_channels < 1:
            raise ValueError(f"n_channels must be an integer >= 1, got {self.n_channels!r}")
        if self.start is not None:
            unix_from_iso(self.start)

    # ------------------------------------------------------------------ geometry
    def antenna_array(self) -> AntennaArray:
        """The array (its first :attr:`n_antennas` dishes when set)."""
        array = load_array(self.array)
        return array if self.n_antennas is None else array.subset(self.n_antennas)

    @property
    def n_times(self) -> int:
        """Number of integrations, ``round(duration_s / integration_s)`` (at least 1)."""
        return max(1, round(self.duration_s / self.integration_s))

    @property
    def n_baselines(self) -> int:
        """Number of baselines (no autocorrelations)."""
        return self.antenna_array().n_baselines

    @property
    def n_visibilities(self) -> int:
        """Times × baselines × channels (one Stokes-I visibility each)."""
        return self.n_times * self.n_baselines * self.n_channels

    def frequencies_hz(self) -> np.ndarray:
        """``(n_channels,)`` channel frequencies in Hz."""
        return self.freq_start_hz + self.channel_width_hz * np.arange(self.n_channels)

    def start_unix(self) -> float:
        """Start of the track in seconds since 1970 UTC (transit-centred when :attr:`start` is ``None``)."""
        if self.start is not None:
            return unix_from_iso(self.start)
        day = unix_from_iso("2026-03-21T00:00:00")
        longitude = math.radians(self.antenna_array().longitude_deg)
        lst0 = float(gmst_rad(day)) + longitude
        ra = precess_from_j2000(math.radians(self.ra_deg), math.radians(self.dec_deg), day)[0]
        to_transit = np.mod(ra - lst0, 2 * math.pi) / (2 * math.pi) * 86_400.0
        return day + to_transit / _SIDEREAL_RATE - self.duration_s / 2

    def start_iso(self) -> str:
        """:meth:`start_unix` as an ISO 8601 UTC string (seconds rounded to microseconds).

        >>> ObservationConfig(start="2026-01-02T03:04:05").start_iso()
        '2026-01-02T03:04:05+00:00'
        """
        return datetime.fromtimestamp(self.start_unix(), tz=timezone.utc).isoformat()

    def times_unix(self) -> np.ndarray:
        """``(n_times,)`` centres of the integrations, seconds since 1970 UTC."""
        return self.start_unix() + self.integration_s * (np.arange(self.n_times) + 0.5)

    def phase_centre_of_date(self) -> tuple[float, float, float]:
        """The phase centre precessed to the middle of the track: ``(ra, dec, chi)`` in radians
        (:func:`precess_from_j2000`)."""
        middle = self.start_unix() + self.duration_s / 2
        return precess_from_j2000(math.radians(self.ra_deg), math.radians(self.dec_deg), middle)

    def hour_angles_rad(self) -> np.ndarray:
        """``(n_times,)`` hour angles of the phase centre (of date), radians in ``(-π, π]``."""
        lst = gmst_rad(self.times_unix()) + math.radians(self.antenna_array().longitude_deg)
        ra = self.phase_centre_of_date()[0]
        return np.mod(lst - ra + math.pi, 2 * math.pi) - math.pi

    def uvw_m(self) -> np.ndarray:
        """``(n_times, n_baselines, 3)`` (u, v, w) in metres, as a Measurement Set stores them (module notes):
        ``w`` towards the phase centre of date, ``u`` and ``v`` along J2000's east and north there."""
        array = self.antenna_array()
        _, dec, chi = self.phase_centre_of_date()
        uvw = uvw_from_baselines(-array.baselines(), math.radians(array.latitude_deg), self.hour_angles_rad(), dec)
        u, v = uvw[..., 0].copy(), uvw[..., 1].copy()
        uvw[..., 0] = u * math.cos(chi) - v * math.sin(chi)
        uvw[..., 1] = u * math.sin(chi) + v * math.cos(chi)
        return uvw

    def uvw_wavelengths(self) -> np.ndarray:
        """``(n_visibilities, 3)`` coordinates in wavelengths, ordered time, baseline, channel."""
        scale = self.frequencies_hz() / SPEED_OF_LIGHT
        return (self.uvw_m()[:, :, None, :] * scale[None, None, :, None]).reshape(-1, 3)

    def simulator_arguments(self) -> list[str]:
        """This track as arguments of ``data_scripts/simulate_observation.py`` (the start resolved to UTC).

        >>> ObservationConfig(start="2026-01-02T03:04:05", n_channels=2).simulator_arguments()[:4]
        ['--ra-deg', '60.0', '--dec-deg', '-30.0']
        """
        from distinv.radio.array import ARRAYS

        args = ["--ra-deg", repr(float(self.ra_deg)), "--dec-deg", repr(float(self.dec_deg)),
                "--start", datetime.fromtimestamp(self.start_unix(), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f"),
                "--duration-s", repr(float(self.duration_s)), "--integration-s", repr(float(self.integration_s)),
                "--freq-start-hz", repr(float(self.freq_start_hz)),
                "--channel-width-hz", repr(float(self.channel_width_hz)), "--n-channels", str(self.n_channels),
                "--array-csv", str(ARRAYS[self.array])]
        if self.n_antennas is not None:
            args += ["--n-antennas", str(self.n_antennas)]
        return args

    # ------------------------------------------------------------------ sizes
    def with_visibilities(self, n_visibilities: int) -> "ObservationConfig":
        """The same track sampled with enough integrations for at least ``n_visibilities``.

        The duration and channels stay; the integration time becomes ``duration / n_times`` with
        ``n_times = ceil(n_visibilities / (n_baselines · n_channels))``.

        :param int n_visibilities: from ``1e4`` to ``1e8`` (any value ``>= 1``).

        >>> obs = ObservationConfig(n_channels=4).with_visibilities(10**7)
        >>> obs.n_times, obs.n_visibilities >= 10**7
        (1241, True)
        """
        if isinstance(n_visibilities, bool) or not isinstance(n_visibilities, (int, float)) or not n_visibilities >= 1:
            raise ValueError(f"n_visibilities must be a number >= 1, got {n_visibilities!r}")
        per_time = self.n_baselines * self.n_channels
        n_times = max(1, math.ceil(n_visibilities / per_time))
        return replace(self, integration_s=self.duration_s / n_times)
