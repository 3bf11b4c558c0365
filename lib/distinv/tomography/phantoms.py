r"""3D phantoms for the CT chapter: a seeded, textured analytic phantom and Shepp–Logan.

Every voxel of :func:`textured_phantom` is an analytic function of its coordinates and of the
seed. Coordinates are normalised, voxel :math:`i` of a side :math:`N` sitting at

.. math::

    c_i = \frac{2i + 1}{N} - 1 \in (-1, 1), \qquad i = 0, \dots, N - 1,

so every size shows the same object (sizes differ only by sampling), and the volume is laid out
``(Z, Y, X)`` like ASTRA's. The object is

.. math::

    x(\mathbf r) = \operatorname{clip}_{[0, 1]}\Big( \big(b(\mathbf r) + \textstyle\sum_j \delta_j
    \mathbb 1_{E_j}(\mathbf r) + f(\mathbf r)\big)\,\big(1 + t(\mathbf r)\big) \Big)
    \text{ (then small inserts overwrite their voxels)},

with :math:`b` a body ellipsoid at a soft-tissue level inside a brighter bone-like shell,
:math:`E_j` random inner ellipsoids of contrast :math:`\delta_j` (random orientations; some flat,
some smooth blobs whose contrast ramps up from their surface), :math:`f` fine structures (thin
tubes, and a trabecular pattern: a thresholded band-pass texture inside a few ellipsoids) and
:math:`t(\mathbf r) = \sum_k a_k \cos(2\pi\,\mathbf f_k\cdot\mathbf r + \varphi_k)` a smooth
random texture with a decaying spectrum (:math:`a_k \propto |\mathbf f_k|^{-1}`, 0.5 to 16
cycles per unit, RMS 5–8 % of the level, peaks about 15 %). Textured, not piecewise constant:
Shepp–Logan flatters TV.

A rank can therefore generate only its z-slab: ``textured_phantom(N, seed, z_range=(z0, z1))``
equals ``textured_phantom(N, seed)[z0:z1]`` bit for bit, because the volume is always computed in
the same fixed blocks of :data:`BLOCK_SLICES` slices whatever the range (same operations on the
same shapes; measured here to hold across torch thread counts too, which BLAS does not promise),
and no temporary exceeds a few blocks. The texture uses
:math:`\cos(P_{zy} + Q_x) = \cos P_{zy}\cos Q_x - \sin P_{zy}\sin Q_x`: one matrix product of a
``(Z Y, 2K + 1)`` and a ``(2K + 1, X)`` matrix per block. Ellipsoids
are intervals of x on each (z, y) line (roots of a quadratic, solved on the plane) and every
inner structure is evaluated in its bounding box only.

Seeds: :data:`PRIOR_TRAINING_SEEDS` and :data:`PRIOR_VALIDATION_SEEDS` are reserved for the CT
prior's training data (``data_scripts/train_denoiser.py --dataset ct-phantoms``); a problem, a
chapter or a test that measures that prior must use another seed (:func:`check_phantom_seed`).

>>> x = textured_phantom(32, seed=0)
>>> tuple(x.shape), bool(x.min() >= 0), bool(x.max() <= 1)
((32, 32, 32), True, True)
>>> bool(torch.equal(textured_phantom(32, seed=0, z_range=(5, 9)), x[5:9]))
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from distinv.validation import check_int as _check_int

__all__ = [
    "PHANTOMS",
    "PRIOR_TRAINING_SEEDS",
    "PRIOR_VALIDATION_SEEDS",
    "MIN_SIZE",
    "MAX_SIZE",
    "check_phantom_seed",
    "grid_coordinates",
    "phantom",
    "shepp_logan_phantom",
    "textured_phantom",
    "textured_phantom_slice",
]

#: Phantom kinds accepted by :func:`phantom`.
PHANTOMS = ("textured", "shepp-logan")
#: Seeds of the textured volumes whose slices train the CT prior (never a test or chapter seed).
PRIOR_TRAINING_SEEDS = range(10_000_000, 11_000_000)
#: Seeds of the textured volumes whose slices validate the CT prior during training.
PRIOR_VALIDATION_SEEDS = range(11_000_000, 11_100_000)
#: Smallest and largest cube side the phantoms accept.
MIN_SIZE, MAX_SIZE = 16, 2048
#: The textured phantom is computed in fixed z-blocks of this many slices (exact z-ranges).
BLOCK_SLICES = 32

_RESERVED = {"PRIOR_TRAINING_SEEDS": PRIOR_TRAINING_SEEDS,
             "PRIOR_VALIDATION_SEEDS": PRIOR_VALIDATION_SEEDS}


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------


def _check_z_range(z_range, size: int) -> tuple[int, int]:
    if z_range is None:
        return 0, size
    if (not isinstance(z_range, (tuple, list)) or len(z_range) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in z_range)):
        raise TypeError(f"z_range must be None or two integers (z0, z1), got {z_range!r}")
    z0, z1 = int(z_range[0]), int(z_range[1])
    if not 0 <= z0 < z1 <= size:
        raise ValueError(f"z_range must satisfy 0 <= z0 < z1 <= size={size}, got {tuple(z_range)}")
    return z0, z1


def check_phantom_seed(seed: int, name: str = "seed") -> int:
    """Refuse a seed reserved for the CT prior's training or validation phantoms.

    A problem, chapter or test that reconstructs a phantom with the CT prior must not use a volume
    the prior was trained (or validated) on.

    :param int seed: the phantom seed, ``>= 0``.
    :param str name: the parameter's name, for the message.
    :return: ``seed``.
    :raises ValueError: the seed is negative or lies in a reserved range.

    >>> check_phantom_seed(3)
    3
    >>> check_phantom_seed(10_000_001, name="phantom_seed")
    Traceback (most recent call last):
    ...
    ValueError: phantom_seed=10000001 lies in PRIOR_TRAINING_SEEDS = range(10000000, 11000000), reserved for the CT prior's training phantoms: use a seed outside range(10000000, 11100000)
    """
    _check_int(name, seed, 0)
    for range_name, reserved in _RESERVED.items():
        if seed in reserved:
            kind = "training" if "TRAINING" in range_name else "validation"
            low = min(PRIOR_TRAINING_SEEDS.start, PRIOR_VALIDATION_SEEDS.start)
            high = max(PRIOR_TRAINING_SEEDS.stop, PRIOR_VALIDATION_SEEDS.stop)
            raise ValueError(
                f"{name}={seed} lies in {range_name} = {reserved}, reserved for the CT prior's "
                f"{kind} phantoms: use a seed outside range({low}, {high})"
            )
    return int(seed)


def grid_coordinates(size: int) -> np.ndarray:
    """Normalised voxel-centre coordinates :math:`c_i = (2i + 1)/N - 1` of a side ``size``.

    :param int size: number of voxels :math:`N`.

    >>> grid_coordinates(4).tolist()
    [-0.75, -0.25, 0.25, 0.75]
    """
    return (2.0 * np.arange(size) + 1.0) / size - 1.0


# --------------------------------------------------------------------------------------------
# the random description of one textured phantom (independent of the size)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Ellipsoid:
    """:math:`\\{r : (r - c)^T M (r - c) \\le 1\\}`, ``M = R diag(a^-2) R^T``, in (z, y, x)."""

    centre: np.ndarray
    form: np.ndarray
    half_box: np.ndarray
    value: float

    @classmethod
    def make(cls, centre, semi_axes, rotation, value: float = 0.0) -> "_Ellipsoid":
        semi_axes = np.asarray(semi_axes, dtype=np.float64)
        form = rotation @ np.diag(semi_axes ** -2.0) @ rotation.T
        half_box = np.sqrt((rotation ** 2) @ (semi_axes ** 2))  # sqrt of diag(M^-1)
        return cls(np.asarray(centre, dtype=np.float64), form, half_box, float(value))


@dataclass(frozen=True)
class _Organ:
    """Adds ``ellipsoid.value`` inside; with ``edge > 0`` the contrast ramps up from the surface,
    :math:`\\min(1, (1 - q) / \\text{edge})` (a smooth blob instead of a flat one)."""

    ellipsoid: _Ellipsoid
    edge: float


@dataclass(frozen=True)
class _Tube:
    """Points within ``radius`` of the segment ``start + s * direction``, ``0 <= s <= length``."""

    start: np.ndarray
    direction: np.ndarray
    length: float
    radius: float
    value: float


@dataclass(frozen=True)
class _Waves:
    """:math:`\\sum_k a_k \\cos(2\\pi f_k \\cdot r + \\varphi_k)`, ``f`` in cycles per unit."""

    frequencies: np.ndarray  # (K, 3), (z, y, x)
    amplitudes: np.ndarray  # (K,)
    phases: np.ndarray  # (K,)


@dataclass(frozen=True)
class _Trabecular:
    """Inside ``region``, add ``value`` where the band-pass ``waves`` exceed ``threshold``."""

    region: _Ellipsoid
    waves: _Waves
    threshold: float
    value: float


@dataclass(frozen=True)
class _TexturedSpec:
    outer: _Ellipsoid  # value: bone level (the shell between outer and inner)
    inner: _Ellipsoid  # value: soft-tissue level
    organs: tuple  # _Organ: additive contrasts, clipped to the inner body
    trabecular: tuple
    tubes: tuple  # set their value, inside the inner body
    texture: _Waves  # multiplicative (1 + t)
    inserts: tuple  # set their value (after the texture)


def _rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random rotation matrix (QR of a Gaussian matrix, sign-fixed, det +1)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _rotation_about_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])  # (z, y, x) axes


def _point_in_ball(rng: np.random.Generator) -> np.ndarray:
    direction = rng.standard_normal(3)
    return direction / np.linalg.norm(direction) * rng.uniform() ** (1.0 / 3.0)


def _unit_vector(rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal(3)
    return v / np.linalg.norm(v)


def _waves(rng, count: int, low: float, high: float, exponent: float, rms: float) -> _Waves:
    """``count`` plane waves, frequencies log-uniform in [low, high], amplitude ~ f^-exponent."""
    magnitudes = np.exp(rng.uniform(np.log(low), np.log(high), count))
    frequencies = np.stack([_unit_vector(rng) for _ in range(count)]) * magnitudes[:, None]
    amplitudes = magnitudes ** -exponent
    amplitudes *= rms / np.sqrt(0.5 * np.sum(amplitudes ** 2))  # mean of cos^2 is 1/2
    return _Waves(frequencies, amplitudes, rng.uniform(0.0, 2.0 * np.pi, count))


def _draw_spec(seed: int) -> _TexturedSpec:
    """The phantom of ``seed``: every random draw happens here, none depends on the size."""
    rng = np.random.default_rng(seed)
    body_rotation = _rotation_about_z(rng.uniform(-0.25, 0.25))
    body_centre = rng.uniform(-0.03, 0.03, 3)
    outer_axes = np.array([rng.uniform(0.82, 0.93), rng.uniform(0.62, 0.80), rng.uniform(0.78, 0.92)])
    inner_axes = outer_axes - rng.uniform(0.035, 0.07)
    outer = _Ellipsoid.make(body_centre, outer_axes, body_rotation, rng.uniform(0.70, 0.82))
    inner = _Ellipsoid.make(body_centre, inner_axes, body_rotation, rng.uniform(0.30, 0.42))

    def inside_body(scale: float) -> np.ndarray:
        return body_centre + body_rotation @ (inner_axes * scale * _point_in_ball(rng))

    organs = tuple(
        _Organ(_Ellipsoid.make(inside_body(0.7), rng.uniform(0.06, 0.28, 3), _rotation(rng),
                               rng.choice([-1.0, 1.0], p=[0.4, 0.6]) * rng.uniform(0.05, 0.3)),
               edge=rng.uniform(0.3, 1.0) if rng.uniform() < 0.4 else 0.0)
        for _ in range(rng.integers(8, 15))
    )
    trabecular = tuple(
        _Trabecular(
            region=_Ellipsoid.make(inside_body(0.6), rng.uniform(0.10, 0.22, 3), _rotation(rng)),
            waves=_waves(rng, 12, 6.0, 14.0, 0.0, 1.0),
            threshold=rng.uniform(0.4, 0.8),
            value=rng.uniform(0.15, 0.3),
        )
        for _ in range(rng.integers(1, 3))
    )
    tubes = tuple(
        _Tube(inside_body(0.7), _unit_vector(rng), rng.uniform(0.2, 0.6), rng.uniform(0.006, 0.014),
              rng.uniform(0.55, 0.8))
        for _ in range(rng.integers(3, 8))
    )
    texture = _waves(rng, 32, 0.5, 16.0, 1.0, rng.uniform(0.05, 0.08))
    inserts = []
    for _ in range(rng.integers(5, 11)):
        radius = rng.uniform(0.012, 0.045)
        bright = rng.uniform() < 0.5
        value = rng.uniform(0.88, 1.0) if bright else rng.uniform(0.0, 0.06)
        inserts.append(_Ellipsoid.make(inside_body(0.75), radius * rng.uniform(0.8, 1.2, 3),
                                       _rotation(rng), value))
    return _TexturedSpec(outer, inner, organs, trabecular, tubes, texture, tuple(inserts))


# --------------------------------------------------------------------------------------------
# rendering on a rectilinear grid
# --------------------------------------------------------------------------------------------
class _Grid:
    """Voxel-centre coordinates along (z, y, x), as float64 numpy and float32 torch vectors."""

    def __init__(self, z: np.ndarray, y: np.ndarray, x: np.ndarray):
        self.numpy = (z, y, x)
        self.torch = tuple(torch.from_numpy(c.astype(np.float32)) for c in (z, y, x))
        self.shape = (len(z), len(y), len(x))

    def box(self, low: np.ndarray, high: np.ndarray) -> tuple[slice, slice, slice] | None:
        """Index slices of the voxels whose centres lie in ``[low, high]`` (None if empty)."""
        slices = []
        for coords, lo, hi in zip(self.numpy, low, high):
            start, stop = np.searchsorted(coords, lo, "left"), np.searchsorted(coords, hi, "right")
            if start >= stop:
                return None
            slices.append(slice(int(start), int(stop)))
        return tuple(slices)

    def offsets(self, box, centre) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``coordinate - centre`` along each axis in ``box``, shaped to broadcast to 3D."""
        dz, dy, dx = (c[s] - float(v) for c, s, v in zip(self.torch, box, centre))
        return dz[:, None, None], dy[None, :, None], dx[None, None, :]


def _inside_ellipsoid(e: _Ellipsoid, grid: _Grid, box) -> torch.Tensor:
    """Boolean mask of :math:`(r - c)^T M (r - c) \\le 1` on ``box``.

    On each (z, y) line the set is an interval of x: the roots of
    :math:`M_{xx} d_x^2 + B d_x + C = 0` with :math:`B = 2(M_{zx} d_z + M_{yx} d_y)` and
    :math:`C = M_{zz} d_z^2 + M_{yy} d_y^2 + 2 M_{zy} d_z d_y - 1`, solved on the (z, y) plane in
    float64 (numpy: small arrays, no thread start-up); the 3D work is two comparisons.
    """
    z, y, x = (c[s] - v for c, s, v in zip(grid.numpy, box, e.centre))
    m = e.form
    dz, dy = z[:, None], y[None, :]
    b = (2 * m[0, 2]) * dz + (2 * m[1, 2]) * dy
    c = m[0, 0] * dz * dz + m[1, 1] * dy * dy + (2 * m[0, 1]) * dz * dy - 1.0
    disc = b * b - (4 * m[2, 2]) * c
    half = np.sqrt(np.maximum(disc, 0.0)) / (2 * m[2, 2])
    mid = -b / (2 * m[2, 2])
    low = np.where(disc >= 0, mid - half, np.inf).astype(np.float32)[..., None]
    high = np.where(disc >= 0, mid + half, -np.inf).astype(np.float32)[..., None]
    x = torch.from_numpy(x.astype(np.float32))
    return (x >= torch.from_numpy(low)) & (x <= torch.from_numpy(high))


def _quadratic(e: _Ellipsoid, grid: _Grid, box) -> torch.Tensor:
    """:math:`(r - c)^T M (r - c)` on ``box``: a (y, x) plane part plus z terms (3 passes in 3D)."""
    dz, dy, dx = grid.offsets(box, e.centre)
    m = e.form
    plane = m[1, 1] * (dy * dy) + m[2, 2] * (dx * dx) + (2 * m[1, 2]) * (dy * dx)
    q = dz * ((2 * m[0, 1]) * dy + (2 * m[0, 2]) * dx)
    q += plane
    q += m[0, 0] * (dz * dz)
    return q


def _ellipsoid_box(e: _Ellipsoid, grid: _Grid):
    return grid.box(e.centre - e.half_box, e.centre + e.half_box)


def _one_plus_waves(waves: _Waves, grid: _Grid, box) -> torch.Tensor:
    """:math:`1 + \\sum_k a_k\\cos(2\\pi f_k\\cdot r + \\varphi_k)` on ``box``, float32.

    With :math:`P_k(z, y) = 2\\pi(f_{k,z} z + f_{k,y} y) + \\varphi_k` and :math:`Q_k(x) = 2\\pi f_{k,x} x`,
    :math:`\\cos(P + Q) = \\cos P\\cos Q - \\sin P \\sin Q`: one matrix product of
    ``[1, a cos P, -a sin P]`` (``(Z Y, 2K + 1)``) and ``[1; cos Q; sin Q]`` (``(2K + 1, X)``), with
    trigonometric functions evaluated only :math:`K (Z Y + X)` times.
    """
    z, y, x = (c[s] for c, s in zip(grid.numpy, box))
    f = 2.0 * np.pi * waves.frequencies
    p = (z[:, None, None] * f[:, 0] + y[None, :, None] * f[:, 1] + waves.phases).reshape(-1, len(f))
    q = x[:, None] * f[:, 2]
    a = waves.amplitudes
    left = np.concatenate([np.ones((len(p), 1)), a * np.cos(p), -a * np.sin(p)], axis=1)
    right = np.concatenate([np.ones((1, len(x))), np.cos(q).T, np.sin(q).T], axis=0)
    product = torch.from_numpy(left.astype(np.float32)) @ torch.from_numpy(right.astype(np.float32))
    return product.reshape(len(z), len(y), len(x))


def _tube_distance2(tube: _Tube, grid: _Grid, box) -> torch.Tensor:
    """Squared distance to the segment: :math:`|d|^2 - 2 t (d\\cdot u) + t^2`, ``t`` clamped."""
    dz, dy, dx = grid.offsets(box, tube.start)
    u = tube.direction
    along = dz * float(u[0]) + (dy * float(u[1]) + dx * float(u[2]))
    t = along.clamp(0.0, tube.length)
    d2 = dz * dz + (dy * dy + dx * dx)
    d2 -= 2.0 * t * along
    d2 += t * t
    return d2


def _render(spec: _TexturedSpec, grid: _Grid) -> torch.Tensor:
    """The phantom on ``grid`` (float32, clipped to [0, 1])."""
    full = tuple(slice(0, n) for n in grid.shape)
    inside = _inside_ellipsoid(spec.inner, grid, full)
    body = _inside_ellipsoid(spec.outer, grid, full)
    out = torch.where(inside, spec.inner.value, torch.where(body, spec.outer.value, 0.0))
    del body

    for organ in spec.organs:
        e = organ.ellipsoid
        box = _ellipsoid_box(e, grid)
        if box is None:
            continue
        if organ.edge > 0:
            profile = ((1.0 - _quadratic(e, grid, box)) * (1.0 / organ.edge)).clamp_(0.0, 1.0)
            out[box] += e.value * (profile * inside[box])
        else:
            out[box] += e.value * (_inside_ellipsoid(e, grid, box) & inside[box])

    for trab in spec.trabecular:
        box = _ellipsoid_box(trab.region, grid)
        if box is not None:
            pattern = _one_plus_waves(trab.waves, grid, box)
            mask = (pattern > 1.0 + trab.threshold) & _inside_ellipsoid(trab.region, grid, box)
            out[box] += trab.value * (mask & inside[box])

    for tube in spec.tubes:
        end = tube.start + tube.length * tube.direction
        box = grid.box(np.minimum(tube.start, end) - tube.radius, np.maximum(tube.start, end) + tube.radius)
        if box is not None:
            mask = (_tube_distance2(tube, grid, box) <= tube.radius ** 2) & inside[box]
            out[box] = torch.where(mask, tube.value, out[box])

    out *= _one_plus_waves(spec.texture, grid, full)

    for insert in spec.inserts:
        box = _ellipsoid_box(insert, grid)
        if box is not None:
            mask = _inside_ellipsoid(insert, grid, box) & inside[box]
            out[box] = torch.where(mask, insert.value, out[box])
    return out.clamp_(0.0, 1.0)


# --------------------------------------------------------------------------------------------
# public phantoms
# --------------------------------------------------------------------------------------------
def textured_phantom(size: int, seed: int, z_range: tuple[int, int] | None = None,
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A textured 3D phantom in [0, 1], shape ``(Z, size, size)``: analytic, seeded, no download.

    See the module docstring for the object. The z-slices ``[z0, z1)`` of ``z_range`` are exactly
    the slices of the whole volume (a rank generates only its slab); memory is the output plus a
    few blocks of :data:`BLOCK_SLICES` slices.

    :param int size: cube side :math:`N`, in ``[MIN_SIZE, MAX_SIZE]``.
    :param int seed: the phantom's seed, ``>= 0`` (the object does not depend on ``size``).
    :param tuple z_range: ``(z0, z1)`` with ``0 <= z0 < z1 <= size``, or None for the whole volume.
    :param torch.dtype dtype: floating dtype of the result (computed in float32).
    :return: tensor ``(z1 - z0, size, size)`` laid out (Z, Y, X).

    >>> textured_phantom(16, seed=1, z_range=(8, 10)).shape
    torch.Size([2, 16, 16])
    """
    size = _check_int("size", size, MIN_SIZE, MAX_SIZE)
    seed = _check_int("seed", seed, 0)
    z0, z1 = _check_z_range(z_range, size)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    spec = _draw_spec(seed)
    coords = grid_coordinates(size)
    out = torch.empty((z1 - z0, size, size), dtype=dtype)
    for b0 in range(z0 - z0 % BLOCK_SLICES, z1, BLOCK_SLICES):
        b1 = min(b0 + BLOCK_SLICES, size)
        block = _render(spec, _Grid(coords[b0:b1], coords, coords))
        lo, hi = max(b0, z0), min(b1, z1)
        out[lo - z0 : hi - z0] = block[lo - b0 : hi - b0]
    return out


def textured_phantom_slice(size: int, seed: int, axis: int, index: int,
                           dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """One 2D slice of ``textured_phantom(size, seed)``, computed alone (``size²`` voxels).

    Equal to the volume's slice to float32 rounding (the texture's sum is blocked differently).

    :param int size: cube side :math:`N`, in ``[MIN_SIZE, MAX_SIZE]``.
    :param int seed: the phantom's seed, ``>= 0``.
    :param int axis: 0 (axial, an (Y, X) image), 1 (coronal, (Z, X)) or 2 (sagittal, (Z, Y)).
    :param int index: the slice index along ``axis``, in ``[0, size - 1]``.
    :param torch.dtype dtype: floating dtype of the result.

    >>> textured_phantom_slice(16, seed=1, axis=1, index=8).shape
    torch.Size([16, 16])
    """
    size = _check_int("size", size, MIN_SIZE, MAX_SIZE)
    seed = _check_int("seed", seed, 0)
    if axis not in (0, 1, 2) or isinstance(axis, bool):
        raise ValueError(f"axis must be 0 (axial), 1 (coronal) or 2 (sagittal), got {axis!r}")
    index = _check_int("index", index, 0, size - 1)
    coords = grid_coordinates(size)
    axes = [coords, coords, coords]
    axes[axis] = coords[index : index + 1]
    image = _render(_draw_spec(seed), _Grid(*axes))
    return image.squeeze(axis).to(dtype)


def shepp_logan_phantom(size: int, z_range: tuple[int, int] | None = None,
                        dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """ASTRA's modified 3D Shepp–Logan phantom rescaled to [0, 1], shape ``(Z, size, size)``.

    ``astra.data3d.shepp_logan(vol_geom, modified=True)`` runs on the CPU and returns (Z, Y, X).
    It always computes the whole volume, then slices ``z_range`` (4 s and 512 MB at 512³): unlike
    :func:`textured_phantom`, a rank asking for its slab still pays for the whole cube.

    :param int size: cube side, in ``[MIN_SIZE, MAX_SIZE]``.
    :param tuple z_range: ``(z0, z1)`` with ``0 <= z0 < z1 <= size``, or None.
    :param torch.dtype dtype: floating dtype of the result.

    >>> x = shepp_logan_phantom(32)
    >>> tuple(x.shape), float(x.min()), float(x.max())
    ((32, 32, 32), 0.0, 1.0)
    """
    import astra

    size = _check_int("size", size, MIN_SIZE, MAX_SIZE)
    z0, z1 = _check_z_range(z_range, size)
    data_id, volume = astra.data3d.shepp_logan(astra.create_vol_geom(size, size, size), modified=True)
    astra.data3d.delete(data_id)
    low, high = float(volume.min()), float(volume.max())
    volume = (volume[z0:z1] - low) / (high - low)
    return torch.from_numpy(np.ascontiguousarray(volume)).to(dtype)


def phantom(kind: str, size: int, seed: int = 0, z_range: tuple[int, int] | None = None,
            dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A phantom by kind: ``"textured"`` (:func:`textured_phantom`) or ``"shepp-logan"``.

    :param str kind: one of :data:`PHANTOMS`.
    :param int size: cube side, in ``[MIN_SIZE, MAX_SIZE]``.
    :param int seed: seed of the textured phantom (Shepp–Logan has none and ignores it).
    :param tuple z_range: ``(z0, z1)`` or None.
    :param torch.dtype dtype: floating dtype of the result.

    >>> phantom("shepp-logan", 16, z_range=(0, 2)).shape
    torch.Size([2, 16, 16])
    >>> phantom("walnut", 16)
    Traceback (most recent call last):
    ...
    ValueError: kind must be one of ('textured', 'shepp-logan'), got 'walnut'
    """
    if kind == "textured":
        return textured_phantom(size, seed, z_range, dtype)
    if kind == "shepp-logan":
        return shepp_logan_phantom(size, z_range, dtype)
    raise ValueError(f"kind must be one of {PHANTOMS}, got {kind!r}")


def _benchmark(sizes: list[int], repeats: int = 5) -> dict:
    """Median / min wall time of :func:`textured_phantom` per size (after a warm-up) and peak RSS."""
    import resource
    import statistics
    import time

    result: dict = {"threads": torch.get_num_threads(), "repeats": repeats, "sizes": {}}
    for size in sizes:
        textured_phantom(size, seed=0)
        times = []
        for repeat in range(repeats):
            start = time.perf_counter()
            textured_phantom(size, seed=1 + repeat)
            times.append(time.perf_counter() - start)
        result["sizes"][str(size)] = {
            "median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3),
            "volume_gb": round(size ** 3 * 4 / 2 ** 30, 3),
            "peak_rss_gb_so_far": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20, 3),
        }
    return result


if __name__ == "__main__":  # python -m distinv.tomography.phantoms 256 512  (JSON timings)
    import json
    import sys

    print(json.dumps(_benchmark([int(a) for a in sys.argv[1:]] or [256, 512])))
