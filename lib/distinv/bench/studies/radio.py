r"""Benchmarks of the radio use case (chapter 03), each printing a JSON document (``--out`` writes it too).

``gradient``
    The data term's gradient :math:`\nabla f(x) = \sum_k A_k^\top(A_kx - y_k)` against the number of
    visibilities, for 1 and 2 ranks (one thread each: 2 ranks use 2 cores against 1) and both NUFFT backends,
    through the solver's own data term (deepinv's ``DistributedDataFidelity``: each rank its block of
    visibilities, then one all-reduce of the image, measured by the ledger). The (u, v) points are a
    MeerKAT track (:meth:`~distinv.radio.observation.ObservationConfig.with_visibilities`), each rank
    building only its block. Target: at :math:`10^7` visibilities 2 ranks are at least 1.7x faster. The
    2-rank launches also time all-reduces of several sizes, fitted to the latency-bandwidth model of
    chapter 10 (:class:`~distinv.bench.studies.scaling.CollectiveCost`), which :func:`data_term_model` uses to extend
    the measured parts to 64 ranks.
``backends``
    finufft against deepinv's torchkbnufft, A and Aᴴ (:func:`distinv.radio.speed.measure_backends`); target:
    finufft at least 10x faster at :math:`10^6` visibilities and 512².
``equivalence``
    The same PnP-HQS run on 1, 2, 3 ranks (one block per rank): final SNR and logSNR must agree to 0.01 dB.
``quality``
    A held-out sky simulated in the simulator's environment (``.venv-sim``), the wavelet baseline over a
    grid of weights (tuned in the same run) and PnP-HQS with the radio prior: SNR and logSNR of each, and
    whether PnP beats the grid's best wavelet run in each (best by SNR for the SNR, by logSNR for the logSNR).

Examples::

    OMP_NUM_THREADS=1 python -m distinv.bench.studies.radio gradient --vis 1e5 1e6 1e7 --out results/radio/gradient_cpu.json
    python -m distinv.bench.studies.radio backends --npix 512 --vis 1e6 --out results/radio/backends_cpu.json
    python -m distinv.bench.studies.radio equivalence --ms obs.ms --npix 256 --cell 2 --out results/radio/equivalence_cpu.json
    python -m distinv.bench.studies.radio quality --out results/radio/quality_cpu.json

:func:`gpu_operator_check` is the GPU figure (``make gpu-check``): :math:`10^8` visibilities at 4096².
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Sequence

from distinv.bench.output import add_output_arguments, emit_document, refuse_existing_output

__all__ = ["gradient_study", "gradient_rank", "synthetic_block_factory", "backend_study", "equivalence_study",
           "quality_study", "data_term_model", "collective_from_study", "gpu_operator_check", "main",
           "HELD_OUT_SEED", "WAVELET_WEIGHTS", "CHAPTER_SKY", "CHAPTER_OBSERVATION"]

#: Seed of the benchmarks' held-out sky: outside the radio prior's training and validation seeds.
HELD_OUT_SEED = 11
#: Wavelet weights tried by the quality study.
WAVELET_WEIGHTS = (0.05, 0.2, 1.0, 2.0, 4.0)
#: The chapter's sky and track (the quality study's defaults): 256² of 2 arcsec, MeerKAT's 64 dishes, 4 h.
CHAPTER_SKY = {"npix": 256, "cell_arcsec": 2.0}
CHAPTER_OBSERVATION = {"duration_s": 4 * 3600.0, "n_times": 25, "n_channels": 1, "noise_jy": 0.005}
#: All-reduce sizes (bytes) timed on 2 ranks by the gradient study, for the latency-bandwidth fit.
ALLREDUCE_SIZES = (4 * 128 ** 2, 4 * 256 ** 2, 4 * 512 ** 2, 4 * 1024 ** 2)


# --------------------------------------------------------------------------- gradient against visibilities


def synthetic_block_factory(index: int, device, factory_kwargs: dict):
    """deepinv factory: block ``index`` of ``blocks`` of a MeerKAT track of ``n_visibilities`` points, weights 1.

    ``factory_kwargs``: ``n_visibilities``, ``blocks``, ``npix``, ``backend``, ``seed``. The cell is 0.9 of the
    Nyquist limit of the whole track's longest baseline; the block's measurements are random (seeded by
    ``(seed, index)``): the gradient's cost does not depend on the data.
    """
    import numpy as np
    import torch

    from distinv.radio.blocks import VisibilityBlockOperator
    from distinv.radio.ms import VisibilityBlock, rows_for_rank
    from distinv.radio.nufft import max_cell_rad
    from distinv.radio.observation import ObservationConfig

    n = int(factory_kwargs["n_visibilities"])
    uvw = ObservationConfig().with_visibilities(n).uvw_wavelengths()[:n]
    cell = 0.9 * max_cell_rad(float(np.abs(uvw[:, :2]).max()))
    start, stop = rows_for_rank(n, int(factory_kwargs["blocks"]), index)
    rng = np.random.default_rng([int(factory_kwargs["seed"]), index])
    vis = rng.standard_normal(stop - start) + 1j * rng.standard_normal(stop - start)
    block = VisibilityBlock(np.ascontiguousarray(uvw[start:stop]), vis, np.ones(stop - start), (start, stop),
                            stop - start)
    del uvw
    return VisibilityBlockOperator(block, int(factory_kwargs["npix"]), cell, backend=factory_kwargs["backend"],
                                   device=torch.device(device))


def _median(fn, repeats: int, barrier) -> tuple[float, list[float]]:
    fn()  # warm-up: plans, interpolation tables
    times = []
    for _ in range(repeats):
        barrier()
        tic = time.perf_counter()
        fn()
        barrier()
        times.append(time.perf_counter() - tic)
    return statistics.median(times), times


def gradient_rank(cfg: dict) -> dict | None:
    """Rank function: the median gradient time of ``cfg`` (``n_visibilities``, ``npix``, ``backend``, ``repeats``,
    ``threads``, ``allreduce_sizes``), its ledger-measured communication, and 2-rank all-reduce timings."""
    import torch
    from deepinv.distributed import distribute

    from distinv.distributed import comm
    from distinv.solvers.context import AccountedContext
    from distinv.solvers.data_term import StackedDataTerm

    torch.set_num_threads(int(cfg.get("threads", 1)))
    rank, world = comm.world()
    distributed = world > 1

    def barrier():
        if distributed:
            torch.distributed.barrier()

    with AccountedContext("physics", torch.device("cpu")) as ctx:
        tic = time.perf_counter()
        kwargs = {"n_visibilities": cfg["n_visibilities"], "blocks": world, "npix": cfg["npix"],
                  "backend": cfg["backend"], "seed": 0}
        physics = distribute(synthetic_block_factory, ctx, num_operators=world, type_object="linear_physics",
                             factory_kwargs=kwargs)
        setup_s = time.perf_counter() - tic
        y = [None] * world
        for index, op in zip(physics.local_indexes, physics.local_physics):
            y[index] = op.y
        data = StackedDataTerm(physics, y)
        x = torch.rand(1, 1, cfg["npix"], cfg["npix"], generator=torch.Generator().manual_seed(1))
        with comm.accounting() as ledger:
            seconds, times = _median(lambda: data.gradient(x), int(cfg["repeats"]), barrier)
            calls = int(cfg["repeats"]) + 1
            comm_s = ledger.summary()["seconds"] / calls
            comm_bytes = ledger.summary()["bytes"] / calls
        allreduce = {}
        if distributed:
            for nbytes in cfg.get("allreduce_sizes", ()):
                buffer = torch.ones(nbytes // 4)
                allreduce[nbytes] = _median(lambda: comm.all_reduce(buffer, site="bench.allreduce"),
                                            int(cfg["repeats"]), barrier)[0]
    if rank != 0:
        return None
    return {"t_grad": seconds, "t_grad_runs": times, "t_comm": comm_s, "comm_bytes": comm_bytes,
            "t_compute": seconds - comm_s, "setup_s": setup_s, "threads": torch.get_num_threads(),
            "allreduce": allreduce, "visibilities_rank0": int(sum(op.n_visibilities for op in physics.local_physics))}


def gradient_study(visibilities: Sequence[int] = (10**5, 10**6, 10**7), ranks: Sequence[int] = (1, 2),
                   backends: Sequence[str] = ("finufft", "deepinv"), npix: int = 512, repeats: int = 5,
                   threads: int = 1, max_deepinv_visibilities: int | None = None) -> dict:
    """Median gradient seconds per (backend, visibilities, ranks); the 2-rank speedup at the largest count.

    :param visibilities: visibility counts.
    :param ranks: rank counts.
    :param backends: ``"finufft"``, ``"deepinv"``.
    :param int npix: image side.
    :param int repeats: timed gradients per point (after one warm-up), ``>= 1``.
    :param int threads: torch threads per rank (1: two ranks use two cores against one).
    :param int max_deepinv_visibilities: skip deepinv above this count (``None``: no limit).
    """
    import distinv
    from distinv.bench.provenance import collect_provenance

    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    rows = []
    for backend in backends:
        for n in visibilities:
            if backend == "deepinv" and max_deepinv_visibilities is not None and n > max_deepinv_visibilities:
                continue
            for nprocs in ranks:
                cfg = {"n_visibilities": int(n), "npix": npix, "backend": backend, "repeats": repeats,
                       "threads": threads, "allreduce_sizes": ALLREDUCE_SIZES if nprocs == 2 else ()}
                tic = time.perf_counter()
                out = distinv.launch(gradient_rank, cfg, nprocs=nprocs, threads=threads, timeout=7200)
                rows.append({"backend": backend, "n_visibilities": int(n), "nprocs": nprocs,
                             "wall_s": time.perf_counter() - tic,
                             **{k: v for k, v in out.items() if k != "allreduce"},
                             "allreduce": {str(k): v for k, v in out["allreduce"].items()}})
                print(f"gradient {backend} {n:.0e} visibilities, {nprocs} rank(s): {rows[-1]['t_grad']:.4f} s",
                      file=sys.stderr, flush=True)
    speedups = {}
    for backend in backends:
        for n in visibilities:
            one = [r for r in rows if (r["backend"], r["n_visibilities"], r["nprocs"]) == (backend, n, 1)]
            two = [r for r in rows if (r["backend"], r["n_visibilities"], r["nprocs"]) == (backend, n, 2)]
            if one and two:
                speedups[f"{backend}:{n}"] = one[0]["t_grad"] / two[0]["t_grad"]
    largest = max(visibilities)
    return {"study": "radio gradient", "config": {"visibilities": list(map(int, visibilities)), "ranks": list(ranks),
                                                  "backends": list(backends), "npix": npix, "repeats": repeats,
                                                  "threads_per_rank": threads},
            "rows": rows, "speedup_2_over_1": speedups,
            "targets": {"speedup_at": largest, "speedup_target": 1.7,
                        "speedup_finufft": speedups.get(f"finufft:{largest}")},
            "provenance": collect_provenance()}


def collective_from_study(document: dict):
    """The all-reduce model (:class:`~distinv.bench.studies.scaling.CollectiveCost`) fitted to the 2-rank all-reduce
    timings of a gradient study (several sizes: latency and inverse bandwidth)."""
    import pandas as pd

    from distinv.bench.studies.scaling import CollectiveCost

    records = [{"use_case": "allreduce", "nprocs": 2, "comm_bytes": int(nbytes), "t_comm": seconds}
               for row in document["rows"] if row["nprocs"] == 2 for nbytes, seconds in row["allreduce"].items()]
    if not records:
        raise ValueError("the gradient study has no 2-rank all-reduce timings to fit")
    fitted = CollectiveCost.fit(pd.DataFrame(records))
    return CollectiveCost(max(fitted.latency_s, 0.0), max(fitted.seconds_per_byte, 0.0))


def data_term_model(document: dict, backend: str = "finufft", n_visibilities: int | None = None,
                    nprocs: Sequence[int] = (1, 2, 4, 8, 16, 32, 64)):
    r"""Predicted gradient time on :math:`P` ranks from the measured parts of a gradient study:

    .. math:: T(P) = c_0 + c_{\text{vis}}\,\frac{K}{P} + \underbrace{2(P-1)\,\alpha
              + \tfrac{2(P-1)}{P}\,n_{\text{bytes}}\,\gamma}_{\text{ring all-reduce of the image}},

    with :math:`c_{\text{vis}}` (compute seconds per visibility) and :math:`c_0` (per gradient: the NUFFT's
    FFTs and spreading set-up on the image grid) fitted to the one-rank compute times against the number of
    visibilities :math:`K`, and :math:`\alpha, \gamma` fitted to the measured 2-rank all-reduces
    (:func:`collective_from_study`). The image's FFTs do not shrink with :math:`P` (every rank grids its
    own visibilities onto the whole image), so :math:`c_0` stays.

    :param dict document: a gradient study (:func:`gradient_study`).
    :param str backend: whose measurements.
    :param int n_visibilities: :math:`K` (default: the study's largest).
    :param nprocs: rank counts.
    :return: a DataFrame ``nprocs, t_compute, t_comm, t_total, speedup, efficiency`` and the fitted constants.
    """
    import numpy as np
    import pandas as pd

    one = sorted((r["n_visibilities"], r["t_compute"]) for r in document["rows"]
                 if r["backend"] == backend and r["nprocs"] == 1)
    if len(one) < 2:
        raise ValueError(f"need one-rank gradient times of {backend!r} at >= 2 visibility counts, got {len(one)}")
    counts, seconds = np.array(one, dtype=float).T
    slope, intercept = np.polyfit(counts, seconds, 1)
    slope, intercept = max(slope, 0.0), max(intercept, 0.0)
    collective = collective_from_study(document)
    k = float(n_visibilities or max(counts))
    nbytes = 4 * document["config"]["npix"] ** 2
    rows = [{"nprocs": p, "t_compute": intercept + slope * k / p, "t_comm": collective.allreduce(nbytes, p)}
            for p in nprocs]
    table = pd.DataFrame(rows)
    table["t_total"] = table["t_compute"] + table["t_comm"]
    table["speedup"] = table["t_total"].iloc[0] / table["t_total"] if nprocs[0] == 1 else float("nan")
    table["efficiency"] = table["speedup"] / table["nprocs"]
    constants = {"seconds_per_visibility": float(slope), "fixed_seconds": float(intercept),
                 "latency_s": collective.latency_s, "seconds_per_byte": collective.seconds_per_byte,
                 "n_visibilities": k, "image_bytes": nbytes}
    return table, constants


# --------------------------------------------------------------------------- the other studies


def backend_study(npix: int = 512, n_visibilities: int = 10**6, repeats: int = 5, threads: int | None = None) -> dict:
    """finufft against deepinv (A and Aᴴ, median seconds, ratios, agreement) and the 10x target."""
    from distinv.bench.provenance import collect_provenance
    from distinv.radio.speed import measure_backends

    result = measure_backends(npix, n_visibilities, repeats=repeats, threads=threads)
    speedup = result["speedup_finufft_over_deepinv"]
    return {"study": "radio backends", **result, "targets": {"speedup_target": 10.0,
                                                             "met": min(speedup.values()) >= 10.0},
            "provenance": collect_provenance()}


def _run(cfg: dict, nprocs: int) -> dict:
    from distinv.bench.use_cases.reconstruction import launch_reconstruction

    return launch_reconstruction("radio", cfg, nprocs)


def equivalence_study(ms: str, npix: int, cell_arcsec: float, iterations: int = 5, ranks: Sequence[int] = (1, 2, 3),
                      weights: str = "auto", extra: dict | None = None) -> dict:
    """Final SNR and logSNR of the same PnP-HQS run on each rank count (one block per rank) and the largest gap."""
    from distinv.bench.provenance import collect_provenance

    rows = []
    for nprocs in ranks:
        cfg = {"ms": ms, "npix": npix, "cell_arcsec": cell_arcsec, "iterations": iterations, "weights": weights,
               "solver": "pnp-hqs", "pinv_iterations": 0, **(extra or {})}
        final = _run(cfg, nprocs)["final"]
        rows.append({"nprocs": nprocs, "snr": final["snr"], "logsnr": final["logsnr"], "psnr": final["psnr"],
                     "t_per_iteration": final["t_per_iteration"]})
    gaps = {key: max(r[key] for r in rows) - min(r[key] for r in rows) for key in ("snr", "logsnr")}
    return {"study": "radio equivalence", "config": {"ms": ms, "npix": npix, "cell_arcsec": cell_arcsec,
                                                     "iterations": iterations, "weights": weights, **(extra or {})},
            "rows": rows, "max_gap_db": gaps, "target_db": 0.01, "met": max(gaps.values()) <= 0.01,
            "provenance": collect_provenance()}


def simulate_held_out(folder: str | Path, seed: int = HELD_OUT_SEED, npix: int = CHAPTER_SKY["npix"],
                      cell_arcsec: float = CHAPTER_SKY["cell_arcsec"], min_flux_jy: float = 1e-5,
                      engine: str = "matvis", observation: dict | None = None) -> dict:
    """Write a held-out sky (seed outside the prior's) and simulate its MS in the simulator's environment.

    :return: ``{"ms", "sky", "seconds", "simulator"}`` (the simulator's printed JSON).
    """
    from distinv.radio.simulation import run_simulator, track
    from distinv.radio.sky import SkyConfig, radio_sky, save_sky

    obs = {**CHAPTER_OBSERVATION, **(observation or {})}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sky = radio_sky(SkyConfig(npix=npix, cell_arcsec=cell_arcsec), seed=seed)
    sky[sky <= min_flux_jy] = 0.0  # what is simulated is the truth
    sky_path = save_sky(folder / f"sky{seed}.npz", sky, cell_arcsec, 60.0, -30.0, overwrite=True)
    ms = folder / f"held_out_{seed}.ms"
    run = run_simulator(sky_path, ms, track(obs["duration_s"], obs["n_times"], obs["n_channels"]), engine=engine,
                        noise_jy=obs["noise_jy"], force=True)
    return {"ms": str(ms), "sky": str(ms.with_suffix(".sky.npz")), **run}


def quality_study(ms: str | None = None, npix: int = CHAPTER_SKY["npix"],
                  cell_arcsec: float = CHAPTER_SKY["cell_arcsec"], nprocs: int = 2, iterations: int = 20,
                  wavelet_iterations: int = 30, wavelet_weights: Sequence[float] = WAVELET_WEIGHTS,
                  weights: str = "auto", seed: int = HELD_OUT_SEED, workdir: str | None = None,
                  extra: dict | None = None) -> dict:
    """Dirty, wavelet over its weight grid and PnP-HQS on one held-out sky: SNR and logSNR; PnP must beat the
    best wavelet run (by SNR) in both.

    :param str ms: an MS with its ``.sky.npz``; ``None``: simulate the held-out sky ``seed`` into ``workdir``.
    """
    import tempfile

    from distinv.bench.provenance import collect_provenance

    simulated = None
    if ms is None:
        simulated = simulate_held_out(workdir or tempfile.mkdtemp(prefix="radio_quality_"), seed, npix, cell_arcsec)
        ms = simulated["ms"]
    base = {"ms": ms, "npix": npix, "cell_arcsec": cell_arcsec, "pinv_iterations": 0, **(extra or {})}
    pnp = _run({**base, "solver": "pnp-hqs", "iterations": iterations, "weights": weights}, nprocs)
    final = pnp["final"]
    rows = [{"method": "dirty", "wavelet_weight": None, "snr": final["snr_dirty"], "logsnr": final["logsnr_dirty"],
             "psnr": final["psnr_dirty"], "seconds": None}]
    for weight in wavelet_weights:
        wavelet = _run({**base, "solver": "wavelet", "iterations": wavelet_iterations, "wavelet_weight": weight},
                       nprocs)["final"]
        rows.append({"method": "wavelet", "wavelet_weight": weight, "snr": wavelet["snr"], "logsnr": wavelet["logsnr"],
                     "psnr": wavelet["psnr"], "seconds": wavelet["t_iterations"]})
    rows.append({"method": f"pnp-hqs ({iterations} it.)", "wavelet_weight": None, "snr": final["snr"],
                 "logsnr": final["logsnr"], "psnr": final["psnr"], "seconds": final["t_iterations"]})
    wavelets = [r for r in rows if r["method"] == "wavelet"]
    best = max(wavelets, key=lambda r: r["snr"])
    best_log = max(wavelets, key=lambda r: r["logsnr"])  # each metric against the grid's best for it
    return {"study": "radio quality", "config": {**base, "nprocs": nprocs, "iterations": iterations,
                                                 "wavelet_iterations": wavelet_iterations, "weights": weights,
                                                 "seed": seed},
            "simulation": simulated, "rows": rows, "pnp_history": pnp["history"],
            "targets": {"pnp_minus_best_wavelet_snr_db": final["snr"] - best["snr"],
                        "pnp_minus_best_wavelet_logsnr_db": final["logsnr"] - best_log["logsnr"],
                        "best_wavelet_weight": best["wavelet_weight"],
                        "best_wavelet_weight_logsnr": best_log["wavelet_weight"],
                        "met": final["snr"] > best["snr"] and final["logsnr"] > best_log["logsnr"]},
            "provenance": collect_provenance()}


# --------------------------------------------------------------------------- GPU


def gpu_operator_check(device: str = "cuda", dry_run: bool = False, n_visibilities: int = 10**8,
                       npix: int = 4096, repeats: int = 5) -> dict:
    """The radio operator on a GPU (``make gpu-check``): A and Aᴴ at ``n_visibilities`` and ``npix``² (a MeerKAT
    track), median seconds and peak memory, with cufinufft when its wheel imports, else deepinv's torchkbnufft
    on CUDA; a failure of the first is recorded and the second used. ``dry_run``: 10⁴ visibilities, 64², CPU
    (finufft), the same code path.

    :param str device: ``"cuda"`` (``"cpu"`` with ``dry_run``).
    :param bool dry_run: tiny sizes on CPU.
    """
    import numpy as np
    import torch

    from distinv.radio.nufft import RadioNUFFT, max_cell_rad
    from distinv.radio.observation import ObservationConfig

    if dry_run:
        device, n_visibilities, npix, repeats = "cpu", 10**4, 64, 2
    device = torch.device(device)
    tic = time.perf_counter()
    uvw = ObservationConfig().with_visibilities(int(n_visibilities)).uvw_wavelengths()[: int(n_visibilities)]
    uv = torch.from_numpy(np.ascontiguousarray(uvw[:, :2]))
    del uvw
    cell = 0.9 * max_cell_rad(float(uv.abs().max()))
    out: dict = {"device": device.type, "n_visibilities": int(n_visibilities), "npix": npix, "repeats": repeats,
                 "uv_seconds": time.perf_counter() - tic, "attempts": {}}
    candidates = ["finufft"] if device.type == "cpu" else ["cufinufft", "deepinv"]
    x = torch.rand(1, 1, npix, npix, device=device)
    for backend in candidates:
        try:
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            physics = RadioNUFFT(uv, npix, cell, backend=backend, device=device)
            y = physics.A(x)
            a_s = _device_median(lambda: physics.A(x), repeats, device)
            at_s = _device_median(lambda: physics.A_adjoint(y), repeats, device)
            peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
            out["attempts"][backend] = {"A_seconds": a_s, "A_adjoint_seconds": at_s, "peak_bytes": peak}
            out["backend"] = backend
            del physics, y
            break
        except Exception as error:  # noqa: BLE001 - recorded, the next backend is tried
            out["attempts"][backend] = {"error": f"{type(error).__name__}: {error}"[:500]}
    return out


def _device_median(fn, repeats: int, device) -> float:
    import torch

    times = []
    for _ in range(repeats + 1):  # the first is a warm-up
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        tic = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - tic)
    return statistics.median(times[1:])


# --------------------------------------------------------------------------- command line


def _counts(values: list[float]) -> list[int]:
    counts = [int(v) for v in values]
    if any(c < 1 or c != v for c, v in zip(counts, values)):
        raise argparse.ArgumentTypeError(f"visibility counts must be whole numbers >= 1, got {values}")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m distinv.bench.studies.radio",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="study", required=True)
    grad = sub.add_parser("gradient", help="gradient time against visibilities, 1 and 2 ranks, both backends")
    grad.add_argument("--vis", type=float, nargs="+", default=[1e5, 1e6, 1e7])
    grad.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    grad.add_argument("--backends", nargs="+", default=["finufft", "deepinv"])
    grad.add_argument("--npix", type=int, default=512)
    grad.add_argument("--repeats", type=int, default=5)
    grad.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    grad.add_argument("--max-deepinv-vis", type=float, default=None)
    back = sub.add_parser("backends", help="finufft against deepinv, A and Aᴴ")
    back.add_argument("--npix", type=int, default=512)
    back.add_argument("--vis", type=float, default=1e6)
    back.add_argument("--repeats", type=int, default=5)
    back.add_argument("--threads", type=int, default=None)
    equiv = sub.add_parser("equivalence", help="the same PnP run on 1, 2, 3 ranks")
    equiv.add_argument("--ms", default=None, help="an MS with its .sky.npz (default: simulate the held-out sky)")
    equiv.add_argument("--npix", type=int, default=CHAPTER_SKY["npix"])
    equiv.add_argument("--cell", type=float, default=CHAPTER_SKY["cell_arcsec"])
    equiv.add_argument("--iterations", type=int, default=5)
    equiv.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 3])
    equiv.add_argument("--weights", default="auto")
    qual = sub.add_parser("quality", help="wavelet grid and PnP-HQS on a held-out sky")
    qual.add_argument("--ms", default=None, help="an MS with its .sky.npz (default: simulate the held-out sky)")
    qual.add_argument("--npix", type=int, default=CHAPTER_SKY["npix"])
    qual.add_argument("--cell", type=float, default=CHAPTER_SKY["cell_arcsec"])
    qual.add_argument("--nprocs", type=int, default=2)
    qual.add_argument("--iterations", type=int, default=20)
    qual.add_argument("--wavelet-iterations", type=int, default=30)
    qual.add_argument("--wavelet-weights", type=float, nargs="+", default=list(WAVELET_WEIGHTS))
    qual.add_argument("--weights", default="auto")
    qual.add_argument("--workdir", default=None, help="where the simulated MS goes (default: a temporary folder)")
    for p in (grad, back, equiv, qual):
        add_output_arguments(p)
    args = parser.parse_args(argv)
    refuse_existing_output(parser, args)
    if args.study == "gradient":
        document = gradient_study(_counts(args.vis), args.ranks, args.backends, args.npix, args.repeats, args.threads,
                                  None if args.max_deepinv_vis is None else int(args.max_deepinv_vis))
    elif args.study == "backends":
        document = backend_study(args.npix, _counts([args.vis])[0], args.repeats, args.threads)
    elif args.study == "equivalence":
        ms = args.ms or simulate_held_out(args.workdir if hasattr(args, "workdir") and args.workdir else
                                          _temporary())["ms"]
        document = equivalence_study(ms, args.npix, args.cell, args.iterations, args.ranks, args.weights)
    else:
        document = quality_study(args.ms, args.npix, args.cell, args.nprocs, args.iterations, args.wavelet_iterations,
                                 args.wavelet_weights, args.weights, workdir=args.workdir)
    emit_document(document, args)
    return 0


def _temporary() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="radio_bench_")


if __name__ == "__main__":
    raise SystemExit(main())
