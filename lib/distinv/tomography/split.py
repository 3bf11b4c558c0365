r"""The views of a scan split into groups, one operator per group, for deepinv's distributed stack.

With view groups :math:`G_0, \dots, G_{K-1}` that partition the views, the operator is the stack
:math:`A = [A_0; \dots; A_{K-1}]` with :math:`A_k` the rows of the views in :math:`G_k`, and

.. math::

    A^\top A = \sum_k A_k^\top A_k, \qquad A^\top y = \sum_k A_k^\top y_k,

which deepinv's ``DistributedStackedLinearPhysics`` computes with one all-reduce. ``"interleaved"``
groups (rank :math:`k` gets views :math:`k, k + K, \dots`) each cover the whole arc, so every group alone
is a coarse scan of the full object; ``"contiguous"`` groups are consecutive arcs (a limited-angle scan
each). Both give the same sums.

>>> view_groups(7, 3)
[(0, 3, 6), (1, 4), (2, 5)]
>>> view_groups(7, 3, mode="contiguous")
[(0, 1, 2), (3, 4), (5, 6)]
"""

from __future__ import annotations

import torch

from distinv.tomography.geometry import ParallelBeamGeometry
from distinv.tomography.projector import ParallelBeamProjector

__all__ = ["view_groups", "angle_physics_factory", "SPLIT_MODES"]

SPLIT_MODES = ("interleaved", "contiguous")


def view_groups(views: int, parts: int, mode: str = "interleaved") -> list[tuple[int, ...]]:
    """Split view indexes ``0 … views-1`` into ``parts`` non-empty groups of sizes within one of each other.

    :param int views: number of views, ``>= 1``.
    :param int parts: number of groups, ``1 <= parts <= views``.
    :param str mode: ``"interleaved"`` (group ``k`` gets ``k, k + parts, …``) or ``"contiguous"``
        (consecutive runs, the longer ones first).
    :return: ``parts`` tuples of sorted indexes that partition the views.
    """
    for name, value in (("views", views), ("parts", parts)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if views < 1:
        raise ValueError(f"views must be an integer >= 1, got {views}")
    if parts < 1:
        raise ValueError(f"parts must be an integer >= 1, got {parts}")
    if parts > views:
        raise ValueError(f"parts must be <= views={views} (every group needs a view), got parts={parts}")
    if mode == "interleaved":
        return [tuple(range(k, views, parts)) for k in range(parts)]
    if mode == "contiguous":
        base, extra = divmod(views, parts)
        groups, start = [], 0
        for k in range(parts):
            stop = start + base + (1 if k < extra else 0)
            groups.append(tuple(range(start, stop)))
            start = stop
        return groups
    raise ValueError(f"mode must be one of {SPLIT_MODES}, got {mode!r}")


_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def angle_physics_factory(index: int, device: torch.device | str, factory_kwargs: dict) -> ParallelBeamProjector:
    r"""deepinv factory of the operator :math:`A_k` of view group ``index``.

    For ``deepinv.distributed.distribute(angle_physics_factory, ctx, num_operators=parts,
    type_object="linear_physics", factory_kwargs={...})``.

    :param int index: the group :math:`k`, ``0 <= index < parts``.
    :param torch.device, str device: the rank's device.
    :param dict factory_kwargs: ``geometry`` (:meth:`ParallelBeamGeometry.to_dict` or the geometry itself),
        ``parts`` (number of groups), and optionally ``mode`` (default ``"interleaved"``), ``dtype``
        (``"float32"`` or ``"float64"``, default ``"float32"``) and ``backend``.
    :return: a :class:`~distinv.tomography.projector.ParallelBeamProjector` of the group's views.

    >>> kwargs = {"geometry": {"size": 16, "views": 10}, "parts": 3}
    >>> angle_physics_factory(2, "cpu", kwargs).views
    (2, 5, 8)
    """
    if not isinstance(factory_kwargs, dict):
        raise TypeError(f"factory_kwargs must be a dict, got {type(factory_kwargs).__name__}")
    allowed = {"geometry", "parts", "mode", "dtype", "backend"}
    missing = sorted({"geometry", "parts"} - set(factory_kwargs))
    unknown = sorted(set(factory_kwargs) - allowed)
    if missing or unknown:
        raise ValueError(f"factory_kwargs needs keys ['geometry', 'parts'] and may hold {sorted(allowed)}; "
                         f"missing {missing}, unknown {unknown}")
    geometry = factory_kwargs["geometry"]
    if not isinstance(geometry, ParallelBeamGeometry):
        geometry = ParallelBeamGeometry.from_dict(geometry)
    parts = factory_kwargs["parts"]
    groups = view_groups(geometry.views, parts, factory_kwargs.get("mode", "interleaved"))
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < parts:
        raise ValueError(f"index must be an integer in [0, {parts}) for parts={parts}, got {index!r}")
    dtype = factory_kwargs.get("dtype", "float32")
    if dtype not in _DTYPES:
        raise ValueError(f"factory_kwargs['dtype'] must be one of {tuple(_DTYPES)}, got {dtype!r}")
    return ParallelBeamProjector(geometry, views=groups[index], device=device, dtype=_DTYPES[dtype],
                                 backend=factory_kwargs.get("backend"))
