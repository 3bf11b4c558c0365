r"""Benchmarks of the tomography use case (chapter 02), each printing a JSON document.

``quality``
    One held-out textured phantom: FBP, CGLS, TV at every weight of a grid (tuned in the same run) and
    PnP, all through :func:`distinv.solvers.run_reconstruction`; the targets are PnP ≥ FBP + 5 dB and
    PnP ≥ best TV + 1 dB.
``equivalence``
    The same PnP run on 1, 2, 3 ranks in both distributions: the final PSNR must agree to 0.01 dB.
``memory``
    z-slab layout, one PnP iteration per (size, ranks): peak memory per rank above the process baseline
    (the imports and the code the first products load: each rank first makes a small warm-up run),
    against the ideal ``1/P`` of one rank; ``--limit-gib`` checks a largest case (512³ on 4 ranks: no rank
    above 4 GiB). ``--set projector=matrix-free patch=64 overlap=16 max_batch_size=1 map_large_allocations=true``
    measures the lean settings.

Examples::

    python -m distinv.bench.studies.ct quality --size 64 --views 60 --nprocs 2 --out results/ct/quality_cpu.json
    python -m distinv.bench.studies.ct equivalence --size 32 --iterations 3
    python -m distinv.bench.studies.ct memory --sizes 256 --ranks 1 2 4 --out results/ct/memory_cpu.json
    python -m distinv.bench.studies.ct memory --sizes 512 --ranks 4 --limit-gib 4 --out results/ct/memory_512_cpu.json
"""

from __future__ import annotations

import argparse
import time
from typing import Sequence

from distinv.bench.output import add_output_arguments, emit_document, refuse_existing_output

__all__ = ["quality_study", "equivalence_study", "memory_study", "reconstruction_after_warm_up", "gpu_operator_check",
           "main", "HELD_OUT_SEED", "TV_WEIGHTS"]

#: Seed of the chapter's and the benchmarks' phantom: outside the CT prior's training and validation seeds.
HELD_OUT_SEED = 7
#: The TV weights tried by the quality study.
TV_WEIGHTS = (0.0078125, 0.015625, 0.03125, 0.0625, 0.125, 0.25, 0.5, 1.0)


def _run(cfg: dict, nprocs: int, entry=None) -> dict:
    from distinv.bench.use_cases.reconstruction import launch_reconstruction

    return launch_reconstruction("ct", cfg, nprocs, entry=entry)


def quality_study(size: int = 64, views: int = 60, noise: float = 0.01, nprocs: int = 2,
                  iterations: int = 8, tv_iterations: int = 60, tv_weights: Sequence[float] = TV_WEIGHTS,
                  seed: int = HELD_OUT_SEED, weights: str = "auto", extra: dict | None = None) -> dict:
    """FBP, CGLS, TV over its weight grid and PnP-HQS on one phantom; returns the rows and the targets.

    :param int size: cube side.
    :param int views: projection angles.
    :param float noise: relative noise level.
    :param int nprocs: ranks of every run.
    :param int iterations: PnP iterations.
    :param int tv_iterations: TV (ADMM) iterations.
    :param tv_weights: TV weights to try.
    :param int seed: phantom seed (held out of the prior's training).
    :param str weights: the prior's weights.
    :param dict extra: more config keys for every run (e.g. ``distribution``).
    """
    base = {"size": size, "views": views, "noise": noise, "seed": seed, "pinv_iterations": 20, **(extra or {})}
    rows = []
    pnp = _run({**base, "solver": "pnp-hqs", "iterations": iterations, "weights": weights}, nprocs)
    final = pnp["final"]
    rows.append({"method": "fbp", "tv_weight": None, "psnr": final["psnr_fbp"], "ssim": final["ssim_fbp"],
                 "seconds": final["t_setup"]})
    rows.append({"method": "cgls (20 it.)", "tv_weight": None, "psnr": final["psnr_cgls"],
                 "ssim": final["ssim_cgls"], "seconds": None})
    for weight in tv_weights:
        tv = _run({**base, "solver": "tv", "iterations": tv_iterations, "tv_weight": weight,
                   "pinv_iterations": 0}, nprocs)
        rows.append({"method": "tv", "tv_weight": weight, "psnr": tv["final"]["psnr"], "ssim": tv["final"]["ssim"],
                     "seconds": tv["final"]["t_iterations"]})
    rows.append({"method": f"pnp-hqs ({iterations} it.)", "tv_weight": None, "psnr": final["psnr"],
                 "ssim": final["ssim"], "seconds": final["t_iterations"]})
    best_tv = max((r for r in rows if r["method"] == "tv"), key=lambda r: r["psnr"])
    return {
        "study": "ct quality", "config": {**base, "nprocs": nprocs, "iterations": iterations,
                                          "tv_iterations": tv_iterations, "weights": weights},
        "rows": rows, "pnp_history": pnp["history"],
        "targets": {"pnp_minus_fbp_db": final["psnr"] - final["psnr_fbp"],
                    "pnp_minus_best_tv_db": final["psnr"] - best_tv["psnr"], "best_tv_weight": best_tv["tv_weight"],
                    "pnp_minus_fbp_target_db": 5.0, "pnp_minus_best_tv_target_db": 1.0},
    }


def equivalence_study(size: int = 32, views: int = 24, iterations: int = 3, ranks: Sequence[int] = (1, 2, 3),
                      distributions: Sequence[str] = ("angles", "slabs"), weights: str = "auto",
                      seed: int = HELD_OUT_SEED) -> dict:
    """Final PSNR of the same PnP-HQS run on each rank count and distribution; the largest gap.

    With ``"angles"`` the operator is split into ``max(ranks)`` view groups whatever the rank count, so the
    operator is the same sum on every run (only who computes which term changes).
    """
    rows = []
    for distribution in distributions:
        for nprocs in ranks:
            cfg = {"size": size, "views": views, "iterations": iterations, "distribution": distribution,
                   "weights": weights, "seed": seed, "pinv_iterations": 0, "solver": "pnp-hqs"}
            if distribution == "angles":
                cfg["view_groups"] = max(ranks)
            result = _run(cfg, nprocs)
            rows.append({"distribution": distribution, "nprocs": nprocs, "psnr": result["final"]["psnr"],
                         "ssim": result["final"]["ssim"], "psnr_fbp": result["final"]["psnr_fbp"],
                         "psnr_history": [r["psnr"] for r in result["history"]]})
    psnrs = [r["psnr"] for r in rows]
    return {"study": "ct equivalence", "config": {"size": size, "views": views, "iterations": iterations},
            "rows": rows, "max_gap_db": max(psnrs) - min(psnrs), "target_db": 0.01}


#: Cube side of the small run a memory-study rank makes before the measured one (``patch`` 64 < 72: the
#: in-plane tiles' code runs too).
WARM_UP_SIZE = 72


def reconstruction_after_warm_up(cfg: dict) -> dict | None:
    """Rank entry of the memory study: a one-iteration run at :data:`WARM_UP_SIZE`, then ``cfg``'s run.

    The measured run's baseline is then the process with its code loaded: the pages of the libraries that
    the first products and network calls touch (MKL's sparse kernels, oneDNN's convolutions, lazily imported
    modules) are not counted as the run's data: at 128³ on one rank the baseline was 750 MiB without the
    warm-up and 913 MiB with it. Every rank count pays them
    alike, so leaving them in would hide how the data itself scales.
    """
    from distinv.solvers.run import run_reconstruction

    run_reconstruction({**cfg, "size": min(cfg["size"], WARM_UP_SIZE), "iterations": 1, "preview_size": 16})
    return run_reconstruction(cfg)


def memory_study(sizes: Sequence[int] = (256, 384), ranks: Sequence[int] = (1, 2, 4), views: int = 60,
                 weights: str = "auto", limit_gib: float | None = None, extra: dict | None = None) -> dict:
    """One PnP-HQS iteration in the z-slab layout per (size, ranks): per-rank peak memory above the baseline.

    :param dict extra: more config keys for every run (e.g. ``projector="matrix-free"``, ``patch``,
        ``max_batch_size``); recorded in the document's config.
    """
    rows = []
    extra = dict(extra or {})
    for size in sizes:
        for nprocs in ranks:
            cfg = {"size": size, "views": views, "iterations": 1, "distribution": "slabs", "weights": weights,
                   "pinv_iterations": 0, "solver": "pnp-hqs", "seed": HELD_OUT_SEED, "preview_size": 64, **extra}
            result = _run(cfg, nprocs, entry=reconstruction_after_warm_up)
            per_rank = result["per_rank"]
            worst = max(per_rank, key=lambda r: r["peak_mem_bytes"] - r["baseline_mem_bytes"])
            rows.append({
                "size": size, "nprocs": nprocs,
                "data_mib": (worst["peak_mem_bytes"] - worst["baseline_mem_bytes"]) / 2**20,
                "baseline_mib": worst["baseline_mem_bytes"] / 2**20, "peak_mib": worst["peak_mem_bytes"] / 2**20,
                "max_peak_gib": max(r["peak_mem_bytes"] for r in per_rank) / 2**30,
                "seconds_per_iteration": result["final"]["t_per_iteration"], "wall_seconds": result["wall_seconds"],
                "psnr": result["final"]["psnr"],
            })
    ratios = {}
    for row in rows:
        one = next((r for r in rows if r["size"] == row["size"] and r["nprocs"] == 1), None)
        if one is not None:
            ratios[f"{row['size']}:{row['nprocs']}"] = row["data_mib"] / (one["data_mib"] / row["nprocs"])
    document = {"study": "ct memory", "config": {"views": views, "weights": weights, "layout": "slabs",
                                                 "warm_up_size": WARM_UP_SIZE, **extra},
                "rows": rows, "ratio_to_ideal": ratios, "ratio_target": [0.8, 1.2]}
    if limit_gib is not None:
        document["limit_gib"] = limit_gib
        document["within_limit"] = all(r["max_peak_gib"] <= limit_gib for r in rows)
    return document


def _median_seconds(fn, repeats: int, device) -> float:
    import statistics

    import torch

    times = []
    for _ in range(repeats + 1):  # the first call is a warm-up
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def gpu_operator_check(device: str = "cuda", dry_run: bool = False) -> dict:
    """The CT operators on a GPU (``make gpu-check``): the sparse parallel-beam projector's A and Aᵀ at
    256³ / 180 views, and ASTRA's cone beam at 512³ / 360 views / 768² detector split into two view groups:
    the groups' normal operators must sum to the whole scan's, and the back-projector's mismatch with the
    exact adjoint is reported. ``dry_run``: tiny sizes on CPU, where the cone beam's clear refusal is recorded.

    :param str device: ``"cuda"`` (or ``"cpu"`` for the dry run).
    :param bool dry_run: tiny sizes.
    """
    import torch

    from distinv.tomography.cone_beam import ConeBeamGeometry, adjoint_mismatch, circular_cone_vectors, cone_beam_factory
    from distinv.tomography.geometry import ParallelBeamGeometry
    from distinv.tomography.projector import ParallelBeamProjector

    device = torch.device(device)
    out: dict = {"device": device.type}
    size, views = (24, 12) if dry_run else (256, 180)
    projector = ParallelBeamProjector(ParallelBeamGeometry(size=size, views=views), device=device)
    x = torch.rand(1, 1, size, size, size, device=device)
    y = projector.A(x)
    out["parallel_beam"] = {"size": size, "views": views,
                            "A_seconds": _median_seconds(lambda: projector.A(x), 5, device),
                            "AT_seconds": _median_seconds(lambda: projector.A_adjoint(y), 5, device),
                            "adjoint_mismatch": adjoint_mismatch(projector, x, torch.rand_like(y))}
    cone_size, cone_views, detector = (16, 8, 24) if dry_run else (512, 360, 768)
    vectors = circular_cone_vectors(cone_views, source_origin=4.0 * cone_size, origin_detector=cone_size,
                                    pixel_size=2.0 * cone_size / detector * 1.25)
    geometry = ConeBeamGeometry(vectors, detector, detector, (cone_size,) * 3)
    try:
        parts = [cone_beam_factory(k, device, {"geometry": geometry, "parts": 2}) for k in range(2)]
        whole = cone_beam_factory(0, device, {"geometry": geometry, "parts": 1})
    except ValueError as exc:  # no CUDA: ASTRA's 3D projectors refuse, clearly
        out["cone_beam"] = {"refused": str(exc)}
        return out
    volume = torch.rand(1, 1, *geometry.volume_shape, device=device)
    sino = whole.A(volume)
    normal = sum(part.A_adjoint(part.A(volume)) for part in parts)
    reference = whole.A_adjoint(sino)
    out["cone_beam"] = {
        "size": cone_size, "views": cone_views, "detector": detector,
        "A_seconds": _median_seconds(lambda: whole.A(volume), 3, device),
        "AT_seconds": _median_seconds(lambda: whole.A_adjoint(sino), 3, device),
        "split_normal_relative_error": float((normal - reference).norm() / reference.norm()),
        "adjoint_mismatch": adjoint_mismatch(whole, volume, torch.rand_like(sino)),
        "peak_gib": torch.cuda.max_memory_allocated(device) / 2**30,
    }
    return out


def _parse_settings(parser: argparse.ArgumentParser, items: Sequence[str]) -> dict:
    from distinv.solvers.run import parse_settings

    try:
        return parse_settings(items)
    except ValueError as error:
        parser.error(str(error))


def main(argv: list[str] | None = None) -> dict:
    """``python -m distinv.bench.studies.ct {quality,equivalence,memory} ...``."""
    from distinv.bench.provenance import collect_provenance

    parser = argparse.ArgumentParser(prog="python -m distinv.bench.studies.ct", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="study", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--size", type=int, default=64)
    q.add_argument("--views", type=int, default=60)
    q.add_argument("--noise", type=float, default=0.01)
    q.add_argument("--nprocs", type=int, default=2)
    q.add_argument("--iterations", type=int, default=8)
    q.add_argument("--tv-iterations", type=int, default=60)
    q.add_argument("--tv-weights", type=float, nargs="+", default=list(TV_WEIGHTS))
    q.add_argument("--distribution", default="slabs")
    e = sub.add_parser("equivalence")
    e.add_argument("--size", type=int, default=32)
    e.add_argument("--views", type=int, default=24)
    e.add_argument("--iterations", type=int, default=3)
    e.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 3])
    m = sub.add_parser("memory")
    m.add_argument("--sizes", type=int, nargs="+", default=[256, 384])
    m.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4])
    m.add_argument("--views", type=int, default=60)
    m.add_argument("--limit-gib", type=float, default=None)
    m.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="more config entries for every run (e.g. projector=matrix-free patch=64 max_batch_size=1)")
    for p in (q, e, m):
        p.add_argument("--weights", default="auto")
        add_output_arguments(p)
    args = parser.parse_args(argv)
    refuse_existing_output(parser, args)
    if args.study == "quality":
        document = quality_study(args.size, args.views, args.noise, args.nprocs, args.iterations, args.tv_iterations,
                                 args.tv_weights, weights=args.weights, extra={"distribution": args.distribution})
    elif args.study == "equivalence":
        document = equivalence_study(args.size, args.views, args.iterations, args.ranks, weights=args.weights)
    else:
        document = memory_study(args.sizes, args.ranks, args.views, args.weights, args.limit_gib,
                                extra=_parse_settings(parser, args.set))
    document["provenance"] = collect_provenance("cpu")
    emit_document(document, args)
    return document


if __name__ == "__main__":
    main()
