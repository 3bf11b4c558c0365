"""Which rank runs which tile: distinv's static and dynamic schedules and deepinv's split, in one launch.

The replicated tiler splits its tiles over the ranks in advance (``schedule="static"``; deepinv's
split, round-robin, is fixed in advance too) or lets each rank claim the next batch when it is ready
(``schedule="dynamic"``, see :class:`distinv.tiling.TilingConfig`). A benchmark that launches each
tiler separately cannot tell them apart on a shared machine: the same case launched minutes apart
moves by more than their difference. Here the three tilers (``distinv``, ``distinv-dynamic`` and
``deepinv``'s ``DistributedProcessing``, as in :mod:`distinv.bench.studies.prior`, one tile per network
call) run in the same ranks, one call each in turn (the order rotates from call to call), and the
calls of one turn give paired ratios.

Conditions (``--contend``): ``none`` (each rank pinned to its own core) and a rank number ``r``
(the same pinning, plus a busy process pinned to rank ``r``'s core: the noisy neighbour of a shared
node, which leaves that rank about half of its core).

One JSON document on stdout (and optionally in ``--out FILE``)::

    python -m distinv.bench.studies.schedule --size 2048 --nprocs 2 --calls 6 --contend none 1
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from dataclasses import dataclass

import torch

from distinv.bench.output import add_output_arguments, emit_document, refuse_existing_output

__all__ = ["TILERS", "PAIRS", "ScheduleCase", "schedule_rank", "paired_ratio", "run_condition", "file_settings",
           "condition_label", "schedule_table", "dynamic_speedups", "schedule_figure", "main"]

#: The tilers compared, as :mod:`distinv.bench.studies.prior` implementations (the first two: distinv's schedules).
TILERS = ("distinv", "distinv-dynamic", "deepinv")


@dataclass(frozen=True)
class ScheduleCase:
    """One condition: ``size²`` gray signal, small random DRUNet, ``calls`` turns of one call per tiler.

    :param int contended_rank: the rank whose core a busy process shares; ``-1`` for none.
    :param bool channels_last: the network stored channels-last, for every tiler (as ``--channels-last`` of
        :mod:`distinv.bench.studies.prior`).
    """

    size: int = 2048
    patch: int = 256
    overlap: int = 32
    calls: int = 6
    contended_rank: int = -1
    channels_last: bool = False
    seed: int = 0


def _busy(core: int) -> None:  # pragma: no cover - runs in a child process until terminated
    os.sched_setaffinity(0, {core})
    while True:
        pass


def schedule_rank(case: ScheduleCase) -> dict:
    """Every rank: the tilers of :data:`TILERS` in turn, ``case.calls`` turns; rank 0 returns each tiler's
    times (aligned by turn), the tiles each rank ran, and the largest difference between the two schedules'
    outputs."""
    from distinv.bench.measure import NetworkTimer, gather_objects
    from distinv.bench.studies.prior import PriorCase, build_model, prepare_case
    from distinv.distributed import comm

    rank, world_size = comm.world()
    os.sched_setaffinity(0, {rank % os.cpu_count()})
    device = torch.device("cpu")
    cases = {impl: PriorCase(impl=impl, size=case.size, patch=case.patch, overlap=case.overlap, max_batch_size=1,
                             channels_last=case.channels_last, seed=case.seed) for impl in TILERS}
    model = NetworkTimer(build_model(cases[TILERS[0]], device), device)
    prepared = {impl: prepare_case(tiler_case, model, device, rank, world_size)
                for impl, tiler_case in cases.items()}
    times = {impl: [] for impl in TILERS}
    tiles = {impl: [] for impl in TILERS}
    with torch.inference_mode():
        outputs = {impl: forward() for impl, (forward, _, _) in prepared.items()}  # warm-up
        for turn in range(case.calls):
            for impl in TILERS[turn % len(TILERS):] + TILERS[:turn % len(TILERS)]:
                model.reset()
                comm.barrier(site="bench.sync")
                start = time.perf_counter()
                prepared[impl][0]()
                comm.barrier(site="bench.sync")
                times[impl].append(time.perf_counter() - start)
                tiles[impl].append(model.calls)
    tiles_per_rank = gather_objects({impl: statistics.median(counts) for impl, counts in tiles.items()})
    if rank != 0:
        return {}
    difference = (outputs["distinv"] - outputs["distinv-dynamic"]).abs().max().item()
    rows = [{"tiler": impl, "median_s": statistics.median(times[impl]), "times_s": times[impl],
             "tiles_per_rank": [counts[impl] for counts in tiles_per_rank], "work_multiplier": prepared[impl][1]}
            for impl in TILERS]
    return {"rows": rows, "max_abs_difference_static_dynamic": difference, "ranks": world_size}


def paired_ratio(condition: dict, slower: str, faster: str) -> list[float]:
    """``slower``'s time over ``faster``'s, turn by turn, in one condition of a :func:`main` document."""
    rows = {row["tiler"]: row for row in condition["rows"]}
    return [a / b for a, b in zip(rows[slower]["times_s"], rows[faster]["times_s"])]


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


def file_settings(document: dict) -> str:
    """``"size², patch, overlap, calls of each tiler, device, cores"``: what a schedule file ran (a subtitle).

    >>> document = {"args": {"size": 2048, "patch": 256, "overlap": 32, "calls": 6},
    ...             "provenance": {"device_name": "AMD EPYC", "cpu_count": 2}}
    >>> file_settings(document)
    '2048², patch 256, overlap 32, 6 calls of each tiler, AMD EPYC, 2 cores'
    """
    settings, provenance = document["args"], document["provenance"]
    return (f"{settings['size']}², patch {settings['patch']}, overlap {settings['overlap']}, "
            f"{settings['calls']} calls of each tiler, {provenance.get('device_name', 'cpu')}, "
            f"{provenance.get('cpu_count')} cores")


def condition_label(condition: dict, short: bool = False) -> str:
    """``"2 balanced ranks"`` or ``"busy process on rank 1's core"`` (``short``: ``"balanced"`` or
    ``"rank 1 shares its core"``): a condition of a :func:`main` document."""
    if condition["contended_rank"] is None:
        return "balanced" if short else f"{condition['ranks']} balanced ranks"
    if short:
        return f"rank {condition['contended_rank']} shares its core"
    return f"busy process on rank {condition['contended_rank']}'s core"


#: The paired speedups of :func:`schedule_table`: (column, slower tiler, faster tiler).
PAIRS = (("dynamic over static", "distinv", "distinv-dynamic"), ("dynamic over deepinv", "deepinv", "distinv-dynamic"),
         ("static over deepinv", "deepinv", "distinv"))


def schedule_table(document: dict, name: str):
    """One row per condition of a :func:`main` document: each tiler's median time per call, the tiles each rank
    ran under the dynamic schedule, and the speedups paired turn by turn (the slower tiler's time over the
    faster one's in each turn: median and range over the turns, as :func:`~distinv.plots.prior.ratio_summary`).

    :param dict document: a ``distinv.bench.studies.schedule`` document.
    :param str name: the file's name, for the ``file`` column.
    :return: a :class:`pandas.DataFrame`: ``file``, ``condition``, ``<tiler> (s)`` for each of :data:`TILERS`,
        ``dynamic tiles per rank``, and the columns of :data:`PAIRS`.

    >>> rows = [{"tiler": "distinv", "times_s": [4.0, 4.2], "median_s": 4.1, "tiles_per_rank": [32, 32]},
    ...         {"tiler": "distinv-dynamic", "times_s": [3.0, 3.0], "median_s": 3.0, "tiles_per_rank": [42, 22]},
    ...         {"tiler": "deepinv", "times_s": [4.4, 4.5], "median_s": 4.45, "tiles_per_rank": [32, 32]}]
    >>> table = schedule_table({"conditions": [{"contended_rank": 1, "rows": rows, "ranks": 2}]}, "f")
    >>> table.iloc[0][["condition", "dynamic tiles per rank", "dynamic over static"]].tolist()
    ['rank 1 shares its core', '42/22', '1.37× (1.33–1.40)']
    """
    import pandas as pd

    from distinv.plots.prior import ratio_summary

    records = []
    for condition in document["conditions"]:
        rows = {row["tiler"]: row for row in condition["rows"]}
        records.append({
            "file": name, "condition": condition_label(condition, short=True),
            **{f"{tiler} (s)": rows[tiler]["median_s"] for tiler in TILERS},
            "dynamic tiles per rank": "/".join(f"{t:g}" for t in rows["distinv-dynamic"]["tiles_per_rank"]),
            **{column: ratio_summary(paired_ratio(condition, slower, faster)) for column, slower, faster in PAIRS}})
    return pd.DataFrame(records)


def dynamic_speedups(documents: list[dict]) -> dict:
    """The paired speedups of the schedule benchmark, lowest and highest over the documents' conditions: the
    dynamic schedule over the static one with balanced ranks and with a busy process on one rank's core, and
    the static split over deepinv's in every condition (each value the median over a condition's turns).

    :param list documents: ``distinv.bench.studies.schedule`` documents.
    :return: ``{"balanced_low", "balanced_high", "contended_low", "contended_high", "static_deepinv_low",
        "static_deepinv_high"}``; ``nan`` where no condition of that kind was run.

    >>> def condition(contended, static, dynamic, deepinv):
    ...     times = {"distinv": static, "distinv-dynamic": dynamic, "deepinv": deepinv}
    ...     return {"contended_rank": contended, "rows": [{"tiler": t, "times_s": v} for t, v in times.items()]}
    >>> documents = [{"conditions": [condition(None, [1.0, 1.0], [1.0, 1.02], [1.2, 1.1]),
    ...                              condition(1, [2.0, 2.2], [1.5, 1.4], [2.4, 2.4])]}]
    >>> {key: round(value, 3) for key, value in dynamic_speedups(documents).items()}  # doctest: +NORMALIZE_WHITESPACE
    {'balanced_low': 0.99, 'balanced_high': 0.99, 'contended_low': 1.452, 'contended_high': 1.452,
     'static_deepinv_low': 1.145, 'static_deepinv_high': 1.15}
    """
    values: dict[str, list[float]] = {"balanced": [], "contended": [], "static_deepinv": []}
    for document in documents:
        for condition in document["conditions"]:
            kind = "balanced" if condition["contended_rank"] is None else "contended"
            values[kind].append(statistics.median(paired_ratio(condition, "distinv", "distinv-dynamic")))
            values["static_deepinv"].append(statistics.median(paired_ratio(condition, "deepinv", "distinv")))
    out = {}
    for kind, ratios in values.items():
        out[f"{kind}_low"] = min(ratios) if ratios else float("nan")
        out[f"{kind}_high"] = max(ratios) if ratios else float("nan")
    return out


def schedule_figure(document: dict, title: str = "Time per call of each tiler"):
    """Grouped bars: the median time per call of each tiler, one group per condition, the whiskers spanning
    the fastest and the slowest call; each bar is labelled with the tiles each rank ran.

    :param dict document: a ``distinv.bench.studies.schedule`` document.
    :param str title: figure title.
    :return: a plotly figure.

    >>> rows = [{"tiler": t, "times_s": [1.0, 2.0, 3.0], "median_s": 2.0, "tiles_per_rank": [2, 2]} for t in TILERS]
    >>> figure = schedule_figure({"conditions": [{"contended_rank": None, "rows": rows, "ranks": 2}]})
    >>> [trace.name for trace in figure.data], list(figure.data[0].error_y.array), figure.data[0].text[0]
    (['distinv', 'distinv-dynamic', 'deepinv'], [1.0], 'tiles 2/2')
    """
    import plotly.graph_objects as go

    figure = go.Figure()
    for tiler in TILERS:
        rows = [next(row for row in c["rows"] if row["tiler"] == tiler) for c in document["conditions"]]
        figure.add_bar(
            name=tiler, x=[condition_label(c) for c in document["conditions"]], y=[row["median_s"] for row in rows],
            error_y=dict(type="data", symmetric=False, array=[max(row["times_s"]) - row["median_s"] for row in rows],
                         arrayminus=[row["median_s"] - min(row["times_s"]) for row in rows]),
            text=["tiles " + "/".join(f"{t:g}" for t in row["tiles_per_rank"]) for row in rows],
            textposition="inside")
    figure.update_layout(barmode="group", title=title, yaxis_title="time per call (s)", legend_title="tiler",
                         height=380)
    return figure


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m distinv.bench.studies.schedule",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--patch", type=int, default=256)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--nprocs", type=int, default=2)
    parser.add_argument("--calls", type=int, default=6, help="timed calls of each tiler per condition")
    parser.add_argument("--contend", nargs="+", default=["none", "1"],
                        help="conditions: 'none', or the rank whose core a busy process shares")
    parser.add_argument("--channels-last", action="store_true", help="every tiler's network stored channels-last")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per condition")
    add_output_arguments(parser)
    args = parser.parse_args(argv)
    refuse_existing_output(parser, args)
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
    from distinv.bench.provenance import collect_provenance

    conditions = []
    for value in args.contend:
        case = ScheduleCase(size=args.size, patch=args.patch, overlap=args.overlap, calls=args.calls,
                            contended_rank=-1 if value == "none" else int(value), channels_last=args.channels_last)
        print(f"[schedule] contended rank: {value}", file=sys.stderr, flush=True)
        conditions.append({"contended_rank": None if value == "none" else int(value),
                           **run_condition(case, args.nprocs, args.timeout)})
    document = {"benchmark": "distinv.bench.studies.schedule", "args": vars(args),
                "provenance": collect_provenance("cpu"), "conditions": conditions}
    emit_document(document, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
