"""Run a benchmark grid: every point in fresh ranks, results stored as they come.

Each point of a :class:`~distinv.bench.config.BenchConfig` runs its use case's rank entry point through
:func:`distinv.launch` (``nprocs`` local ranks; one rank runs in the calling process) and its rows go to
the :class:`~distinv.bench.store.ResultsStore` at once. Points already stored with ``status == "ok"``
are skipped unless ``force``; a point that raises (or times out) is stored with its error and the grid
goes on. Several processes may run grids into one store at once: each point runs only while this
process holds its lock in the store, so no point is run twice and none is lost.

Under ``torchrun`` or SLURM (``RANK`` and ``WORLD_SIZE`` set) the same call runs in place: every rank
of the job walks the grid, points whose ``nprocs`` differs from the job's world size are skipped, rank
0 decides which points are left to do and alone writes the store. A point that fails on one rank only
may leave the others waiting in a collective until the process-group timeout: on a cluster give each
job a grid that is known to run.

>>> import tempfile
>>> cfg = BenchConfig.from_dict({"name": "doc", "results_dir": tempfile.mkdtemp(), "fixed": {
...     "use_case": "allreduce", "size": 8, "iterations": 2, "device": "cpu"}, "grid": {"nprocs": [1]}})
>>> summary = run_config(cfg, verbose=False)
>>> len(summary.ran), len(run_config(cfg, verbose=False).skipped)
(1, 1)
"""

from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distinv.bench.config import BenchConfig, load_config, point_id
from distinv.bench.provenance import collect_provenance
from distinv.bench.registry import get_use_case
from distinv.bench.store import DEFAULT_LOCK_MAX_AGE_S, STATUS_ERROR, STATUS_OK, ResultsStore
from distinv.launch import launch

__all__ = ["run_config", "run_point", "RunSummary", "in_place", "threads_per_rank"]

_MAX_ERROR_CHARS = 4000


@dataclass
class RunSummary:
    """What :func:`run_config` did, as lists of run ids.

    :param list ran: points run successfully.
    :param list skipped: points left out (already done, or another world size under torchrun).
    :param list failed: points that raised; their error is in the store.
    :param str results_dir: the store's folder.
    :param list busy: points left to another process that held their lock.
    """

    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    results_dir: str = ""
    busy: list[str] = field(default_factory=list)


def in_place() -> bool:
    """Whether this process is already a rank of a job (``torchrun`` / SLURM set ``RANK`` and ``WORLD_SIZE``)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def run_point(params: dict[str, Any], timeout_s: float | None = None) -> dict[str, Any]:
    """Run one point of a grid on ``params["nprocs"]`` ranks and return rank 0's result.

    :param dict params: the point (``use_case`` and ``nprocs`` included; see :meth:`BenchConfig.points`).
    :param float timeout_s: seconds before the ranks are stopped (:class:`distinv.LaunchTimeout`).
    :return: the entry point's ``{"history", "final", "per_rank"}``.
    """
    entry = get_use_case(params["use_case"]).load()
    nprocs = params["nprocs"]
    device = params.get("device") or "auto"
    launch_device = device.split(":")[0] if device != "auto" else "auto"
    # GPU ranks start with spawn: a forkserver that preloaded a module touching CUDA would fork ranks that
    # cannot use it ("Cannot re-initialize CUDA in forked subprocess", seen on an H100 node).
    start_method = "spawn" if launch_device == "cuda" else "auto"
    return launch(entry, params, nprocs=nprocs, device=launch_device, timeout=timeout_s,
                  threads=threads_per_rank(params), start_method=start_method)


def threads_per_rank(params: dict[str, Any]) -> int:
    """The point's ``threads``, else ``max(1, cores // nprocs)`` (the launcher's rule, also for one rank).

    :param dict params: the point.
    """
    return params.get("threads") or max(1, (os.cpu_count() or 1) // params["nprocs"])


def run_config(config: BenchConfig | str | Path, *, results_dir: str | Path | None = None, force: bool = False,
               verbose: bool = True, lock_max_age_s: float | None = None) -> RunSummary:
    """Run every point of a grid that is not done yet, storing each as it finishes.

    Several processes may run grids into one store at once: a point is run only while its lock is held
    (:meth:`ResultsStore.try_lock`), so a point that another process is running is left to it, and one
    that another process finished meanwhile is not run again.

    :param config: a :class:`BenchConfig` or the path of a YAML configuration.
    :param str results_dir: store folder; default the configuration's ``results_dir``.
    :param bool force: rerun points stored as done before this call.
    :param bool verbose: print one line per point.
    :param float lock_max_age_s: age after which another process's lock on a point is stale; default
        twice the configuration's ``timeout_s`` plus a minute (no point runs longer), else a day.
    :return: a :class:`RunSummary`.
    """
    if not isinstance(config, BenchConfig):
        config = load_config(config)
    if lock_max_age_s is None:
        lock_max_age_s = 2 * config.timeout_s + 60 if config.timeout_s else DEFAULT_LOCK_MAX_AGE_S
    store = ResultsStore(results_dir if results_dir is not None else config.results_dir, lock_max_age_s)
    summary = RunSummary(results_dir=str(store.root))
    called_at = time.time()
    points = config.points()
    rank, world = _job_rank_world()
    todo = [force or not store.is_done(point_id(p)) for p in points]
    if in_place():
        todo = launch(_rank0_choice, todo)
    for index, (params, wanted) in enumerate(zip(points, todo), start=1):
        run_id = point_id(params)
        label = f"[{index}/{len(points)}] {run_id} " + " ".join(f"{k}={params[k]}" for k in config.grid)
        if not wanted or (in_place() and params["nprocs"] != world):
            summary.skipped.append(run_id)
            if verbose and rank == 0:
                reason = "done" if not wanted else f"needs {params['nprocs']} ranks, the job has {world}"
                print(f"{label}: skipped ({reason})")
            continue
        lock, reason = _claim(store, run_id, force, called_at) if rank == 0 else (None, "")
        claimed = lock is not None
        if in_place():  # every rank of the job follows rank 0's claim
            claimed, reason = launch(_rank0_choice, (claimed, reason))
        if not claimed:
            (summary.busy if reason.startswith("running") else summary.skipped).append(run_id)
            if verbose and rank == 0:
                print(f"{label}: skipped ({reason})")
            continue
        try:
            _run_and_store(params, run_id, label, config, store, summary, rank, verbose)
        finally:
            if lock is not None:
                lock.release()
    return summary


def _claim(store: ResultsStore, run_id: str, force: bool, called_at: float):
    """``(lock, "")`` when this process should run the point now, else ``(None, why not)``."""
    lock = store.try_lock(run_id)
    if lock is None:
        holder = store.lock_holder(run_id) or {}
        return None, f"running elsewhere: pid {holder.get('pid')} on {holder.get('host')}"
    stored_at = store.stored_at(run_id)
    if store.is_done(run_id) and (not force or (stored_at is not None and stored_at >= called_at)):
        lock.release()
        return None, "done meanwhile by another process" if stored_at and stored_at >= called_at else "done"
    return lock, ""


def _run_and_store(params: dict[str, Any], run_id: str, label: str, config: BenchConfig, store: ResultsStore,
                   summary: RunSummary, rank: int, verbose: bool) -> None:
    """Run one point and store its rows (rank 0), or its error when it fails."""
    meta = {"config_name": config.name, "config_hash": config.config_hash, **_launch_meta(params)}
    started = time.perf_counter()
    try:
        result = run_point(params, timeout_s=config.timeout_s)
    except Exception as exc:  # noqa: BLE001 - a failed point is recorded and the grid goes on
        meta["wall_s"] = time.perf_counter() - started
        summary.failed.append(run_id)
        if rank == 0:
            store.write_run(run_id, [{**params, **meta, "status": STATUS_ERROR, "error": _error_text(exc)}])
            if verbose:
                print(f"{label}: FAILED ({type(exc).__name__}: {str(exc).strip().splitlines()[-1][:200]})")
        return
    meta["wall_s"] = time.perf_counter() - started
    summary.ran.append(run_id)
    if rank == 0:
        rows, ranks = _tidy(params, meta, result)
        store.write_run(run_id, rows, ranks)
        if verbose:
            per_iter = sum(r["t_total"] for r in rows) / len(rows)
            print(f"{label}: ok, {len(rows)} iterations, {per_iter:.3g} s/iteration")


def _rank0_choice(todo: Any) -> Any:
    """Under torchrun: every rank adopts rank 0's choice (the points to run, or one point's claim)."""
    from distinv.bench.measure import gather_objects

    return gather_objects(todo, site="bench.plan")[0]


def _job_rank_world() -> tuple[int, int]:
    if in_place():
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    return 0, 1


def _launch_meta(params: dict[str, Any]) -> dict[str, Any]:
    import torch

    device = params.get("device") or "auto"
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return {**collect_provenance(device.split(":")[0]), "threads_per_rank": threads_per_rank(params),
            "launcher": "torchrun" if in_place() else "distinv.launch"}


def _tidy(params: dict[str, Any], meta: dict[str, Any], result: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    """Rows (run × iteration) and rank rows of a successful run."""
    final = {k: v for k, v in (result.get("final") or {}).items() if isinstance(v, (int, float, str, bool))}
    base = {**params, **meta, **final, "status": STATUS_OK, "error": ""}
    rows = [{**base, **step} for step in result["history"]]
    if not rows:
        raise ValueError(f"use case {params['use_case']!r} returned an empty history")
    ranks = [dict(r) for r in result.get("per_rank") or []]
    return rows, ranks


def _error_text(exc: BaseException) -> str:
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    remote = getattr(exc, "remote_traceback", "")
    if remote:
        text = f"{text}\n{remote}" if remote not in text else text
    return text[-_MAX_ERROR_CHARS:]
