"""The ``images`` use case: multi-frame deblurring solved on several ranks (``distinv.solvers``).

A thin adapter between the runner's parameters and :func:`distinv.solvers.run.run_reconstruction`,
which returns the runner's contract (``history``, ``final``, ``per_rank``): runner-only keys
(``use_case``, ``nprocs``, ``threads``, ``warmup``) are dropped, everything else is passed on.

>>> params = image_params()
>>> params["progress"], "solver" in params
(False, True)
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_images", "image_params"]


def image_params() -> dict[str, Any]:
    """The reconstruction's parameters with their defaults (no progress bar in benchmarks)."""
    from distinv.solvers.run import default_config

    return {**default_config(), "progress": False}


def run_images(cfg: dict[str, Any]) -> dict[str, Any] | None:
    """Rank entry point: solve the problem of ``cfg`` (rank 0 returns the result, others ``None``).

    :param dict cfg: runner parameters (see :func:`image_params` and :data:`~distinv.bench.registry.COMMON_PARAMS`).
    """
    from distinv.solvers.run import run_reconstruction

    accepted = image_params()
    return run_reconstruction({key: value for key, value in cfg.items() if key in accepted})
