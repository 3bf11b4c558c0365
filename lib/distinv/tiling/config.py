"""Options of the tiled prior, in one validated bundle."""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["TilingConfig", "BLENDS", "LAYOUTS", "SCHEDULES"]

BLENDS = ("smooth", "crop")
LAYOUTS = ("replicated", "sharded")
SCHEDULES = ("static", "dynamic")


def _per_axis(name: str, value, minimum: int) -> tuple[int, ...] | int:
    values = value if isinstance(value, tuple) else (value,)
    if not values:
        raise ValueError(f"{name} must be an integer or a non-empty tuple of integers, got {value!r}")
    for v in values:
        if not isinstance(v, int) or isinstance(v, bool):
            raise TypeError(f"{name} must be an integer or a tuple of integers, got {value!r}")
        if v < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return value


@dataclass(frozen=True)
class TilingConfig:
    """How a denoiser is applied tile by tile across ranks.

    A signal axis of ``n`` samples is cut into ``k = ceil(n / patch)`` *cores* (boundaries on multiples
    of ``align``, sizes within ``align`` of each other) that partition it. A tile's *window* is its core
    plus ``overlap`` samples on each side that has a neighbouring tile (none at the signal border),
    extended outwards to multiples of ``align``; a window that ends at the border with a length that is
    not a multiple of ``align`` is reflect-padded there (not in exact mode).

    :param int patch: core size per spatial axis (an integer, or one per axis), ``>= 1``.
    :param int overlap: halo on interior sides per axis, ``0 <= overlap < patch``. In exact mode, the
        network's receptive-field radius.
    :param str blend: ``"smooth"``: raised-cosine ramps around each core boundary (see ``ramp``), normalised to a partition of unity; ``"crop"``: every output sample comes from the
        tile whose core holds it (deepinv's rule).
    :param float ramp: smooth blending ramps over ``2 h`` samples with ``h = round(ramp * overlap)``,
        centred on each core boundary, ``0 < ramp <= 1``. The default 0.5 keeps every tile's weight zero
        within ``overlap / 2`` of its window edge, where the network lacks context (measured on DRUNet,
        256², patch 64: ``ramp=1`` agrees 30-50 dB worse with the untiled output than ``ramp=0.5``).
    :param bool exact: windows start on multiples of ``align`` and are never padded, so a network with a
        receptive-field radius ``<= overlap`` gives exactly its untiled output; needs ``blend="crop"``.
    :param str layout: ``"replicated"``: every rank holds the full signal and gets the full output;
        ``"sharded"``: every rank holds a slab along the first spatial axis and gets its output slab.
    :param int align: the network's downsampling factor (8 for DRUNet).
    :param int max_batch_size: tiles of equal window shape per network call (``None``: all of them).
    :param torch.dtype autocast_dtype: run the network under ``torch.autocast`` with this dtype
        (e.g. ``torch.bfloat16``); ``None`` for the signal's dtype.
    :param bool channels_last: run the network channels-last: channels-last windows, and the network's
        parameters stored channels-last (converted in place when the tiled denoiser is built).
    :param str schedule: which rank runs which tiles in the replicated layout. ``"static"``: contiguous
        runs of equal work, fixed in advance (deepinv's round-robin split is fixed too); bit-for-bit
        reproducible.
        ``"dynamic"``: each rank claims the next batch of tiles (largest first) from a counter shared
        through the process group's store when it is ready for more work, so a rank slowed down by its
        machine does fewer tiles. The output then agrees with the static one to float rounding, not
        bit for bit (each rank's share of the sum changes from run to run). Replicated layout only. A claim
        is one batch of up to ``max_batch_size`` tiles of one window shape: with ``max_batch_size=None``
        there are only as many claims as window shapes, too few to balance the ranks.

    >>> TilingConfig(patch=128, overlap=16).blend
    'smooth'
    """

    patch: int | tuple[int, ...] = 256
    overlap: int | tuple[int, ...] = 32
    blend: str = "smooth"
    ramp: float = 0.5
    exact: bool = False
    layout: str = "replicated"
    align: int = 8
    max_batch_size: int | None = 4
    autocast_dtype: torch.dtype | None = None
    channels_last: bool = False
    schedule: str = "static"

    def __post_init__(self):
        _per_axis("patch", self.patch, 1)
        _per_axis("overlap", self.overlap, 0)
        if not isinstance(self.align, int) or isinstance(self.align, bool) or self.align < 1:
            raise ValueError(f"align must be an integer >= 1, got {self.align!r}")
        if self.blend not in BLENDS:
            raise ValueError(f"blend must be one of {BLENDS}, got {self.blend!r}")
        if isinstance(self.ramp, bool) or not isinstance(self.ramp, (int, float)) or not 0 < self.ramp <= 1:
            raise ValueError(f"ramp must be a number in (0, 1], got {self.ramp!r}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.schedule == "dynamic" and self.layout != "replicated":
            raise ValueError("schedule='dynamic' needs layout='replicated': in the sharded layout a row of tiles "
                             "is run by the rank that holds its slab")
        if not isinstance(self.exact, bool):
            raise TypeError(f"exact must be a bool, got {self.exact!r}")
        if self.exact and self.blend != "crop":
            raise ValueError(
                f"exact=True needs blend='crop' (blending ramps reach the window edges, where outputs are not "
                f"exact), got blend={self.blend!r}"
            )
        if self.max_batch_size is not None:
            _per_axis("max_batch_size", self.max_batch_size, 1)
        if self.autocast_dtype is not None and not isinstance(self.autocast_dtype, torch.dtype):
            raise TypeError(f"autocast_dtype must be a torch.dtype or None, got {self.autocast_dtype!r}")
        if isinstance(self.patch, tuple) and isinstance(self.overlap, tuple) and len(self.patch) != len(self.overlap):
            raise ValueError(f"patch and overlap must have the same length, got {self.patch!r} and {self.overlap!r}")
        axes = max(len(v) if isinstance(v, tuple) else 1 for v in (self.patch, self.overlap))
        for axis in range(axes):
            patch = self.patch[axis] if isinstance(self.patch, tuple) else self.patch
            overlap = self.overlap[axis] if isinstance(self.overlap, tuple) else self.overlap
            if overlap >= patch:
                raise ValueError(
                    f"overlap must be smaller than patch (axis {axis}): got overlap={overlap} >= patch={patch}"
                )

    def ramp_half_width(self, overlap: int) -> int:
        """Half-width ``h`` of the smooth ramps for an axis with this ``overlap`` (0: crop weights)."""
        return 0 if overlap == 0 else max(1, round(self.ramp * overlap))

    def axis_values(self, name: str, ndim: int) -> tuple[int, ...]:
        """``patch`` or ``overlap`` as one integer per spatial axis of an ``ndim``-D signal.

        :param str name: ``"patch"`` or ``"overlap"``.
        :param int ndim: number of spatial axes.
        """
        value = getattr(self, name)
        if isinstance(value, int):
            return (value,) * ndim
        if len(value) != ndim:
            raise ValueError(f"{name} has {len(value)} values but the signal has {ndim} spatial axes: {value!r}")
        return tuple(value)
