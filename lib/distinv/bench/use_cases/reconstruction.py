"""The reconstruction use cases (``images``, ``ct``, ``radio``): one problem of :mod:`distinv.problems` solved on several ranks.

A thin adapter between the runner's parameters and :func:`distinv.solvers.run.run_reconstruction`, which
returns the runner's contract (``history``, ``final``, ``per_rank``). The use case's registry name is the
problem's name; runner-only keys (``use_case``, ``nprocs``, ``threads``, ``warmup``) are dropped,
everything else is passed on.

>>> params = problem_params("ct")
>>> params["progress"], params["distribution"], "problem" in params
(False, 'slabs', False)
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_problem", "problem_params", "image_params", "ct_params", "radio_params", "launch_reconstruction"]


def problem_params(problem: str) -> dict[str, Any]:
    """The reconstruction's parameters for ``problem`` with their defaults (no progress bar in benchmarks).

    :param str problem: one of :func:`distinv.problems.problem_names`.
    """
    from distinv.solvers.run import default_config

    params = {**default_config(problem), "progress": False}
    del params["problem"]  # the use case's name says it
    return params


def image_params() -> dict[str, Any]:
    """Parameters of the ``images`` use case (multi-frame deblurring)."""
    return problem_params("images")


def ct_params() -> dict[str, Any]:
    """Parameters of the ``ct`` use case (parallel-beam tomography)."""
    return problem_params("ct")


def radio_params() -> dict[str, Any]:
    """Parameters of the ``radio`` use case (radio interferometric imaging of a Measurement Set)."""
    return problem_params("radio")


def run_problem(cfg: dict[str, Any]) -> dict[str, Any] | None:
    """Rank entry point: solve the problem named by ``cfg["use_case"]`` (rank 0 returns the result).

    :param dict cfg: runner parameters (see :func:`problem_params` and :data:`~distinv.bench.registry.COMMON_PARAMS`).
    """
    from distinv.problems import problem_names
    from distinv.solvers.run import run_reconstruction

    problem = cfg.get("use_case") or "images"
    if problem not in problem_names():
        raise ValueError(f"use_case must name a problem, one of {problem_names()}, got {problem!r}")
    accepted = problem_params(problem)
    return run_reconstruction({"problem": problem, **{key: value for key, value in cfg.items() if key in accepted}})


def launch_reconstruction(problem: str, cfg: dict[str, Any], nprocs: int, timeout: float = 7200.0,
                          entry=None) -> dict[str, Any]:
    """Solve ``problem`` with ``cfg`` on ``nprocs`` fresh ranks (no progress bar); rank 0's result plus
    ``wall_seconds``, the launch's wall time (the studies' runs).

    :param str problem: one of :func:`distinv.problems.problem_names`.
    :param dict cfg: :func:`distinv.solvers.run.run_reconstruction` options.
    :param int nprocs: ranks.
    :param float timeout: seconds before the launch is stopped.
    :param callable entry: the ranks' function, called with the config (``None``:
        :func:`~distinv.solvers.run.run_reconstruction`; e.g. one that warms up first).
    """
    import time

    import distinv
    from distinv.solvers.run import run_reconstruction

    started = time.perf_counter()
    result = distinv.launch(entry or run_reconstruction, {"problem": problem, "progress": False, **cfg},
                            nprocs=nprocs, timeout=timeout)
    result["wall_seconds"] = time.perf_counter() - started
    return result
