"""Static against dynamic tile schedule, in one launch, on balanced ranks and with a busy neighbour.

The replicated tiler splits its tiles over the ranks in advance (``schedule="static"``; deepinv's
split, round-robin, is fixed in advance too) or lets each rank claim the next batch when it is ready (``schedule="dynamic"``, see
:class:`distinv.tiling.TilingConfig`). A benchmark that launches each schedule separately cannot tell
them apart on a shared machine: the same case launched minutes apart moves by more than their
difference. Here both schedules run in the same ranks, call after call in ABBA order, and every
pair of calls gives a paired ratio.

Conditions (``--contend``): ``none`` (each rank pinned to its own core) and a rank number ``r``
(the same pinning, plus a busy process pinned to rank ``r``'s core: the noisy neighbour of a shared
node, which leaves that rank about half of its core).

One JSON document on stdout (and optionally in ``--out FILE``)::

    python -m distinv.bench.schedule --size 2048 --nprocs 2 --calls 6 --contend none 1
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
from dataclasses import dataclass

import torch

from distinv.tiling.config import SCHEDULES

__all__ = ["ScheduleCase", "schedule_rank", "run_condition", "summary_sentence", "main"]


@dataclass(frozen=True)
class ScheduleCase:
    """One condition: ``size²`` gray signal, small random DRUNet, ``calls`` pairs of calls.

    :param int contended_rank: the rank whose core a busy process shares; ``-1`` for none.
    """

    size: int = 2048
    patch: int = 256
    overlap: int = 32
    calls: int = 6
    contended_rank: int = -1
    seed: int = 0


def _busy(core: int) -> None:  # pragma: no cover - runs in a child process until terminated
    os.sched_setaffinity(0, {core})
    while True:
        pass


def schedule_rank(case: ScheduleCase) -> dict:
    """Every rank: both schedules, alternating; rank 0 returns the times, the tiles each rank ran and the
    largest difference between the two outputs."""
    from distinv.bench.measure import NetworkTimer, gather_objects
    from distinv.bench.prior import SIGMA, PriorCase, build_model, synthetic_rows
    from distinv.distributed import comm
    from distinv.tiling import TiledDenoiser, TilingConfig

    rank, world_size = comm.world()
    os.sched_setaffinity(0, {rank % os.cpu_count()})
    model = NetworkTimer(build_model(PriorCase(impl="distinv", size=case.size, seed=case.seed), torch.device("cpu")))
    x = synthetic_rows(case.size, 1, 0, case.size, case.seed)
    tilers = {schedule: TiledDenoiser(model, TilingConfig(patch=case.patch, overlap=case.overlap, max_batch_size=1,
                                                          schedule=schedule)) for schedule in SCHEDULES}
    times = {schedule: [] for schedule in SCHEDULES}
    tiles = {schedule: [] for schedule in SCHEDULES}
    with torch.inference_mode():
        outputs = {schedule: tiler(x, SIGMA) for schedule, tiler in tilers.items()}  # warm-up
        for call in range(case.calls):
            for schedule in SCHEDULES if call % 2 == 0 else SCHEDULES[::-1]:
                model.reset()
                comm.barrier(site="bench.sync")
                start = time.perf_counter()
                tilers[schedule](x, SIGMA)
                comm.barrier(site="bench.sync")
                times[schedule].append(time.perf_counter() - start)
                tiles[schedule].append(model.calls)
    tiles_per_rank = gather_objects({schedule: statistics.median(counts) for schedule, counts in tiles.items()})
    if rank != 0:
        return {}
    difference = (outputs["static"] - outputs["dynamic"]).abs().max().item()
    rows = [{"schedule": schedule, "median_s": statistics.median(times[schedule]), "times_s": times[schedule],
             "tiles_per_rank": [counts[schedule] for counts in tiles_per_rank]} for schedule in SCHEDULES]
    return {"rows": rows, "paired_static_over_dynamic": [a / b for a, b in zip(times["static"], times["dynamic"])],
            "max_abs_difference": difference, "ranks": world_size}


def run_condition(case: ScheduleCase, nprocs: int, timeout: float | None = None) -> dict:
    """Launch :func:`schedule_rank` on ``nprocs`` ranks (one thread and one core each), with a busy process
    on the contended rank's core while it runs."""
    import distinv

    neighbour = None
    if case.contended_rank >= 0:
        neighbour = multiprocessing.get_context("spawn").Process(target=_busy, args=(case.contended_rank % os.cpu_count(),),
                                                                 daemon=True)
        neighbour.start()
    try:
        return distinv.launch(schedule_rank, case, nprocs=nprocs, threads=1, timeout=timeout, device="cpu")
    finally:
        if neighbour is not None:
            neighbour.terminate()
            neighbour.join()


def summary_sentence(document: dict) -> str:
    """One Markdown sentence per condition of a ``distinv.bench.schedule`` document.

    >>> rows = [{"schedule": "static", "median_s": 4.0, "tiles_per_rank": [32, 32]},
    ...         {"schedule": "dynamic", "median_s": 3.0, "tiles_per_rank": [42, 22]}]
    >>> print(summary_sentence({"conditions": [{"contended_rank": 1, "rows": rows, "ranks": 2,
    ...                                          "paired_static_over_dynamic": [1.3, 1.4]}]}))
    With a busy process on rank 1's core: static 4.00 s (tiles per rank 32/32), dynamic 3.00 s (42/22); static over dynamic, paired call by call: 1.35× (1.30–1.40).
    """
    sentences = []
    for condition in document["conditions"]:
        rows = {row["schedule"]: row for row in condition["rows"]}
        ratios = sorted(condition["paired_static_over_dynamic"])
        where = (f"With a busy process on rank {condition['contended_rank']}'s core" if condition["contended_rank"] is not None
                 else f"With {condition['ranks']} balanced ranks")
        sentences.append(
            f"{where}: static {rows['static']['median_s']:.2f} s (tiles per rank "
            f"{'/'.join(f'{t:g}' for t in rows['static']['tiles_per_rank'])}), dynamic {rows['dynamic']['median_s']:.2f} s "
            f"({'/'.join(f'{t:g}' for t in rows['dynamic']['tiles_per_rank'])}); static over dynamic, paired call by "
            f"call: {statistics.median(ratios):.2f}× ({ratios[0]:.2f}–{ratios[-1]:.2f}).")
    return " ".join(sentences)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m distinv.bench.schedule", description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--patch", type=int, default=256)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--nprocs", type=int, default=2)
    parser.add_argument("--calls", type=int, default=6, help="timed calls of each schedule per condition")
    parser.add_argument("--contend", nargs="+", default=["none", "1"],
                        help="conditions: 'none', or the rank whose core a busy process shares")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per condition")
    parser.add_argument("--out", default=None, help="also write the JSON here (atomically)")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    args = parser.parse_args(argv)
    if args.out and os.path.exists(args.out) and not args.force:
        parser.error(f"--out {args.out} exists: pass --force to overwrite it")
    cores = os.cpu_count() or 1
    if not 2 <= args.nprocs <= cores:
        parser.error(f"--nprocs must be in [2, {cores}] (one core per rank on this machine), got {args.nprocs}")
    if args.calls < 1 or args.size < 1 or args.patch < 1 or not 0 <= args.overlap < args.patch:
        parser.error(f"--calls, --size and --patch must be >= 1 and 0 <= --overlap < --patch, got {args.calls}, "
                     f"{args.size}, {args.patch} and {args.overlap}")
    for value in args.contend:
        if value != "none" and not (value.isdigit() and int(value) < args.nprocs):
            parser.error(f"--contend takes 'none' or a rank in [0, {args.nprocs - 1}], got {value!r}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from distinv.bench.prior import write_json_atomically
    from distinv.bench.provenance import collect_provenance

    conditions = []
    for value in args.contend:
        case = ScheduleCase(size=args.size, patch=args.patch, overlap=args.overlap, calls=args.calls,
                            contended_rank=-1 if value == "none" else int(value))
        print(f"[schedule] contended rank: {value}", file=sys.stderr, flush=True)
        conditions.append({"contended_rank": None if value == "none" else int(value),
                           **run_condition(case, args.nprocs, args.timeout)})
    document = {"benchmark": "distinv.bench.schedule", "args": vars(args), "provenance": collect_provenance("cpu"),
                "conditions": conditions}
    print(json.dumps(document, indent=2, default=str))
    if args.out:
        write_json_atomically(document, args.out, force=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
