r"""Cone-beam CT on the GPU: ASTRA's vector geometry, split into view groups for deepinv's distributed stack.

A cone-beam scan is described view by view, as in ASTRA's ``cone_vec`` geometry, by 12 numbers per view:

.. math::

    (s, d, u, v) \in (\mathbb R^3)^4,

the source position :math:`s`, the detector centre :math:`d`, and the vectors :math:`u` (from detector
pixel ``(r, c)`` to ``(r, c + 1)``) and :math:`v` (from ``(r, c)`` to ``(r + 1, c)``); their lengths are the
pixel sizes. Coordinates are in the units of ``voxel_size`` (the volume, ``(Z, Y, X)`` voxels, is
centred on the origin). Real scanners ship such vectors (e.g. the walnut data set); a synthetic
circular orbit comes from :func:`circular_cone_vectors`.

The operator of view group :math:`G_k` (:func:`~distinv.tomography.split.view_groups`) is deepinv's
``TomographyWithAstra`` built with the group's rows of the vectors (deepinv 0.5 takes them as
``geometry_vectors`` with ``geometry_type="conebeam"``), ``normalize=False`` (a group's own norm is not
the norm of the stack). Its measurement has shape ``(B, C, rows, len(G_k), cols)``. ASTRA's 3D
projectors run on CUDA only, and its back-projector is not the exact adjoint of its projector (a
ray-driven projector, a voxel-driven back-projector): :func:`adjoint_mismatch` measures the gap on
the GPU.

>>> vectors = circular_cone_vectors(4, source_origin=500.0, origin_detector=100.0, pixel_size=1.5)
>>> vectors.shape, (vectors[0, :6].round(1) + 0.0).tolist()  # source, detector centre at angle 0
((4, 12), [0.0, -500.0, 0.0, 0.0, 100.0, 0.0])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from distinv.tomography.split import view_groups

__all__ = ["ConeBeamGeometry", "circular_cone_vectors", "cone_beam_factory", "cone_beam_kwargs",
           "adjoint_mismatch"]


def _positive_int(name: str, value) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer >= 1, got {value!r} ({type(value).__name__})")
    if value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value}")
    return int(value)


def _positive_number(name: str, value) -> float:
    if not isinstance(value, (int, float, np.floating, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number > 0, got {value!r} ({type(value).__name__})")
    if not value > 0 or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return float(value)


def circular_cone_vectors(views: int, source_origin: float, origin_detector: float, pixel_size: float,
                          arc_degrees: float = 360.0) -> np.ndarray:
    r"""ASTRA ``cone_vec`` rows of a circular orbit about the :math:`z` axis (ASTRA's ``cone`` geometry).

    At angle :math:`\theta_k = \text{arc}\cdot k/\text{views}`, with :math:`e(\theta) = (\sin\theta, -\cos\theta, 0)`
    and :math:`t(\theta) = (\cos\theta, \sin\theta, 0)`:

    .. math::

        s = R_s\, e, \quad d = -R_d\, e, \quad u = p\, t, \quad v = (0, 0, p).

    :param int views: number of views, ``>= 1``.
    :param float source_origin: source-to-axis distance :math:`R_s`, ``> 0``.
    :param float origin_detector: axis-to-detector distance :math:`R_d`, ``> 0``.
    :param float pixel_size: detector pixel side :math:`p`, ``> 0``.
    :param float arc_degrees: the orbit covers ``[0, arc)``, ``0 < arc <= 360``.
    :return: float64 array ``(views, 12)``.
    """
    views = _positive_int("views", views)
    source_origin = _positive_number("source_origin", source_origin)
    origin_detector = _positive_number("origin_detector", origin_detector)
    pixel_size = _positive_number("pixel_size", pixel_size)
    arc = _positive_number("arc_degrees", arc_degrees)
    if arc > 360.0:
        raise ValueError(f"arc_degrees must be a number in (0, 360], got {arc_degrees}")
    theta = np.deg2rad(arc) * np.arange(views) / views
    zero = np.zeros(views)
    towards_source = np.stack([np.sin(theta), -np.cos(theta), zero], axis=1)
    along_row = np.stack([np.cos(theta), np.sin(theta), zero], axis=1)
    up = np.tile([0.0, 0.0, pixel_size], (views, 1))
    return np.concatenate([source_origin * towards_source, -origin_detector * towards_source,
                           pixel_size * along_row, up], axis=1)


@dataclass(frozen=True, eq=False)
class ConeBeamGeometry:
    """A cone-beam scan given by ASTRA ``cone_vec`` vectors, and the reconstructed volume.

    :param numpy.ndarray vectors: ``(n_views, 12)``: source, detector centre, ``u``, ``v`` per view
        (see the module notes); stored as a read-only float64 array.
    :param int detector_rows: detector pixel rows (along ``v``), ``>= 1``.
    :param int detector_cols: detector pixel columns (along ``u``), ``>= 1``.
    :param tuple volume_shape: ``(Z, Y, X)`` voxels, each ``>= 1``.
    :param float voxel_size: voxel side in the units of the vectors, ``> 0``.

    >>> geometry = ConeBeamGeometry(circular_cone_vectors(8, 40.0, 10.0, 1.0), 24, 32, (16, 16, 16))
    >>> geometry.views, ConeBeamGeometry.from_dict(geometry.to_dict()).volume_shape
    (8, (16, 16, 16))
    """

    vectors: np.ndarray
    detector_rows: int
    detector_cols: int
    volume_shape: tuple[int, int, int]
    voxel_size: float = 1.0

    def __post_init__(self):
        vectors = np.array(self.vectors, dtype=np.float64)  # a copy: the caller's array stays theirs
        if vectors.ndim != 2 or vectors.shape[1] != 12 or vectors.shape[0] < 1:
            raise ValueError(f"vectors must have shape (n_views, 12) with n_views >= 1 (ASTRA cone_vec rows), "
                             f"got shape {vectors.shape}")
        if not np.all(np.isfinite(vectors)):
            raise ValueError("vectors must be finite")
        vectors.setflags(write=False)
        object.__setattr__(self, "vectors", vectors)
        object.__setattr__(self, "detector_rows", _positive_int("detector_rows", self.detector_rows))
        object.__setattr__(self, "detector_cols", _positive_int("detector_cols", self.detector_cols))
        shape = self.volume_shape
        if not isinstance(shape, (tuple, list)) or len(shape) != 3:
            raise ValueError(f"volume_shape must be a (Z, Y, X) tuple of 3 integers >= 1, got {shape!r}")
        object.__setattr__(self, "volume_shape", tuple(_positive_int("volume_shape", n) for n in shape))
        object.__setattr__(self, "voxel_size", _positive_number("voxel_size", self.voxel_size))

    @property
    def views(self) -> int:
        """Number of views."""
        return self.vectors.shape[0]

    def to_dict(self) -> dict:
        """Plain fields (lists), for factory keyword arguments."""
        return {"vectors": self.vectors.tolist(), "detector_rows": self.detector_rows,
                "detector_cols": self.detector_cols, "volume_shape": list(self.volume_shape),
                "voxel_size": self.voxel_size}

    @classmethod
    def from_dict(cls, fields: dict) -> ConeBeamGeometry:
        """The geometry of :meth:`to_dict`'s output.

        :param dict fields: the constructor's arguments.
        """
        if not isinstance(fields, dict):
            raise TypeError(f"fields must be a dict of ConeBeamGeometry fields, got {type(fields).__name__}")
        return cls(**{**fields, "volume_shape": tuple(fields.get("volume_shape", ()))})


def _geometry(value) -> ConeBeamGeometry:
    if isinstance(value, ConeBeamGeometry):
        return value
    if isinstance(value, dict):
        return ConeBeamGeometry.from_dict(value)
    raise TypeError(f"factory_kwargs['geometry'] must be a ConeBeamGeometry or its to_dict(), "
                    f"got {type(value).__name__}")


def cone_beam_kwargs(geometry: ConeBeamGeometry, views: tuple[int, ...] | list[int]) -> dict:
    """The keyword arguments of deepinv's ``TomographyWithAstra`` for these views (no device, no CUDA needed).

    :param ConeBeamGeometry geometry: the scan.
    :param views: view indexes.
    :return: ``img_size``, ``n_detector_pixels``, ``geometry_type``, ``geometry_vectors``, ``pixel_spacing``,
        ``normalize``.

    >>> geometry = ConeBeamGeometry(circular_cone_vectors(6, 40.0, 10.0, 1.0), 24, 32, (16, 16, 16))
    >>> kwargs = cone_beam_kwargs(geometry, (1, 4))
    >>> tuple(kwargs["geometry_vectors"].shape), kwargs["n_detector_pixels"]
    ((2, 12), (24, 32))
    """
    indexes = list(views)
    if not indexes or min(indexes) < 0 or max(indexes) >= geometry.views:
        raise ValueError(f"views must be a non-empty list of indexes in [0, {geometry.views}), got {views!r}")
    return {
        "img_size": geometry.volume_shape,
        "n_detector_pixels": (geometry.detector_rows, geometry.detector_cols),
        "geometry_type": "conebeam",
        "geometry_vectors": torch.from_numpy(geometry.vectors[indexes].copy()),
        "pixel_spacing": geometry.voxel_size,
        "normalize": False,
    }


def cone_beam_factory(index: int, device: torch.device | str, factory_kwargs: dict):
    r"""deepinv factory of the cone-beam operator :math:`A_k` of view group ``index`` (CUDA only).

    For ``deepinv.distributed.distribute(cone_beam_factory, ctx, num_operators=parts,
    type_object="linear_physics", factory_kwargs={...})``.

    :param int index: the group :math:`k`, ``0 <= index < parts``.
    :param torch.device, str device: the rank's device; must be CUDA.
    :param dict factory_kwargs: ``geometry`` (:class:`ConeBeamGeometry` or its :meth:`~ConeBeamGeometry.to_dict`),
        ``parts``, and optionally ``mode`` (``"interleaved"`` by default).
    :return: ``deepinv.physics.TomographyWithAstra`` of the group's views, ``normalize=False``.
    :raises ValueError: ``device`` is not a CUDA device.
    """
    device = torch.device(device)
    if device.type != "cuda":
        raise ValueError(f"cone_beam_factory needs a CUDA device (ASTRA's 3D projectors run on the GPU only), "
                         f"got device={str(device)!r}")
    if not isinstance(factory_kwargs, dict):
        raise TypeError(f"factory_kwargs must be a dict, got {type(factory_kwargs).__name__}")
    missing = sorted({"geometry", "parts"} - set(factory_kwargs))
    if missing:
        raise ValueError(f"factory_kwargs needs keys ['geometry', 'parts'], missing {missing}")
    geometry = _geometry(factory_kwargs["geometry"])
    parts = factory_kwargs["parts"]
    groups = view_groups(geometry.views, parts, factory_kwargs.get("mode", "interleaved"))
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < parts:
        raise ValueError(f"index must be an integer in [0, {parts}) for parts={parts}, got {index!r}")
    from deepinv.physics import TomographyWithAstra

    return TomographyWithAstra(**cone_beam_kwargs(geometry, groups[index]), device=device)


def adjoint_mismatch(physics, x: torch.Tensor, y: torch.Tensor) -> float:
    r"""How far ``physics.A_adjoint`` is from the adjoint of ``physics.A`` on one pair:

    .. math::

        \frac{|\langle A x, y\rangle - \langle x, A^\top y\rangle|}{\|A x\|\,\|y\|}
        \quad (0 \text{ for an exact adjoint, up to rounding}).

    For random :math:`x, y` an adjoint error :math:`E = B - A^\top` shows only as about
    :math:`\|E\|/\sqrt m` (:math:`m` measurements): deepinv's inverse-Radon adjoint, 7 % off in
    ``adjointness_test`` (:math:`\|A - B^\top\|_F / \|A\|_F`), gives 3.7e-4 here at 128². Report both.

    :param physics: any deepinv ``LinearPhysics``.
    :param torch.Tensor x: a signal.
    :param torch.Tensor y: a measurement (shape of ``physics.A(x)``).
    :return: the relative mismatch (inner products accumulated in float64).

    >>> import torch
    >>> from deepinv.physics import LinearPhysics
    >>> twice = LinearPhysics(A=lambda x: 2 * x, A_adjoint=lambda y: 2.2 * y)  # Aᵀ off by 10 %
    >>> round(adjoint_mismatch(twice, torch.ones(3), torch.ones(3)), 6)
    0.1
    """
    with torch.no_grad():
        ax = physics.A(x)
        if ax.shape != y.shape:
            raise ValueError(f"y must have the shape of physics.A(x), {tuple(ax.shape)}, got {tuple(y.shape)}")
        aty = physics.A_adjoint(y)
        forward = (ax.double() * y.double()).sum()
        backward = (x.double() * aty.double()).sum()
        scale = torch.linalg.vector_norm(ax.double()) * torch.linalg.vector_norm(y.double())
    if scale == 0:
        raise ValueError("adjoint_mismatch needs A x != 0 and y != 0")
    return float((forward - backward).abs() / scale)
