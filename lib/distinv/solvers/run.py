r"""Rank entry point of every use case's reconstruction: ``run_reconstruction(cfg)``.

``cfg["problem"]`` names the use case (``"images"``, the default: multi-frame deblurring of chapter 01;
``"ct"``: tomography of chapter 02; see :func:`distinv.problems.problem_names`). The loop here never
knows which: each rank builds its share of the problem through the interface of
:mod:`distinv.problems.base` (its data term, start point and baselines, prior, metrics), iterates, and
rank 0 returns a plain dict:

``{"config", "history": [row per iteration], "final", "per_rank": [row per rank], ...}`` plus the
problem's previews (for the images problem: ``"x_hat_preview", "x_true_preview", "x_init_preview",
"measurement_previews", "crops"``).

Run it on ``N`` local ranks with ``distinv.launch(run_reconstruction, cfg, nprocs=N)``, or in place
under ``torchrun``. A history row holds ``iteration, sigma, psnr, ssim`` (and the problem's other
metrics), ``t_total, t_grad, t_prior, t_comm, t_comm_data, t_comm_prior, comm_bytes`` (summed over
ranks) and ``peak_mem_bytes`` (max over ranks, so far: the iterations' peak, with what setup left
resident but without the quality metrics' temporaries). Times are rank 0's (every rank waits for the
others inside the collectives).

From a shell (prints the result without tensors as JSON)::

    python -m distinv.solvers --nprocs 2 --set size=512 solver=pnp-hqs iterations=12
    python -m distinv.solvers --problem ct --nprocs 2 --set size=96 views=60 distribution=slabs
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict, dataclass, fields

import torch

from distinv.bench.measure import PeakTracker
from distinv.distributed import comm
from distinv.problems import DEFAULT_PROBLEM, get_problem, problem_names
from distinv.solvers.config import DIRECT_SOLVERS, SOLVERS, PriorConfig, SolverConfig
from distinv.solvers.context import AccountedContext
from distinv.solvers.iterations import PhaseTimes, make_solver

__all__ = ["RunOptions", "split_config", "default_config", "run_reconstruction", "DEVICES", "parse_settings"]

DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class RunOptions:
    """What is measured and returned.

    :param str device: ``"auto"`` (the rank's device from :func:`distinv.rank_device`), ``"cpu"`` or ``"cuda"``.
    :param bool progress: tqdm progress bar on rank 0.
    :param int metrics_every: PSNR/SSIM every this many iterations (and at the last one).
    :param int preview_size: side of the downsampled previews returned.
    :param int crop_size: side of the full-resolution crops around a tile corner.
    :param bool map_large_allocations: pin glibc's mmap threshold on every rank first
        (:func:`distinv.allocator.map_large_allocations`): less resident memory, slower products (it stays
        pinned in the rank's process after the run).
    """

    device: str = "auto"
    progress: bool = True
    metrics_every: int = 1
    preview_size: int = 256
    crop_size: int = 96
    map_large_allocations: bool = False

    def __post_init__(self):
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if not isinstance(self.map_large_allocations, bool):
            raise ValueError(f"map_large_allocations must be true or false, got {self.map_large_allocations!r}")
        for name in ("metrics_every", "preview_size", "crop_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _sections(problem: str) -> dict:
    return {"problem": get_problem(problem).config_type(), "solver": SolverConfig, "prior": PriorConfig,
            "run": RunOptions}


def _problem_name(cfg: dict) -> str:
    name = cfg.get("problem", DEFAULT_PROBLEM)
    get_problem(name)  # a clear error for an unknown name
    return name


def _as_dict(section) -> dict:
    out = asdict(section)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def default_config(problem: str = DEFAULT_PROBLEM) -> dict:
    """Every accepted key of ``problem`` with its default (a flat dict, ``"problem"`` first).

    :param str problem: one of :func:`distinv.problems.problem_names`.

    >>> cfg = default_config(); cfg["problem"], cfg["solver"], cfg["size"], cfg["patch"]
    ('images', 'pnp-hqs', 512, 256)
    """
    out: dict = {"problem": problem}
    spec = get_problem(problem)
    for name, section in _sections(problem).items():
        values = _as_dict(section())
        if name in ("solver", "prior") and spec.solver_defaults:
            values.update({k: v for k, v in spec.solver_defaults.items() if k in values})
        out.update(values)
    return out


def split_config(cfg: dict) -> tuple:
    """Validate a flat config dict and split it into its four option bundles.

    :param dict cfg: ``"problem"`` (default ``"images"``) and keys of the problem's option bundle, of
        :class:`SolverConfig`, :class:`PriorConfig` and :class:`RunOptions`; missing keys take their defaults.
    :return: ``(problem_config, SolverConfig, PriorConfig, RunOptions)``.
    :raises ValueError: an unknown key (named), or a bad value (named by the bundle).

    >>> split_config({"size": 64, "solver": "tv"})[1].solver
    'tv'
    """
    if not isinstance(cfg, dict):
        raise TypeError(f"cfg must be a dict, got {type(cfg).__name__}")
    name = _problem_name(cfg)
    sections = _sections(name)
    known = {f.name: section_name for section_name, section in sections.items() for f in fields(section)}
    unknown = sorted(set(cfg) - set(known) - {"problem"})
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown} for problem {name!r}; accepted keys: {sorted(known)}")
    parts = {section_name: {} for section_name in sections}
    defaults = get_problem(name).solver_defaults or {}
    for key, value in defaults.items():
        parts[known[key]][key] = value
    for key, value in cfg.items():
        if key != "problem":
            parts[known[key]][key] = tuple(value) if isinstance(value, list) else value
    return tuple(section(**parts[section_name]) for section_name, section in sections.items())


# --------------------------------------------------------------------------- entry point


def run_reconstruction(cfg: dict) -> dict | None:
    """Solve the problem of ``cfg`` on the ranks of the current process group.

    A collective: call it on every rank (``distinv.launch`` does). Returns the result dict on rank 0
    and ``None`` on the others.

    :param dict cfg: flat options (see :func:`default_config`; unknown keys raise ``ValueError``).
    :return: see the module docstring.

    >>> import distinv
    >>> cfg = dict(size=48, K=2, blur_sigma=[1.0, 0.5], iterations=2, weights="random", patch=16,
    ...            overlap=8, progress=False, pinv_iterations=2)
    >>> result = distinv.launch(run_reconstruction, cfg, nprocs=1)
    >>> len(result["history"]), result["final"]["nprocs"], result["x_hat_preview"].shape
    (2, 1, torch.Size([1, 48, 48]))
    """
    problem_cfg, solver_cfg, prior_cfg, options = split_config(cfg)
    spec = get_problem(_problem_name(cfg))
    from distinv.launch import resolve_device

    device = resolve_device(options.device)
    if options.map_large_allocations:
        from distinv.allocator import map_large_allocations

        map_large_allocations()
    started = time.perf_counter()
    with AccountedContext("physics", device) as ctx, AccountedContext("prior", device) as prior_ctx:
        rank, world = ctx.rank, ctx.world_size
        with comm.accounting() as ledger:
            problem = spec.build(problem_cfg, ctx, device)
            data = problem.data
            setup = {}
            t0 = time.perf_counter()
            sqnorm = problem.sqnorm()
            setup["t_norm"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            x_init, baselines, aty = problem.start(solver_cfg.pinv_iterations)
            t_start = time.perf_counter() - t0
            from distinv.validation import check_reconstruction_inputs  # NaN/Inf: an error now, not a NaN PSNR

            check_reconstruction_inputs(x_init, baselines, aty, problem.data)
            direct = solver_cfg.solver in DIRECT_SOLVERS
            if direct and problem.direct_solver != solver_cfg.solver:
                raise ValueError(f"solver={solver_cfg.solver!r} is a direct reconstruction that problem {spec.name!r} "
                                 f"does not have (its own: {problem.direct_solver!r}); use one of "
                                 f"{[s for s in SOLVERS if s not in DIRECT_SOLVERS]}")
            if solver_cfg.solver == "tv":
                prior = problem.tv_prox(solver_cfg.tv_inner_iterations)
            elif solver_cfg.solver == "wavelet":
                prior = problem.wavelet_prox(solver_cfg.tv_inner_iterations)
            elif not direct:
                prior = problem.prior(prior_cfg, prior_ctx)
            solver = None if direct else make_solver(solver_cfg, data, prior, x_init, sqnorm, problem.sigma_n, aty,
                                                     tv_scale=problem.tv_scale)
            if solver is not None:
                solver_cfg = solver.config  # "unrolled": the network's layer count replaces the iterations
            setup["t_setup"] = time.perf_counter() - started
            # the iterations' peak: what setup left resident counts, the metrics' temporaries do not
            peak = PeakTracker(device)

            history, local_rows = [], []
            if direct:  # one row: the start point, timed as the whole of setup's start()
                with peak.excluded():
                    metrics = problem.quality(x_init)
                row = {"iteration": 0, "sigma": None, **asdict(PhaseTimes(t_total=t_start, t_grad=t_start))}
                history.append({**row, **(metrics or {})})
                local_rows.append({"peak_mem_bytes": peak.read(), "comm_bytes": 0})
            bar = _progress_bar(solver_cfg.iterations, enabled=options.progress and rank == 0 and not direct)
            for t in range(0 if direct else solver_cfg.iterations):
                times = solver.step(t)
                denoised = solver_cfg.solver not in ("tv", "wavelet")
                row = {"iteration": t + 1, "sigma": solver.sigmas[t] if denoised else None}
                row.update(asdict(times))
                last = t + 1 == solver_cfg.iterations
                if (t + 1) % options.metrics_every == 0 or last:
                    with peak.excluded():
                        metrics = problem.quality(solver.x)
                    if rank == 0:
                        row.update(metrics)
                elif rank == 0:
                    row["psnr"] = row["ssim"] = None
                local_rows.append({"peak_mem_bytes": peak.read(), "comm_bytes": times.comm_bytes})
                history.append(row)
                if bar is not None:
                    bar.update(1)
                    if row.get("psnr") is not None:
                        bar.set_postfix(psnr=f"{row['psnr']:.2f}")
            if bar is not None:
                bar.close()
            x_hat = x_init if direct else solver.x
            with torch.no_grad(), peak.excluded():
                final_metrics = problem.quality(x_hat)
                baseline_metrics = {name: None if x is None else problem.quality(x) for name, x in baselines.items()}

        per_rank_local = {
            "rank": rank, **problem.rank_record(),
            "peak_mem_bytes": peak.read(),
            "comm_bytes": int(ledger.summary()["bytes"]), "comm_seconds": float(ledger.summary()["seconds"]),
            "rows": local_rows,
            "previews": problem.rank_previews(options.preview_size),
        }
        gathered = [None] * world
        comm.all_gather_object(gathered, per_rank_local, site="results.gather")
        extras = problem.result_extras(x_hat, x_init, baselines, gathered, options, prior_cfg)

    if rank != 0:
        return None
    for t, row in enumerate(history):
        row["peak_mem_bytes"] = max(r["rows"][t]["peak_mem_bytes"] for r in gathered)
        row["comm_bytes"] = sum(r["rows"][t]["comm_bytes"] for r in gathered)
    config = {"problem": spec.name, **_as_dict(problem_cfg), **_as_dict(solver_cfg), **_as_dict(prior_cfg),
              **_as_dict(options)}
    per_rank = [{k: v for k, v in entry.items() if k not in ("rows", "previews")} for entry in gathered]
    final = _final(final_metrics, baseline_metrics, solver_cfg, sqnorm, history, per_rank, world, device, setup)
    return {"config": config, "history": history, "final": final, "per_rank": per_rank, **extras}


def _final(metrics: dict, baseline_metrics: dict, solver_cfg, sqnorm: float, history: list, per_rank: list,
           world: int, device: torch.device, setup: dict) -> dict:
    out = dict(metrics)
    for name, values in baseline_metrics.items():
        for key in metrics:
            out[f"{key}_{name}"] = None if values is None else values[key]
    iteration_times = [row["t_total"] for row in history]
    per_iteration = statistics.median(iteration_times[1:] if len(iteration_times) > 1 else iteration_times)
    out.update({
        "t_per_iteration": per_iteration, "t_iterations": sum(iteration_times),
        "t_grad": statistics.median(row["t_grad"] for row in history),
        "t_prior": statistics.median(row["t_prior"] for row in history),
        "t_comm": statistics.median(row["t_comm"] for row in history),
        "sqnorm": sqnorm, "step": solver_cfg.step_scale / sqnorm if solver_cfg.solver == "pnp-pgd" else None,
        "peak_mem_bytes": max(r["peak_mem_bytes"] for r in per_rank),
        "comm_bytes_per_iteration": sum(row["comm_bytes"] for row in history) / len(history),
        "iterations": sum(1 for row in history if row["iteration"] > 0), "nprocs": world, "device": _device_name(device),
        "threads": torch.get_num_threads(), **setup,
    })
    return out


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="iterations", leave=True)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"cpu ({platform.processor() or platform.machine()})"


def summary(result: dict) -> dict:
    """The JSON-able part of a result (no tensors): config, final, per_rank, history.

    :param dict result: what :func:`run_reconstruction` returned.
    """
    return {key: result[key] for key in ("config", "final", "per_rank", "history")}


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_settings(items) -> dict:
    """``["key=value", ...]`` (command-line ``--set`` entries) as a dict, values parsed as JSON when possible.

    >>> parse_settings(["size=64", "projector=matrix-free"])
    {'size': 64, 'projector': 'matrix-free'}
    """
    settings = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set entries must be KEY=VALUE, got {item!r}")
        settings[key] = _parse_value(value)
    return settings


def main(argv: list[str] | None = None) -> dict:
    """``python -m distinv.solvers --nprocs N --set key=value ...``: run and print JSON."""
    import distinv

    parser = argparse.ArgumentParser(prog="python -m distinv.solvers", description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default=DEFAULT_PROBLEM, choices=problem_names(),
                        help="the use case (default: %(default)s)")
    parser.add_argument("--nprocs", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=None)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config entries, values parsed as JSON when possible")
    args = parser.parse_args(argv)
    try:
        cfg = parse_settings(args.set)
    except ValueError as error:
        parser.error(str(error))
    cfg.setdefault("progress", False)
    cfg["problem"] = args.problem
    result = summary(distinv.launch(run_reconstruction, cfg, nprocs=args.nprocs, timeout=args.timeout))
    print(json.dumps(result, indent=1))
    return result
