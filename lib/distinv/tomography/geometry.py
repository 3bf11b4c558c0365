r"""Parallel-beam geometry of the CT chapter: a cubic volume turned about its ``z`` axis.

Every slice :math:`z` of the volume (``N × N`` pixels of side 1, centred on the rotation axis) is
measured independently by the same 2D parallel-beam scan: ``views`` projection angles

.. math::

    \theta_k = \frac{\text{arc}}{\text{views}}\, k, \qquad k = 0, \dots, \text{views} - 1,

each giving one line of ``detectors`` cells of width 1 centred on the axis. By default the detector
has :math:`\lceil N\sqrt 2\,\rceil` cells rounded up to an even number, so that it covers the
slice's diagonal at every angle (no ray that crosses the slice is lost).

>>> geometry = ParallelBeamGeometry(size=64, views=90)
>>> geometry.detectors, round(float(geometry.angles()[1]), 6)
(92, 0.034907)
>>> ParallelBeamGeometry.from_dict(geometry.to_dict()) == geometry
True
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = ["ParallelBeamGeometry", "MIN_SIZE", "MAX_SIZE", "default_detectors"]

#: Smallest and largest slice side.
MIN_SIZE, MAX_SIZE = 16, 1024


def _check_integer(name: str, value, minimum: int, maximum: int | None = None) -> None:
    allowed = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer {allowed}, got {value!r} ({type(value).__name__})")
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be an integer {allowed}, got {value}")


def default_detectors(size: int) -> int:
    r"""Detector cells that cover the diagonal of a ``size × size`` slice: :math:`\lceil N\sqrt2\rceil`, even.

    :param int size: slice side :math:`N`.
    :return: the smallest even integer :math:`\ge N\sqrt 2`.

    >>> default_detectors(16), default_detectors(128), default_detectors(256)
    (24, 182, 364)
    """
    cells = math.ceil(size * math.sqrt(2))
    return cells + cells % 2


@dataclass(frozen=True)
class ParallelBeamGeometry:
    """A parallel-beam scan of every slice of an ``N × N × Z`` volume (pixels and detector cells of width 1).

    :param int size: slice side :math:`N`, an integer in ``[16, 1024]``.
    :param int views: number of projection angles, ``>= 1``.
    :param int detectors: detector cells per view, ``>= 1``; ``None`` gives :func:`default_detectors`.
    :param float arc_degrees: the angles cover ``[0, arc_degrees)`` uniformly, ``0 < arc <= 360``.

    >>> ParallelBeamGeometry(size=32, views=4, arc_degrees=90.0).angles().round(4).tolist()
    [0.0, 0.3927, 0.7854, 1.1781]
    """

    size: int
    views: int
    detectors: int | None = field(default=None)
    arc_degrees: float = 180.0

    def __post_init__(self):
        _check_integer("size", self.size, MIN_SIZE, MAX_SIZE)
        _check_integer("views", self.views, 1)
        if self.detectors is None:
            object.__setattr__(self, "detectors", default_detectors(int(self.size)))
        _check_integer("detectors", self.detectors, 1)
        arc = self.arc_degrees
        if not isinstance(arc, (int, float, np.floating)) or isinstance(arc, bool):
            raise TypeError(f"arc_degrees must be a number in (0, 360], got {arc!r} ({type(arc).__name__})")
        if not 0.0 < float(arc) <= 360.0:
            raise ValueError(f"arc_degrees must be a number in (0, 360], got {arc}")
        # plain Python types, so that equal geometries hash equally (a cache key) and pickle small
        object.__setattr__(self, "size", int(self.size))
        object.__setattr__(self, "views", int(self.views))
        object.__setattr__(self, "detectors", int(self.detectors))
        object.__setattr__(self, "arc_degrees", float(arc))

    def angles(self) -> np.ndarray:
        r"""The projection angles :math:`\theta_k = \text{arc}\cdot k / \text{views}` in radians (float64).

        :return: array of shape ``(views,)``.
        """
        return np.deg2rad(self.arc_degrees) * np.arange(self.views, dtype=np.float64) / self.views

    @property
    def signal_shape(self) -> tuple[int, int]:
        """The shape ``(N, N)`` of one slice."""
        return self.size, self.size

    def to_dict(self) -> dict:
        """Plain fields (for factory keyword arguments, which travel between ranks)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, fields: dict) -> ParallelBeamGeometry:
        """The geometry of :meth:`to_dict`'s output.

        :param dict fields: ``size``, ``views`` and optionally ``detectors``, ``arc_degrees``.
        """
        if not isinstance(fields, dict):
            raise TypeError(f"fields must be a dict of ParallelBeamGeometry fields, got {type(fields).__name__}")
        unknown = sorted(set(fields) - {"size", "views", "detectors", "arc_degrees"})
        if unknown:
            raise ValueError(f"fields has unknown keys {unknown}; allowed: size, views, detectors, arc_degrees")
        return cls(**fields)
