"""Checks of inputs: data is finite before anything iterates on it; an integer option is an integer in its range.

A NaN or an infinity in an image, a filter or a measurement does not stop a solver: it spreads through
every operator and denoiser call and ends as a NaN PSNR after minutes of work. These checks name what
holds the bad values and how many there are, before the first iteration.

>>> check_finite("measurements", torch.tensor([1.0, float("nan"), float("inf")]))
Traceback (most recent call last):
...
ValueError: measurements must be finite (no NaN or Inf), got 1 NaN and 1 Inf among 3 values
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["check_finite", "check_reconstruction_inputs", "check_int"]


def check_finite(name: str, value: Any) -> None:
    """Raise when ``value`` holds a NaN or an infinity.

    :param str name: what ``value`` is, for the message (e.g. ``"measurements y[2]"``).
    :param value: a tensor or an array (integer data is always finite), or a list or tuple of them, in
        which case ``None`` entries are skipped and the message names the entry (``name[i]``).
    :raises ValueError: naming ``name``, the number of NaN and Inf values and the number of values.
    :raises TypeError: ``value`` is neither a tensor, an array nor a sequence of them.

    >>> check_finite("x", [None, torch.ones(2)])  # fine: nothing to report
    >>> check_finite("y", [torch.ones(2), torch.tensor([0.0, float("-inf")])])
    Traceback (most recent call last):
    ...
    ValueError: y[1] must be finite (no NaN or Inf), got 0 NaN and 1 Inf among 2 values
    """
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            if item is not None:
                check_finite(f"{name}[{index}]", item)
        return
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, an array or a list of them, got {type(value).__name__}")
    if not (value.is_floating_point() or value.is_complex()):
        return
    finite = torch.isfinite(value)
    if bool(finite.all()):
        return
    nan = int(torch.isnan(value).sum())
    raise ValueError(f"{name} must be finite (no NaN or Inf), got {nan} NaN and {int((~finite).sum()) - nan} Inf "
                     f"among {value.numel()} values")


def check_reconstruction_inputs(x_init: torch.Tensor, baselines: dict, back_projection: torch.Tensor | None,
                                data: Any) -> None:
    """What a reconstruction starts from must be finite: the start point, the baselines, :math:`A^\\top y` and
    the measurements :math:`y` of this rank's data term (``data.y``: a tensor, or a list with ``None`` for the
    operators of other ranks). Call it on every rank before the first iteration.

    :param torch.Tensor x_init: the start point.
    :param dict baselines: name → estimate (``None``: not computed).
    :param torch.Tensor back_projection: :math:`A^\\top y`, or ``None``.
    :param data: the problem's data term (its ``y``, when it has one, is checked).
    :raises ValueError: naming the first input that holds a NaN or an infinity.

    >>> class Data:
    ...     y = [None, torch.tensor([1.0, float("nan")])]
    >>> check_reconstruction_inputs(torch.zeros(2), {"pinv": None}, torch.zeros(2), Data())
    Traceback (most recent call last):
    ...
    ValueError: measurements y[1] must be finite (no NaN or Inf), got 1 NaN and 0 Inf among 2 values
    """
    measurements = getattr(data, "y", None)
    if measurements is not None:
        check_finite("measurements y", measurements)
    if back_projection is not None:
        check_finite("the back-projection A^T y", back_projection)
    check_finite("the start point", x_init)
    for name, estimate in baselines.items():
        if estimate is not None:
            check_finite(f"baseline {name!r}", estimate)


def check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` as an ``int`` if it is an integer (numpy's too, not a bool) in ``[low, high]``, else a clear error.

    :param str name: the option's name, for the message.
    :param value: the value given.
    :param int low: smallest allowed value.
    :param int high: largest allowed value (``None``: no bound).

    >>> check_int("size", np.int64(64), 16, 512)
    64
    >>> check_int("size", 8, 16, 512)
    Traceback (most recent call last):
    ...
    ValueError: size must be an integer in [16, 512], got 8
    """
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be an integer {allowed}, got {value}")
    return int(value)
