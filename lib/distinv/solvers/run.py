r"""Rank entry point of the multi-frame deblurring chapter and benchmark: ``run_reconstruction(cfg)``.

Run it on ``N`` local ranks with ``distinv.launch(run_reconstruction, cfg, nprocs=N)``, or in place
under ``torchrun``. Every rank builds only its operators and measurements, all ranks iterate on
the same (replicated) image, the prior is tiled across ranks, and rank 0 returns a plain dict:

``{"config", "history": [row per iteration], "final", "per_rank": [row per rank], "x_hat_preview",
"x_true_preview", "x_init_preview", "measurement_previews", "crops"}``

A history row holds ``iteration, sigma, psnr, ssim, t_total, t_grad, t_prior, t_comm, t_comm_data,
t_comm_prior, comm_bytes`` (summed over ranks) and ``peak_mem_bytes`` (max over ranks, so far: the
iterations' peak, with what setup left resident but without the quality metrics' temporaries, which
rank 0 alone computes at full resolution). Times are rank 0's (every rank waits for the others inside
the collectives).

From a shell (prints the result without tensors as JSON)::

    python -m distinv.solvers --nprocs 2 --set size=512 solver=pnp-hqs iterations=12
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
from distinv.problems.images import DeblurringConfig, distributed_problem, ground_truth
from distinv.solvers.config import PriorConfig, SolverConfig
from distinv.solvers.context import AccountedContext
from distinv.solvers.data_term import StackedDataTerm
from distinv.solvers.iterations import make_solver
from distinv.solvers.prior import load_prior_denoiser, tiled_prior

__all__ = ["RunOptions", "split_config", "default_config", "run_reconstruction", "DEVICES"]

DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class RunOptions:
    """What is measured and returned.

    :param str device: ``"auto"`` (the rank's device from :func:`distinv.rank_device`), ``"cpu"`` or ``"cuda"``.
    :param bool progress: tqdm progress bar on rank 0.
    :param int metrics_every: PSNR/SSIM every this many iterations (and at the last one).
    :param int preview_size: side of the downsampled previews returned.
    :param int crop_size: side of the full-resolution crops around a tile corner.
    """

    device: str = "auto"
    progress: bool = True
    metrics_every: int = 1
    preview_size: int = 256
    crop_size: int = 96

    def __post_init__(self):
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        for name in ("metrics_every", "preview_size", "crop_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


_SECTIONS = {"problem": DeblurringConfig, "solver": SolverConfig, "prior": PriorConfig, "run": RunOptions}


def default_config() -> dict:
    """Every accepted key with its default (a flat dict).

    >>> cfg = default_config(); cfg["solver"], cfg["size"], cfg["patch"]
    ('pnp-hqs', 512, 256)
    """
    out: dict = {}
    for section in _SECTIONS.values():
        out.update(asdict(section()))
    out["blur_sigma"] = list(out["blur_sigma"])
    return out


def split_config(cfg: dict) -> tuple[DeblurringConfig, SolverConfig, PriorConfig, RunOptions]:
    """Validate a flat config dict and split it into its four option bundles.

    :param dict cfg: keys of :class:`DeblurringConfig`, :class:`SolverConfig`, :class:`PriorConfig` and
        :class:`RunOptions`; missing keys take their defaults.
    :raises ValueError: an unknown key (named), or a bad value (named by the bundle).

    >>> split_config({"size": 64, "solver": "tv"})[1].solver
    'tv'
    """
    if not isinstance(cfg, dict):
        raise TypeError(f"cfg must be a dict, got {type(cfg).__name__}")
    known = {f.name: name for name, section in _SECTIONS.items() for f in fields(section)}
    unknown = sorted(set(cfg) - set(known))
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown}; accepted keys: {sorted(known)}")
    parts = {name: {} for name in _SECTIONS}
    for key, value in cfg.items():
        parts[known[key]][key] = value
    if "blur_sigma" in parts["problem"]:
        parts["problem"]["blur_sigma"] = tuple(parts["problem"]["blur_sigma"])
    return tuple(section(**parts[name]) for name, section in _SECTIONS.items())


# --------------------------------------------------------------------------- measurements


def _quality(x: torch.Tensor, x_true: torch.Tensor) -> tuple[float, float]:
    """deepinv's PSNR and SSIM (the latter by bands of rows: same value, bounded memory)."""
    from deepinv.loss.metric import PSNR

    from distinv.metrics import banded_ssim

    x = x.clamp(0.0, 1.0)
    return float(PSNR(max_pixel=1.0)(x, x_true)), float(banded_ssim(x, x_true, max_pixel=1.0))


def _preview(x: torch.Tensor, side: int) -> torch.Tensor:
    x = x.detach().clamp(0.0, 1.0)
    if max(x.shape[-2:]) > side:
        x = torch.nn.functional.interpolate(x, size=(side, side), mode="area")
    return x[0].float().cpu()


def _crop_box(size: int, patch: int, crop: int) -> tuple[int, int, int]:
    """A square around the corner where four tiles meet (or the centre if there is one tile)."""
    crop = min(crop, size)
    centre = patch if patch < size else size // 2
    top = int(min(max(centre - crop // 2, 0), size - crop))
    return top, top, crop


def _resolve_device(option: str) -> torch.device:
    from distinv.launch import rank_device

    device = rank_device()
    if option == "cpu":
        return torch.device("cpu")
    if option == "cuda" and device.type != "cuda":
        raise ValueError("device='cuda' but this rank has no GPU; use device='auto' or 'cpu'")
    return device


# --------------------------------------------------------------------------- entry point


def run_reconstruction(cfg: dict) -> dict | None:
    """Solve the multi-frame deblurring problem of ``cfg`` on the ranks of the current process group.

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
    problem, solver_cfg, prior_cfg, options = split_config(cfg)
    device = _resolve_device(options.device)
    started = time.perf_counter()
    with AccountedContext("physics", device) as ctx, AccountedContext("prior", device) as prior_ctx:
        rank, world = ctx.rank, ctx.world_size
        with comm.accounting() as ledger:
            x_true = ground_truth(problem, device)
            physics, y = distributed_problem(problem, ctx, x_true)
            data = StackedDataTerm(physics, y)
            setup = {}
            t0 = time.perf_counter()
            sqnorm = _sqnorm(physics, x_true, problem.seed)
            setup["t_norm"] = time.perf_counter() - t0
            with torch.no_grad():
                aty = data.back_projection()
                x_init = data.normalized_back_projection()
                x_pinv = (data.least_squares(x_init, solver_cfg.pinv_iterations, aty)
                          if solver_cfg.pinv_iterations else None)
            denoiser = None
            prior = None
            if solver_cfg.solver != "tv":
                denoiser = load_prior_denoiser(prior_cfg, problem.channels, device)
                prior = tiled_prior(denoiser, prior_cfg, prior_ctx)
            solver = make_solver(solver_cfg, data, prior, x_init, sqnorm, problem.sigma_n, aty)
            setup["t_setup"] = time.perf_counter() - started
            # the iterations' peak: what setup left resident counts, the metrics' temporaries do not
            peak = PeakTracker(device)

            history, local_rows = [], []
            bar = _progress_bar(solver_cfg.iterations, enabled=options.progress and rank == 0)
            for t in range(solver_cfg.iterations):
                times = solver.step(t)
                row = {"iteration": t + 1, "sigma": solver.sigmas[t] if solver_cfg.solver != "tv" else None}
                row.update(asdict(times))
                last = t + 1 == solver_cfg.iterations
                if rank == 0 and ((t + 1) % options.metrics_every == 0 or last):
                    with peak.excluded():
                        row["psnr"], row["ssim"] = _quality(solver.x, x_true)
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
            x_hat = solver.x

        per_rank_local = {
            "rank": rank, "operators": list(physics.local_indexes),
            "peak_mem_bytes": peak.read(),
            "comm_bytes": int(ledger.summary()["bytes"]), "comm_seconds": float(ledger.summary()["seconds"]),
            "rows": local_rows,
            "measurement_previews": {k: _preview(y[k], options.preview_size) for k in physics.local_indexes},
        }
        gathered = [None] * world
        comm.all_gather_object(gathered, per_rank_local, site="results.gather")

    if rank != 0:
        return None
    for t, row in enumerate(history):
        row["peak_mem_bytes"] = max(r["rows"][t]["peak_mem_bytes"] for r in gathered)
        row["comm_bytes"] = sum(r["rows"][t]["comm_bytes"] for r in gathered)
    return _result(problem, solver_cfg, prior_cfg, options, device, world, sqnorm, setup, history, gathered,
                   x_true, x_init, x_pinv, x_hat)


def _sqnorm(physics, x_true: torch.Tensor, seed: int) -> float:
    r""":math:`\|A\|^2` exactly, by a distributed power iteration."""
    generator = torch.Generator().manual_seed(seed)
    x0 = (1.0 + 0.1 * torch.rand(x_true.shape, generator=generator)).to(x_true.device)
    from distinv.distributed.norm import PowerIteration, stacked_sqnorm

    with torch.no_grad():
        return float(stacked_sqnorm(physics, x0, PowerIteration(max_iter=200, tol=1e-6)).value)


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="iterations", leave=True)


def _result(problem, solver_cfg, prior_cfg, options, device, world, sqnorm, setup, history, gathered,
            x_true, x_init, x_pinv, x_hat) -> dict:
    psnr, ssim = _quality(x_hat, x_true)
    psnr_init, ssim_init = _quality(x_init, x_true)
    psnr_pinv, ssim_pinv = _quality(x_pinv, x_true) if x_pinv is not None else (None, None)
    iteration_times = [row["t_total"] for row in history]
    per_iteration = statistics.median(iteration_times[1:] if len(iteration_times) > 1 else iteration_times)
    config = default_config()
    for section in (problem, solver_cfg, prior_cfg, options):
        config.update(asdict(section))
    config["blur_sigma"] = list(problem.blur_sigma)
    top, left, side = _crop_box(problem.size, prior_cfg.patch, options.crop_size)
    box = (..., slice(top, top + side), slice(left, left + side))
    previews = {}
    for entry in gathered:
        previews.update(entry.pop("measurement_previews"))
    per_rank = [{k: v for k, v in entry.items() if k != "rows"} for entry in gathered]
    final = {
        "psnr": psnr, "ssim": ssim, "psnr_init": psnr_init, "ssim_init": ssim_init,
        "psnr_pinv": psnr_pinv, "ssim_pinv": ssim_pinv,
        "t_per_iteration": per_iteration, "t_iterations": sum(iteration_times),
        "t_grad": statistics.median(row["t_grad"] for row in history),
        "t_prior": statistics.median(row["t_prior"] for row in history),
        "t_comm": statistics.median(row["t_comm"] for row in history),
        "sqnorm": sqnorm, "step": solver_cfg.step_scale / sqnorm if solver_cfg.solver == "pnp-pgd" else None,
        "peak_mem_bytes": max(r["peak_mem_bytes"] for r in per_rank),
        "comm_bytes_per_iteration": sum(row["comm_bytes"] for row in history) / len(history),
        "iterations": len(history), "nprocs": world, "device": _device_name(device),
        "threads": torch.get_num_threads(), **setup,
    }
    return {
        "config": config, "history": history, "final": final, "per_rank": per_rank,
        "x_hat_preview": _preview(x_hat, options.preview_size),
        "x_true_preview": _preview(x_true, options.preview_size),
        "x_init_preview": _preview(x_init, options.preview_size),
        "measurement_previews": [previews[k] for k in sorted(previews)],
        "crops": {"box": [top, left, side], "x_true": x_true[box][0].cpu(), "x_hat": x_hat[box][0].clamp(0, 1).cpu(),
                  "x_init": x_init[box][0].clamp(0, 1).cpu()},
    }


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


def main(argv: list[str] | None = None) -> dict:
    """``python -m distinv.solvers --nprocs N --set key=value ...``: run and print JSON."""
    import distinv

    parser = argparse.ArgumentParser(prog="python -m distinv.solvers", description=__doc__.splitlines()[0])
    parser.add_argument("--nprocs", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=None)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config entries, values parsed as JSON when possible")
    args = parser.parse_args(argv)
    cfg = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set entries must be KEY=VALUE, got {item!r}")
        cfg[key] = _parse_value(value)
    cfg.setdefault("progress", False)
    result = summary(distinv.launch(run_reconstruction, cfg, nprocs=args.nprocs, timeout=args.timeout))
    print(json.dumps(result, indent=1))
    return result
