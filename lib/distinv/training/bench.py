r"""Benchmark commands of training (issue 14): each prints one JSON document (``--out FILE`` also writes it).

``memory``: peak memory per rank of one training step (forward, backward, gradient all-reduce, Adam
update) against the image side, with and without activation checkpointing (per layer and per tile batch),
on 1..N ranks. One fresh launch per case, so a case's peak is its own. Peak per rank is CPU ``VmHWM``
(reset at the start of the step; it includes what the rank holds before the step: imports, the network,
the photo) or CUDA ``max_memory_allocated``; ``step_bytes`` is the peak minus the resident memory just
before the step. A case whose peak, extrapolated linearly in the pixel count from the measured sizes of its
series, would exceed ``--max-gib`` is not run (a shared machine): its row says so and carries the
prediction, marked ``"measured": false``::

    python -m distinv.training.bench memory --sizes 512 1024 2048 --ranks 1 2 --checkpointing off on

``quality``: the shipped unrolled network against PnP-HQS on the held-out photos
(:mod:`distinv.training.quality`): mean-PSNR gain at the same iteration count, and the wall time until each
first reaches PnP-HQS's best mean PSNR over 1..50 iterations::

    python -m distinv.training.bench quality --size 512

``layer``: why HQS and not PGD — median seconds per iteration of PnP-HQS and PnP-PGD on the same problem
(runner timings: data phase, prior phase; PSNR after as many iterations), and per layer of the shipped unrolled
network (all its layers), 1 rank::

    python -m distinv.training.bench layer --size 512

``gpu``: the GPU check of training (4096² colour, bf16 autocast, checkpointing), see :func:`gpu_training_check`;
``--dry-run`` runs the same code at a tiny size on CPU.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from distinv.bench.output import add_output_arguments, emit_document, refuse_existing_output, write_json_atomically

__all__ = ["memory_rank", "memory_cases", "memory_summary", "predict_peak", "gpu_training_check", "main"]

GIB = 2 ** 30


def _resident_bytes(device: torch.device) -> int:
    """What this rank holds now: CUDA allocated bytes, or the resident set size (``VmRSS``)."""
    if device.type == "cuda":
        return int(torch.cuda.memory_allocated(device))
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def memory_rank(cfg: dict) -> list[dict] | None:
    """Rank function: one training step of ``cfg["training"]`` (a config dict) on a photo; every rank's peak.

    :param dict cfg: ``training`` (:meth:`UnrolledTrainingConfig.to_dict`, ``crop == image_side``) and ``photo``.
    :return: on rank 0, one row per rank: ``peak_bytes``, ``baseline_bytes``, ``step_bytes``, ``seconds``, ``loss``.
    """
    from distinv.bench.measure import PeakTracker, gather_objects, synchronize
    from distinv.distributed import comm
    from distinv.solvers.context import AccountedContext
    from distinv.training.config import UnrolledTrainingConfig
    from distinv.training.data import load_photo
    from distinv.launch import resolve_device
    from distinv.training.trainer import UnrolledTrainer

    config = UnrolledTrainingConfig.from_dict(cfg["training"])
    device = resolve_device(config.device)
    with AccountedContext("physics", device) as ctx:
        trainer = UnrolledTrainer(config, ctx, device, photos=[load_photo(cfg["photo"], config.channels,
                                                                          config.image_side)])
        gc.collect()
        comm.barrier(site="bench.sync")
        tracker = PeakTracker(device)  # first: on CPU it trims the heap, so the baseline is what stays resident
        baseline = _resident_bytes(device)
        start = time.perf_counter()
        loss = trainer.step(0)
        synchronize(device)
        seconds = time.perf_counter() - start
        peak = tracker.read()
        comm.barrier(site="bench.sync")
        rows = gather_objects({"rank": ctx.rank, "peak_bytes": peak, "baseline_bytes": baseline,
                               "step_bytes": peak - baseline, "seconds": seconds, "loss": loss,
                               "threads": torch.get_num_threads()})
        return rows if ctx.rank == 0 else None


def predict_peak(measured: list[tuple[int, int, int]], side: int) -> int | None:
    """Peak bytes of a side from measured ``(side, baseline_bytes, step_bytes)`` of the same series.

    The step's own memory is linear in the pixel count (through the two largest measured sides; through the
    origin with one); the baseline is the largest measured one.

    >>> predict_peak([(512, 10, 100), (1024, 10, 400)], 2048)
    1610
    """
    if not measured:
        return None
    points = sorted(measured)[-2:]
    baseline = max(b for _, b, _ in points)
    if len(points) == 1:
        (s1, _, m1), = points
        return int(baseline + m1 * side ** 2 / s1 ** 2)
    (s1, _, m1), (s2, _, m2) = points
    slope = (m2 - m1) / (s2 ** 2 - s1 ** 2)
    return int(baseline + m2 + slope * (side ** 2 - s2 ** 2))


def memory_cases(sizes, ranks, checkpointing, base: dict, max_gib: float, timeout: float,
                 threads: int | None = 1, photo: str = "camera", isolate: bool = True) -> list[dict]:
    """Run (or, past ``max_gib``, predict) one training step per (checkpointing, ranks, size), sizes ascending.

    :param list sizes: image sides.
    :param list ranks: rank counts.
    :param list checkpointing: booleans.
    :param dict base: the other :class:`~distinv.training.config.UnrolledTrainingConfig` options.
    :param float max_gib: largest peak per rank allowed (also each rank's memory cap).
    :param float timeout: seconds per case.
    :param int threads: intra-op threads per rank.
    :param str photo: the photo (resized to every side).
    :param bool isolate: every case in a fresh process (a CPU peak is then the case's own); ``False``: one-rank
        cases in this process (CUDA peaks are reset per case; the GPU check and the dry run, which start faster).
    """
    rows = []
    for check in checkpointing:
        for nprocs in ranks:
            measured = []
            for side in sorted(sizes):
                training = {**base, "crop": side, "image_side": side, "checkpoint_layers": check,
                            "checkpoint_tiles": check, "steps": 1, "progress": False, "images": [photo]}
                row = {"size": side, "ranks": nprocs, "checkpointing": check, "threads": threads}
                predicted = predict_peak(measured, side)
                if predicted is not None and predicted > max_gib * GIB:
                    rows.append({**row, "measured": False, "peak_bytes": predicted,
                                 "reason": f"predicted peak {predicted / GIB:.1f} GiB per rank > --max-gib {max_gib}"})
                    continue
                case = {"training": training, "photo": photo, "nprocs": nprocs, "threads": threads,
                        "timeout": timeout, "memory_limit_bytes": int(max_gib * GIB)}
                per_rank, failure = _run_case(case, timeout) if isolate or nprocs > 1 else _run_here(case)
                if failure:
                    rows.append({**row, "measured": False, "peak_bytes": None, "reason": failure})
                    continue
                peak = max(r["peak_bytes"] for r in per_rank)
                worst = max(per_rank, key=lambda r: r["peak_bytes"])
                rows.append({**row, "measured": True, "peak_bytes": peak, "step_bytes": worst["step_bytes"],
                             "baseline_bytes": worst["baseline_bytes"],
                             "seconds": max(r["seconds"] for r in per_rank), "per_rank": per_rank})
                measured.append((side, worst["baseline_bytes"], worst["step_bytes"]))
                print(f"[memory] {side}² {nprocs} rank(s) checkpointing {check}: {peak / GIB:.2f} GiB peak per rank, "
                      f"{rows[-1]['seconds']:.1f} s", file=sys.stderr, flush=True)
    return rows


def _run_case(case: dict, timeout: float) -> tuple[list[dict] | None, str | None]:
    """One case in a fresh Python process (a one-rank launch runs in its caller, whose memory would count)."""
    import subprocess

    command = [sys.executable, "-m", "distinv.training.bench", "case", json.dumps(case)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout + 60)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:g} s"
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        return None, next((line for line in lines if "RankError" in line or "Error" in line), lines[-1] if lines
                          else f"exit status {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1]), None


def _run_here(case: dict) -> tuple[list[dict] | None, str | None]:
    """One one-rank case in this process; an exception becomes the row's reason."""
    import distinv

    try:
        rows = distinv.launch(memory_rank, {"training": case["training"], "photo": case["photo"]}, nprocs=1,
                              threads=case["threads"])
    except Exception as exc:  # e.g. CUDA out of memory: reported in the row
        return None, f"{type(exc).__name__}: {exc}".splitlines()[0]
    finally:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return rows, None


def _one_rank(case: dict, port: int, conn) -> None:
    """A one-rank job in a forkserver child, like each rank of a multi-rank launch (``launch`` runs in place)."""
    import os

    import distinv

    os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if case["threads"]:
        torch.set_num_threads(case["threads"])
    try:
        conn.send((distinv.launch(memory_rank, {"training": case["training"], "photo": case["photo"]}, nprocs=1,
                                  memory_limit_bytes=case["memory_limit_bytes"]), None))
    except Exception as exc:  # reported by the parent
        conn.send((None, f"{type(exc).__name__}: {exc}"))


def _case_main(text: str) -> None:
    """``python -m distinv.training.bench case JSON``: one launch of :func:`memory_rank`; rows on stdout.

    Every rank starts as a forkserver child (a one-rank job too), so that 1 and N ranks are measured alike: a
    forked child's resident set counts only the shared-library pages it touches, its launcher's counts all.
    """
    import multiprocessing
    import socket

    import distinv

    case = json.loads(text)
    if case["nprocs"] > 1:
        rows = distinv.launch(memory_rank, {"training": case["training"], "photo": case["photo"]},
                              nprocs=case["nprocs"], threads=case["threads"], timeout=case["timeout"],
                              memory_limit_bytes=case["memory_limit_bytes"])
    else:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["torch", "torch.distributed", "distinv"])
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        receiver, sender = context.Pipe(duplex=False)
        child = context.Process(target=_one_rank, args=(case, port, sender))
        child.start()
        rows, failure = receiver.recv()
        child.join()
        if failure:
            raise RuntimeError(failure)
    print(json.dumps(rows))


def _find(rows, size, ranks, check):
    return next((r for r in rows if (r["size"], r["ranks"], r["checkpointing"]) == (size, ranks, check)), None)


def memory_summary(rows: list[dict]) -> dict:
    """Ratios of the targets at the largest side: checkpointing on / off (1 rank) and 2 ranks / 1 (per setting).

    Each ratio says whether both of its peaks were measured (``"measured": true``) or one was predicted.
    """
    side = max(r["size"] for r in rows)
    out = {"size": side}

    def ratio(a, b, key="peak_bytes"):
        if a is None or b is None or not a.get(key) or not b.get(key):
            return None
        return {"ratio": a[key] / b[key], "measured": bool(a["measured"] and b["measured"])}

    for nprocs in sorted({r["ranks"] for r in rows}):
        out[f"checkpointing_on_over_off_{nprocs}_ranks"] = ratio(_find(rows, side, nprocs, True),
                                                                 _find(rows, side, nprocs, False))
    for check in (False, True):
        label = "on" if check else "off"
        two, one = _find(rows, side, 2, check), _find(rows, side, 1, check)
        out[f"two_over_one_rank_checkpointing_{label}"] = ratio(two, one)
        out[f"two_over_one_rank_step_bytes_checkpointing_{label}"] = ratio(two, one, "step_bytes")
    return out


def gpu_training_check(out: str | Path, dry_run: bool = False, timeout: float = 240.0) -> dict:
    """The GPU figures of training, written to ``<out>/training.json``: one training step at 4096² colour (the
    shipped colour DRUNet, 6 layers, sharded layout, tiles 448 + 32), bf16 autocast, checkpointing per layer and
    per tile batch, 1 rank; and at 2048² with and without checkpointing (2 layers, so that the step without
    fits in the GPU) for the memory ratio. The cases run one after the other in this process (CUDA peaks are
    reset for each); ``timeout`` is left to the caller (``make gpu-check`` runs each step in a subprocess).

    ``dry_run``: the same code path on CPU at 32² with a tiny random DRUNet and 1 layer (autocast is CUDA-only).

    :param str out: an existing folder.
    :param bool dry_run: tiny sizes on CPU.
    :param float timeout: seconds per case (isolated cases only).
    :return: the document written: ``big`` (4096²), ``small_off`` / ``small_on`` (2048²) rows of
        :func:`memory_cases` and ``checkpointing_on_over_off``.
    """
    if dry_run:
        base = {"channels": 3, "n_layers": 1, "layout": "sharded", "patch": 16, "overlap": 8, "max_batch_size": 1,
                "device": "cpu", "init": "random-tiny"}
        big, small, layers_small, threads = 32, 32, 1, 1
    else:
        base = {"channels": 3, "n_layers": 6, "layout": "sharded", "patch": 448, "overlap": 32, "max_batch_size": 4,
                "autocast": True, "device": "cuda", "init": "shipped"}
        big, small, layers_small, threads = 4096, 2048, 2, None
    rows = memory_cases([big], [1], [True], base, max_gib=1e6, timeout=timeout, threads=threads, photo="astronaut",
                        isolate=False)
    rows += memory_cases([small], [1], [False, True], {**base, "n_layers": layers_small}, max_gib=1e6,
                         timeout=timeout, threads=threads, photo="astronaut", isolate=False)
    document = {"device": base["device"], "dry_run": dry_run, "big": rows[0], "small_off": rows[1],
                "small_on": rows[2]}
    if rows[1].get("peak_bytes") and rows[2].get("peak_bytes"):
        document["checkpointing_on_over_off"] = rows[2]["peak_bytes"] / rows[1]["peak_bytes"]
    write_json_atomically(document, Path(out) / "training.json", force=True)
    return document


# ------------------------------------------------------------------ command line


def _memory(args) -> dict:
    base = {"channels": args.channels, "n_layers": args.layers, "cg_iterations": args.cg_iterations,
            "layout": args.layout, "patch": args.patch, "overlap": args.overlap,
            "max_batch_size": args.max_batch_size, "device": args.device, "init": "shipped"}
    checks = [value == "on" for value in args.checkpointing]
    rows = memory_cases(args.sizes, args.ranks, checks, base, args.max_gib, args.timeout, args.threads, args.photo)
    return {"command": "memory", "config": {**base, "sizes": args.sizes, "ranks": args.ranks,
                                             "max_gib": args.max_gib, "threads_per_rank": args.threads},
            "rows": rows, "summary": memory_summary(rows)}


def _quality(args) -> dict:
    import distinv
    from distinv.training.quality import HELD_OUT_PHOTOS, quality_rank, quality_summary, write_photo_files

    with tempfile.TemporaryDirectory() as folder:
        photos = write_photo_files(args.images or HELD_OUT_PHOTOS, folder)
        cfg = {"photos": photos, "size": args.size, "K": args.K, "sigma_n": args.sigma_n,
               "blur_sigma": [3.0, 0.7], "channels": args.channels, "weights": args.weights,
               "hqs_iterations": args.hqs_iterations, "patch": args.patch, "overlap": args.overlap,
               "device": args.device}
        rows = distinv.launch(quality_rank, cfg, nprocs=args.nprocs, threads=args.threads)
    summary = quality_summary(rows)
    targets = {"gain_at_least_1_db": summary.get("gain_db") is not None and summary["gain_db"] >= 1.0,
               "hqs_best_at_least_2x_sooner": bool(summary["speedup_to_hqs_best"]
                                                   and summary["speedup_to_hqs_best"] >= 2.0)}
    config = {k: v for k, v in cfg.items() if k != "photos"}
    return {"command": "quality", "config": {**config, "photos": list(photos), "nprocs": args.nprocs,
                                             "threads_per_rank": args.threads},
            "summary": summary, "targets": targets, "rows": rows}


def _layer(args) -> dict:
    import distinv
    from distinv.solvers.run import run_reconstruction

    out = {"command": "layer", "config": {"size": args.size, "repeats": args.repeats, "threads": args.threads}}
    for solver in ("pnp-hqs", "pnp-pgd", "unrolled"):
        cfg = {"size": args.size, "solver": solver, "iterations": args.repeats + 1, "pinv_iterations": 0,
               "progress": False, "metrics_every": args.repeats + 1, "device": args.device,
               "unrolled_weights": args.weights}
        final = distinv.launch(run_reconstruction, cfg, nprocs=1, threads=args.threads)["final"]
        out[solver] = {key: final[key] for key in ("t_per_iteration", "t_grad", "t_prior", "psnr", "iterations")}
    out["hqs_over_pgd_iteration_time"] = out["pnp-hqs"]["t_per_iteration"] / out["pnp-pgd"]["t_per_iteration"]
    out["hqs_data_share"] = out["pnp-hqs"]["t_grad"] / out["pnp-hqs"]["t_per_iteration"]
    out["unrolled_layer_over_hqs_iteration_time"] = (out["unrolled"]["t_per_iteration"]
                                                     / out["pnp-hqs"]["t_per_iteration"])
    return out


def main(argv: list[str] | None = None) -> dict:
    """``python -m distinv.training.bench {memory,quality,layer,gpu} ...``: run and print JSON."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["case"]:  # internal: one memory case in a fresh process
        _case_main(argv[1])
        return {}
    parser = argparse.ArgumentParser(prog="python -m distinv.training.bench", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    memory = commands.add_parser("memory", help="peak memory per rank of one training step")
    memory.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    memory.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    memory.add_argument("--checkpointing", nargs="+", choices=("off", "on"), default=["off", "on"])
    memory.add_argument("--layers", type=int, default=6)
    memory.add_argument("--cg-iterations", type=int, default=5)
    memory.add_argument("--layout", choices=("replicated", "sharded"), default="sharded")
    memory.add_argument("--patch", type=int, default=256)
    memory.add_argument("--overlap", type=int, default=32)
    memory.add_argument("--max-batch-size", type=int, default=1)
    memory.add_argument("--channels", type=int, choices=(1, 3), default=1)
    memory.add_argument("--photo", default="camera")
    memory.add_argument("--max-gib", type=float, default=10.0, help="largest peak per rank a case may reach")
    memory.add_argument("--timeout", type=float, default=3600.0, help="seconds per case")

    quality = commands.add_parser("quality", help="the shipped unrolled network against PnP-HQS")
    quality.add_argument("--weights", default="auto")
    quality.add_argument("--images", nargs="+", default=None,
                         help="held-out photos (default: camera coins chelsea motorcycle)")
    quality.add_argument("--size", type=int, default=512)
    quality.add_argument("--K", type=int, default=4)
    quality.add_argument("--sigma-n", type=float, default=0.01)
    quality.add_argument("--channels", type=int, choices=(1, 3), default=1)
    quality.add_argument("--hqs-iterations", type=int, nargs="+", default=None, help="default: 1..50, 16 counts")
    quality.add_argument("--patch", type=int, default=256)
    quality.add_argument("--overlap", type=int, default=32)
    quality.add_argument("--nprocs", type=int, default=1)

    layer = commands.add_parser("layer", help="seconds per iteration of PnP-HQS, PnP-PGD and the unrolled network")
    layer.add_argument("--size", type=int, default=512)
    layer.add_argument("--repeats", type=int, default=5, help="timed iterations (medians; the first is left out)")
    layer.add_argument("--weights", default="auto", help="the unrolled network (its layers are its iterations)")

    gpu = commands.add_parser("gpu", help="the GPU check of training (writes OUT/training.json)")
    gpu.add_argument("--dry-run", action="store_true")
    gpu.add_argument("--timeout", type=float, default=240.0)

    for sub in (memory, quality, layer):
        sub.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
        sub.add_argument("--threads", type=int, default=1, help="intra-op threads per rank")
        add_output_arguments(sub)
    gpu.add_argument("--out", required=True, help="folder of training.json")
    args = parser.parse_args(argv)
    if args.command == "gpu":
        Path(args.out).mkdir(parents=True, exist_ok=True)
        document = gpu_training_check(args.out, args.dry_run, args.timeout)
        print(json.dumps(document, indent=2, default=str))
        return document
    refuse_existing_output(parser, args)
    if args.command == "quality" and args.hqs_iterations is None:
        from distinv.training.quality import HQS_ITERATIONS

        args.hqs_iterations = list(HQS_ITERATIONS)
    document = {"memory": _memory, "quality": _quality, "layer": _layer}[args.command](args)
    from distinv.bench.provenance import collect_provenance

    document["torch"], document["threads_per_rank"] = torch.__version__, args.threads
    document["command_line"] = "python -m distinv.training.bench " + " ".join(argv)
    document["provenance"] = collect_provenance("cuda" if args.device == "cuda" else "cpu")
    emit_document(document, args)
    return document


if __name__ == "__main__":
    main()
