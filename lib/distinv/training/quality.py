r"""The quality targets of the unrolled network on held-out photos, measured like the runner measures.

For every photo (its central square resized to ``size``², the images problem of chapter 01 with ``K``
frames and noise ``sigma_n``), on the ranks of the current process group:

- the unrolled network (:class:`~distinv.solvers.unrolled.UnrolledSolver`): PSNR after every layer and
  the wall time of every layer (``Solver.step``: rank 0, device synchronised);
- PnP-HQS run afresh for every iteration count of ``hqs_iterations`` (its schedule depends on the count),
  with the library's defaults (5 CG steps per iteration): final PSNR and wall time of the run;
- when the network takes another number of CG steps per layer, PnP-HQS once more with as many iterations as
  layers *and* the network's CG steps (``hqs_same_cg``), so that the gain can be read either way.

Both use the same problem, start point (the normalised back-projection) and tiled prior settings. Rank 0
returns per-photo rows; :func:`quality_summary` computes the targets from them: the mean-PSNR gain over
PnP-HQS with as many iterations as the network has layers, and how soon (wall time) each method first
reaches PnP-HQS's best mean PSNR over the iteration counts.
"""

from __future__ import annotations

import statistics
import time

import torch

__all__ = ["HELD_OUT_PHOTOS", "HQS_ITERATIONS", "quality_rank", "quality_summary", "write_photo_files"]

#: Held out from the denoisers' and the unrolled network's training (``data_scripts/train_denoiser.py``).
HELD_OUT_PHOTOS = ("camera", "coins", "chelsea", "motorcycle")
#: PnP-HQS iteration counts of the best-PSNR search (1..50).
HQS_ITERATIONS = (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 15, 20, 25, 30, 40, 50)


def write_photo_files(names, folder) -> dict[str, str]:
    """Write ``skimage.data`` photos as PNG files (the images problem reads a file for names it does not ship).

    :param names: photo names (``"motorcycle"``: the stereo pair's left view).
    :param folder: an existing folder.
    :return: name → path.
    """
    import os

    import skimage.io

    from distinv.training.data import _skimage_photo

    paths = {}
    for name in names:
        path = os.path.join(folder, f"{name}.png")
        skimage.io.imsave(path, _skimage_photo(name), check_contrast=False)
        paths[name] = path
    return paths


def _psnr(problem, x) -> float | None:
    metrics = problem.quality(x)
    return None if metrics is None else float(metrics["psnr"])


def quality_rank(cfg: dict) -> list[dict] | None:
    """Rank function: evaluate the unrolled network and PnP-HQS on every photo of ``cfg["photos"]``.

    :param dict cfg: ``photos`` (name → image path), ``size``, ``K``, ``sigma_n``, ``blur_sigma``,
        ``channels``, ``weights`` (the unrolled network), ``hqs_iterations`` (iteration counts), ``patch``,
        ``overlap``, ``device``.
    :return: on rank 0, one dict per photo; ``None`` on the others.
    """
    from distinv.launch import rank_device
    from distinv.problems.images import DeblurringConfig, setup_rank
    from distinv.solvers.config import PriorConfig, SolverConfig
    from distinv.solvers.context import AccountedContext
    from distinv.solvers.iterations import make_solver

    device = rank_device() if cfg.get("device", "auto") == "auto" else torch.device(cfg["device"])
    prior_cfg = PriorConfig(patch=cfg["patch"], overlap=cfg["overlap"])
    rows = []
    with AccountedContext("physics", device) as ctx, AccountedContext("prior", device) as prior_ctx:
        for name, path in cfg["photos"].items():
            problem_cfg = DeblurringConfig(size=cfg["size"], K=cfg["K"], sigma_n=cfg["sigma_n"],
                                           blur_sigma=tuple(cfg["blur_sigma"]), image=path, channels=cfg["channels"])
            problem = setup_rank(problem_cfg, ctx, device)
            x_init, _, aty = problem.start(0)
            prior_hqs = problem.prior(prior_cfg, prior_ctx)
            row = {"image": name, "psnr_init": _psnr(problem, x_init)}
            solver = make_solver(SolverConfig(solver="unrolled", unrolled_weights=cfg["weights"]), problem.data,
                                 problem.prior(prior_cfg, prior_ctx), x_init, 1.0, problem.sigma_n, aty)
            with torch.no_grad():  # warm-up of both networks (allocations, thread pools), untimed
                prior_hqs(x_init, 0.05)
                solver.prior(x_init, 0.05)
            psnrs, seconds = [], []
            for t in range(solver.config.iterations):
                seconds.append(solver.step(t).t_total)
                psnrs.append(_psnr(problem, solver.x))
            row["unrolled"] = {"layers": solver.config.iterations, "psnr_per_layer": psnrs,
                               "seconds_per_layer": seconds, "psnr": psnrs[-1], "seconds": sum(seconds),
                               "sigmas": solver.sigmas}
            runs = []
            for n in cfg["hqs_iterations"]:
                hqs = make_solver(SolverConfig(solver="pnp-hqs", iterations=n), problem.data, prior_hqs, x_init, 1.0,
                                  problem.sigma_n, aty)
                times = [hqs.step(t).t_total for t in range(n)]
                runs.append({"iterations": n, "psnr": _psnr(problem, hqs.x), "seconds": sum(times),
                             "seconds_per_iteration": times})
            row["hqs"] = runs
            cg = solver.model.cg_iterations
            if cg != SolverConfig().cg_iterations:
                hqs = make_solver(SolverConfig(solver="pnp-hqs", iterations=solver.config.iterations, cg_iterations=cg),
                                  problem.data, prior_hqs, x_init, 1.0, problem.sigma_n, aty)
                times = [hqs.step(t).t_total for t in range(solver.config.iterations)]
                row["hqs_same_cg"] = {"iterations": solver.config.iterations, "cg_iterations": cg,
                                      "psnr": _psnr(problem, hqs.x), "seconds": sum(times)}
            rows.append(row)
    return rows if ctx.rank == 0 else None


def quality_summary(rows: list[dict]) -> dict:
    r"""The quality targets from :func:`quality_rank`'s rows (means over photos).

    - ``psnr_unrolled``, ``psnr_hqs_same`` (PnP-HQS with as many iterations as layers), ``gain_db``, and with the
      network's CG steps too (``psnr_hqs_same_cg``, ``gain_db_same_cg``) when they differ from the default;
    - ``hqs_best``: the iteration count with the best mean PSNR, that PSNR, the mean wall time of those runs;
    - ``unrolled_to_hqs_best_s``: mean cumulative wall time of the network up to the first layer whose mean
      PSNR reaches ``hqs_best`` (``None``: never), and ``speedup_to_hqs_best`` = HQS's time / the network's;
    - median seconds per layer / per iteration (every layer and iteration of the run), and their ratio.

    :param list rows: per-photo rows.
    """
    layers = rows[0]["unrolled"]["layers"]
    mean = statistics.fmean
    psnr_unrolled = mean(r["unrolled"]["psnr"] for r in rows)
    counts = [run["iterations"] for run in rows[0]["hqs"]]
    by_count = {n: [next(run for run in r["hqs"] if run["iterations"] == n) for r in rows] for n in counts}
    hqs_mean = {n: mean(run["psnr"] for run in runs) for n, runs in by_count.items()}
    best_n = max(counts, key=lambda n: (hqs_mean[n], -n))
    best_psnr = hqs_mean[best_n]
    hqs_best_s = mean(run["seconds"] for run in by_count[best_n])
    per_layer = [mean(r["unrolled"]["psnr_per_layer"][t] for r in rows) for t in range(layers)]
    cumulative = [mean(sum(r["unrolled"]["seconds_per_layer"][:t + 1]) for r in rows) for t in range(layers)]
    reach = next((t for t in range(layers) if per_layer[t] >= best_psnr), None)
    unrolled_s = None if reach is None else cumulative[reach]
    layer_s = statistics.median(s for r in rows for s in r["unrolled"]["seconds_per_layer"])
    iteration_s = statistics.median(s for r in rows for run in r["hqs"] for s in run["seconds_per_iteration"])
    out = {
        "photos": [r["image"] for r in rows], "layers": layers,
        "psnr_init": mean(r["psnr_init"] for r in rows),
        "psnr_unrolled": psnr_unrolled, "psnr_unrolled_per_layer": per_layer,
        "seconds_unrolled_cumulative": cumulative,
        "psnr_hqs_by_iterations": {str(n): hqs_mean[n] for n in counts},
        "seconds_hqs_by_iterations": {str(n): mean(run["seconds"] for run in by_count[n]) for n in counts},
        "hqs_best": {"iterations": best_n, "psnr": best_psnr, "seconds": hqs_best_s},
        "unrolled_to_hqs_best_s": unrolled_s,
        "speedup_to_hqs_best": None if unrolled_s is None else hqs_best_s / unrolled_s,
        "median_seconds_per_layer": layer_s, "median_seconds_per_hqs_iteration": iteration_s,
        "layer_over_iteration_time": layer_s / iteration_s,
    }
    if all("hqs_same_cg" in r for r in rows):
        out["psnr_hqs_same_cg"] = mean(r["hqs_same_cg"]["psnr"] for r in rows)
        out["gain_db_same_cg"] = psnr_unrolled - out["psnr_hqs_same_cg"]
        out["cg_iterations_unrolled"] = rows[0]["hqs_same_cg"]["cg_iterations"]
    if layers in hqs_mean:
        out["psnr_hqs_same"] = hqs_mean[layers]
        out["gain_db"] = psnr_unrolled - hqs_mean[layers]
        out["per_photo_gain_db"] = {r["image"]: r["unrolled"]["psnr"] - next(
            run["psnr"] for run in r["hqs"] if run["iterations"] == layers) for r in rows}
    return out
