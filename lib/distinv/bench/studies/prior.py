"""Benchmark of the tiled prior: distinv vs deepinv's ``DistributedProcessing`` vs the untiled network.

One JSON document on stdout (and optionally in ``--out FILE``): per implementation, signal size and
number of ranks, the median wall time of ``--repeats`` runs after ``--warmup`` (rank 0, between
barriers), every rank's peak memory (CPU: peak resident set size; GPU: ``max_memory_allocated``),
the agreement with the untiled output of the same run (PSNR in dB, peak = range of the untiled
output), the tile work multiplier, threads per rank, the communication per call, and the split of the
wall time into the time inside the network (per rank) and the tiler's own overhead (window copies,
blending, communication: wall time minus the slowest rank's network time).

Implementations (``--impls``):

- ``untiled``: the network on the whole signal, one process (run for ``ranks == 1`` only);
- ``distinv``: :class:`~distinv.tiling.TiledDenoiser`, replicated layout, smooth blending;
- ``distinv-dynamic``: the same with the dynamic schedule (ranks claim tiles as they free up);
- ``distinv-crop``: the same with crop-assign (deepinv's rule), for the blending comparison;
- ``distinv-sharded``: sharded layout, same tiles; every rank builds only its own slab;
- ``distinv-slab``: sharded, best settings against untiled: one tile per rank slab plus an
  ``overlap`` halo on interior slab sides (patch ``(ceil(n / W), n)``);
- ``deepinv``: ``deepinv.distributed.DistributedProcessing`` with a ``TilingStrategy`` instance,
  same patch, overlap and batch size.

With ``--rounds R`` every case runs R times, interleaved with the other cases of its size, and each
row also keeps the median of every round (``round_medians_s``): ratios between cases are then taken
round by round (paired), which cancels the slow drifts of a shared machine's speed.

CPU example (the reference run)::

    python -m distinv.bench.studies.prior --sizes 1024 2048 --ranks 1 2 --repeats 2 --rounds 3 --out prior_cpu.json

GPU example (one H100, < 5 min)::

    python -m distinv.bench.studies.prior --device cuda --model default --sizes 4096 --ranks 1 \\
        --dtype bfloat16 --patch 448 --overlap 32 --max-batch-size 8 --impls untiled distinv deepinv
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field

import torch

from distinv.bench.output import add_output_arguments, emit_document, refuse_existing_output

IMPLEMENTATIONS = ("untiled", "distinv", "distinv-dynamic", "distinv-crop", "distinv-sharded", "distinv-slab",
                   "deepinv")
DTYPES = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}
MODELS = ("small", "default", "shipped")
SIGMA = 0.1

__all__ = ["PriorCase", "IMPLEMENTATIONS", "prepare_case", "run_case", "run_benchmark", "main", "synthetic_rows",
           "build_model"]


@dataclass(frozen=True)
class PriorCase:
    """One benchmark cell: an implementation on a signal size and a number of ranks.

    :param str impl: one of :data:`IMPLEMENTATIONS`.
    :param int size: the signal is ``(1, channels, size, size)``.
    :param int ranks: number of ranks.
    :param str model: ``"small"`` (DRUNet nc=(16, 32, 64, 128), nb=2), ``"default"`` (DRUNet defaults), both
        with random weights (timing), or ``"shipped"`` (distinv's trained small DRUNet: agreement figures
        that mean something, since a random network barely depends on its context).
    :param int channels: image channels.
    :param patch: tile core size: an integer, or ``(rows, columns)``.
    :param int overlap: tile halo.
    :param int max_batch_size: tiles per network call (``0``: all at once).
    :param str dtype: ``"float32"`` or an autocast dtype (``"bfloat16"``, ``"float16"``).
    :param str device: ``"cpu"`` or ``"cuda"``.
    :param int repeats: timed runs.
    :param int warmup: untimed runs first.
    :param bool channels_last: the network stored channels-last, for every implementation, and fed
        channels-last windows (distinv) or input (untiled); deepinv's tiles follow the weights' layout.
    :param int seed: weights and signal seed.
    """

    impl: str
    size: int
    ranks: int = 1
    model: str = "small"
    channels: int = 1
    patch: int | tuple[int, int] = 256
    overlap: int = 32
    max_batch_size: int = 4
    dtype: str = "float32"
    device: str = "cpu"
    repeats: int = 5
    warmup: int = 1
    channels_last: bool = False
    seed: int = 0
    return_output: bool = True
    extra: dict = field(default_factory=dict)


def build_model(case: PriorCase, device: torch.device) -> torch.nn.Module:
    """DRUNet with seeded random or shipped trained weights (identical on every rank), eval mode, no grad."""
    from deepinv.models import DRUNet

    torch.manual_seed(case.seed)
    if case.model == "shipped":
        from distinv.models import load_denoiser

        model = load_denoiser("drunet-small-gray" if case.channels == 1 else "drunet-small-color", device=device)
    elif case.model == "small":
        model = DRUNet(in_channels=case.channels, out_channels=case.channels, nc=[16, 32, 64, 128], nb=2,
                       pretrained=None)
    else:
        model = DRUNet(in_channels=case.channels, out_channels=case.channels, pretrained=None)
    model = model.to(device).eval()
    if case.channels_last:  # every implementation runs the same channels-last network
        from distinv.tiling import to_channels_last

        to_channels_last(model)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def synthetic_rows(size: int, channels: int, start: int, stop: int, seed: int = 0,
                   device: torch.device | str = "cpu") -> torch.Tensor:
    """Rows ``[start, stop)`` of a deterministic noisy test image of ``size × size`` (built row-wise).

    Smooth oriented waves and a disc edge, plus Gaussian noise of std :data:`SIGMA` seeded per row, so a
    rank can build its slab without the whole image and every layout sees the same signal.

    >>> full = synthetic_rows(16, 1, 0, 16)
    >>> bool(torch.equal(full[:, :, 5:9], synthetic_rows(16, 1, 5, 9)))
    True
    """
    i = torch.arange(start, stop, dtype=torch.float64).view(-1, 1) / size
    j = torch.arange(size, dtype=torch.float64).view(1, -1) / size
    rows = []
    for c in range(channels):
        clean = 0.5 + 0.2 * torch.sin(2 * math.pi * (3 + c) * (i + 0.5 * j)) * torch.cos(2 * math.pi * 5 * j)
        clean = clean + 0.25 * (((i - 0.5) ** 2 + (j - 0.4) ** 2) < 0.09).to(torch.float64)
        rows.append(clean)
    clean = torch.stack(rows).unsqueeze(0).to(torch.float32)
    noise = torch.stack([
        torch.randn(channels, size, generator=torch.Generator().manual_seed(seed * 1_000_003 + row))
        for row in range(start, stop)
    ], dim=1).unsqueeze(0) if stop > start else torch.zeros_like(clean)
    return (clean + SIGMA * noise).to(device)


def _patch_pair(patch: int | tuple[int, int]) -> tuple[int, int]:
    return tuple(patch) if isinstance(patch, (tuple, list)) else (patch, patch)


def _slab_patch(case: PriorCase, world_size: int) -> tuple[int, int]:
    rows = -(-case.size // world_size)
    return (-(-rows // 8) * 8, case.size)


def _tiling_config(case: PriorCase, world_size: int):
    from distinv.tiling import TilingConfig

    common = dict(max_batch_size=case.max_batch_size or None, autocast_dtype=DTYPES[case.dtype],
                  channels_last=case.channels_last)
    if case.impl == "distinv":
        return TilingConfig(patch=case.patch, overlap=case.overlap, **common)
    if case.impl == "distinv-dynamic":
        return TilingConfig(patch=case.patch, overlap=case.overlap, schedule="dynamic", **common)
    if case.impl == "distinv-crop":
        return TilingConfig(patch=case.patch, overlap=case.overlap, blend="crop", **common)
    if case.impl == "distinv-sharded":
        return TilingConfig(patch=case.patch, overlap=case.overlap, layout="sharded", **common)
    if case.impl == "distinv-slab":
        return TilingConfig(patch=_slab_patch(case, world_size), overlap=(case.overlap, 0), layout="sharded",
                            **common)
    raise ValueError(f"not a distinv implementation: {case.impl!r}")


def _autocast(case: PriorCase, device: torch.device):
    from contextlib import nullcontext

    dtype = DTYPES[case.dtype]
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def prepare_case(case: PriorCase, model, device: torch.device, rank: int, world_size: int) -> tuple:
    """``(forward, work_multiplier, settings)`` of ``case`` on this rank: ``forward()`` runs the case's tiler
    (or the untiled network) with ``model`` on the rank's input, built here."""
    from distinv.distributed.sharding import slab_bounds

    shape = (1, case.channels, case.size, case.size)
    if case.impl == "untiled":
        x = synthetic_rows(case.size, case.channels, 0, case.size, case.seed, device)
        if case.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)

        def forward():
            with _autocast(case, device):
                return model(x, SIGMA).float()
        return forward, 1.0, {"layout": "single process"}
    if case.impl == "deepinv":
        from deepinv.distributed.framework import DistributedContext, DistributedProcessing
        from deepinv.distributed.strategies.distributed_strategies import TilingStrategy

        x = synthetic_rows(case.size, case.channels, 0, case.size, case.seed, device)
        context = DistributedContext(device_mode="gpu" if device.type == "cuda" else "cpu")
        context.__enter__()
        strategy = TilingStrategy(shape, tiling_dims=(-2, -1), patch_size=case.patch, overlap=case.overlap)

        def processor(batch, sigma):
            with _autocast(case, device):
                return model(batch, sigma).float()
        processing = DistributedProcessing(context, processor, strategy=strategy,
                                           max_batch_size=case.max_batch_size or None)
        multiplier = 1.0
        for patch in _patch_pair(case.patch):  # deepinv pads every window to patch + 2 overlap
            multiplier *= -(-case.size // patch) * (patch + 2 * case.overlap) / case.size
        settings = {"layout": "replicated", "blend": "crop (deepinv)", "patch": case.patch, "overlap": case.overlap,
                    "max_batch_size": case.max_batch_size or None,
                    "core_boundaries": [list(range(p, case.size, p)) for p in _patch_pair(case.patch)]}
        return (lambda: processing(x, SIGMA)), multiplier, settings

    from distinv.tiling import TiledDenoiser

    config = _tiling_config(case, world_size)
    tiled = TiledDenoiser(model, config)
    multiplier = tiled.work_multiplier(shape)
    if config.layout == "sharded":
        start, stop = slab_bounds(case.size, world_size, rank)
        x = synthetic_rows(case.size, case.channels, start, stop, case.seed, device)
    else:
        x = synthetic_rows(case.size, case.channels, 0, case.size, case.seed, device)
    settings = {"layout": config.layout, "blend": config.blend, "patch": config.patch, "overlap": config.overlap,
                "max_batch_size": config.max_batch_size,
                "core_boundaries": [[start for start, _ in axis.cores[1:]] for axis in tiled.grid(shape).axes]}
    return (lambda: tiled(x, SIGMA)), multiplier, settings


def run_case(case: PriorCase) -> dict:
    """Run one case on this rank (every rank calls it); rank 0 returns the row (and the output)."""
    from distinv import rank_device
    from distinv.bench.measure import NetworkTimer, gather_objects, peak_memory_bytes, reset_peak_memory, synchronize
    from distinv.bench.provenance import device_name
    from distinv.distributed import comm
    from distinv.distributed.sharding import gather_slabs

    rank, world_size = comm.world()
    device = rank_device() if case.device != "cpu" else torch.device("cpu")
    with torch.inference_mode():
        model = NetworkTimer(build_model(case, device), device)
        forward, multiplier, settings = prepare_case(case, model, device, rank, world_size)
        # the peak counts the resident input and model, not the temporaries of building the test signal
        gc.collect()
        reset_peak_memory(device)
        for _ in range(case.warmup):
            output = forward()
        times, network = [], []
        with comm.accounting() as ledger:
            for _ in range(case.repeats):
                comm.barrier(site="bench.sync")
                synchronize(device)
                model.reset()
                start = time.perf_counter()
                output = forward()
                synchronize(device)
                comm.barrier(site="bench.sync")
                times.append(time.perf_counter() - start)
                network.append(model.seconds())
        peak = peak_memory_bytes(device)
        traffic = [row for row in ledger.report(per=max(1, case.repeats)) if row["site"] != "bench.sync"]
        peaks = gather_objects(peak)
        threads = gather_objects(torch.get_num_threads())
        network_per_rank = gather_objects(statistics.median(network))
        if settings.get("layout") == "sharded":
            output = gather_slabs(output, dst=0)
    if rank != 0:
        return {}
    row = {
        "impl": case.impl, "size": case.size, "ranks": world_size, "model": case.model, "channels": case.channels,
        "overlap": None if case.impl == "untiled" else case.overlap,
        "dtype": case.dtype, "device": device.type, "device_name": device_name(device),
        "median_s": statistics.median(times), "times_s": times, "peak_bytes_per_rank": peaks,
        "threads_per_rank": threads, "tile_work_multiplier": multiplier, "settings": settings,
        # time inside the network per rank (median over the runs); the rest of the wall time is the tiler's
        "network_s_per_rank": network_per_rank,
        "tiling_overhead_s": statistics.median(times) - max(network_per_rank),
        "comm_per_call": traffic,
    }
    if case.return_output:
        row["output"] = output.detach().float().cpu()
    return row


def psnr_db(output: torch.Tensor, reference: torch.Tensor, peak: float | None = None) -> float:
    """PSNR of ``output`` against ``reference`` with ``peak`` (default: the range of the reference; inf when equal).

    >>> psnr_db(torch.ones(4), torch.tensor([0., 1., 0., 1.])) > 0
    True
    """
    mse = torch.mean((output.double() - reference.double()) ** 2).item()
    peak = (reference.max() - reference.min()).item() if peak is None else peak
    return math.inf if mse == 0 else 10 * math.log10(peak ** 2 / mse)


def _launch_fresh(case: PriorCase, timeout: float | None) -> dict:
    """Run a case on fresh processes: one rank in a spawned child too (not in this process, whose threads,
    memory and earlier outputs would skew its time and peak memory)."""
    import multiprocessing

    import distinv

    device = "cuda" if case.device == "cuda" else "cpu"
    if case.ranks > 1:
        # CUDA ranks start with spawn: forkserver preloading deepinv broke CUDA ranks on an H100 node
        return distinv.launch(run_case, case, nprocs=case.ranks, timeout=timeout, device=device,
                              start_method="spawn" if device == "cuda" else "auto")
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        pending = pool.apply_async(distinv.launch, (run_case, case),
                                   dict(nprocs=1, device=device, threads=os.cpu_count() or 1))
        return pending.get(timeout)


def _round_order(items: list, firsts: list[bool], round_index: int) -> list:
    """The order of one size's cases in round ``round_index``: those flagged in ``firsts`` (the untiled
    reference, which the others' agreement needs) first, then the others rotated by ``round_index``, so
    that no case always runs first.

    >>> _round_order(["untiled", "a", "b", "c"], [True, False, False, False], 1)
    ['untiled', 'b', 'c', 'a']
    """
    first = [item for item, is_first in zip(items, firsts) if is_first]
    others = [item for item, is_first in zip(items, firsts) if not is_first]
    shift = round_index % len(others) if others else 0
    return first + others[shift:] + others[:shift]


def _merge_rounds(rows: list[dict]) -> dict:
    """One case's rows of every round as one row: every timed run, the median of each round, the median of
    all runs, every rank's median network time and its largest peak over the rounds."""
    merged = dict(rows[0])
    times = [t for row in rows for t in row["times_s"]]
    network = [statistics.median(values) for values in zip(*(row["network_s_per_rank"] for row in rows))]
    merged.update(
        times_s=times, round_medians_s=[row["median_s"] for row in rows], median_s=statistics.median(times),
        network_s_per_rank=network, tiling_overhead_s=statistics.median(times) - max(network),
        peak_bytes_per_rank=[max(values) for values in zip(*(row["peak_bytes_per_rank"] for row in rows))])
    return merged


def run_benchmark(cases: list[PriorCase], timeout: float | None = None, log=None, rounds: int = 1) -> list[dict]:
    """Run every case through :func:`distinv.launch` on fresh processes; adds ``agreement_psnr_db`` against
    ``untiled``.

    With ``rounds > 1`` each size's cases run once per round, interleaved (:func:`_round_order`), and each
    row keeps the median of every round (``round_medians_s``): cases of the same round ran within minutes
    of each other, so their per-round ratios are paired and a slow drift of the machine's speed (seen here
    at ±15 % between launches minutes apart) cancels out of them. Agreement is measured in the first round.
    """
    if not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be an integer >= 1, got {rounds!r}")
    log = sys.stderr if log is None else log  # looked up per call: a caller may redirect sys.stderr
    ordered = sorted(cases, key=lambda c: (c.size, c.impl != "untiled", c.ranks))
    rows = []
    for size in dict.fromkeys(case.size for case in ordered):
        indices = [i for i, case in enumerate(ordered) if case.size == size]
        reference = None
        measured: dict[int, list[dict]] = {i: [] for i in indices}
        failed: dict[int, dict] = {}
        for round_index in range(rounds):
            for i in _round_order(indices, [ordered[i].impl == "untiled" for i in indices], round_index):
                if i in failed:
                    continue
                case = ordered[i]
                print(f"[prior] {case.impl} size={case.size} ranks={case.ranks} overlap={case.overlap}"
                      + (f" round {round_index + 1}/{rounds}" if rounds > 1 else ""), file=log, flush=True)
                try:
                    row = _launch_fresh(case, timeout)
                except Exception as exc:  # a failed cell is reported, the others still run
                    where = f" (round {round_index + 1})" if rounds > 1 else ""
                    failed[i] = {"impl": case.impl, "size": case.size, "ranks": case.ranks, "overlap": case.overlap,
                                 "error": f"{type(exc).__name__}{where}: {exc}"[:2000]}
                    continue
                output = row.pop("output", None)
                if round_index == 0:
                    if case.impl == "untiled" and output is not None:
                        reference = output
                    _add_agreement(row, case, output, reference)
                measured[i].append(row)
        rows.extend(failed[i] if i in failed else _merge_rounds(measured[i]) for i in indices)
    return rows


def _add_agreement(row: dict, case: PriorCase, output, reference) -> None:
    row["agreement_psnr_db"] = (psnr_db(output, reference) if output is not None and reference is not None
                                else None)
    if output is not None and reference is not None and case.impl != "untiled":
        row["agreement_regions_db"] = agreement_by_region(
            output, reference, row["settings"].get("core_boundaries", [[], []]), case.overlap)


def agreement_by_region(output: torch.Tensor, reference: torch.Tensor, boundaries, width: int) -> dict:
    """Agreement (PSNR, dB, peak = range of the reference) in three regions of the image: ``border``
    (within ``width`` samples of its edge), ``seams`` (within ``width`` of a tile core boundary, off the
    border band) and ``elsewhere``. Tells where a tiler departs from the untiled network.

    :param torch.Tensor output: ``(B, C, H, W)`` tiled output.
    :param torch.Tensor reference: untiled output, same shape.
    :param boundaries: core boundaries per spatial axis (``[rows, columns]``).
    :param int width: band half-width (the overlap).

    >>> reference = torch.zeros(1, 1, 8, 8); reference[..., 0, 0] = 1
    >>> output = reference.clone(); output[..., 4, 4] = 0.1
    >>> regions = agreement_by_region(output, reference, [[4], [4]], 1)
    >>> regions["border"], regions["elsewhere"], round(regions["seams"], 1)
    (inf, inf, 33.0)
    """
    height, width_px = reference.shape[-2:]
    masks = []
    for n, cuts in zip((height, width_px), boundaries):
        index = torch.arange(n)
        border = (index < width) | (index >= n - width)
        seam = torch.zeros(n, dtype=torch.bool)
        for cut in cuts:
            seam |= (index >= cut - width) & (index < cut + width)
        masks.append((border, seam))
    (border_r, seam_r), (border_c, seam_c) = masks
    border = border_r[:, None] | border_c[None, :]
    seams = (seam_r[:, None] | seam_c[None, :]) & ~border
    regions = {"border": border, "seams": seams, "elsewhere": ~(border | seams)}
    peak = (reference.max() - reference.min()).item()
    return {name: (psnr_db(output[..., mask], reference[..., mask], peak) if mask.any() else None)
            for name, mask in regions.items()}


def _cases(args) -> list[PriorCase]:
    channels = args.channels or (3 if args.model == "default" else 1)
    if args.max_batch_size is None:
        args.max_batch_size = 8 if args.device == "cuda" else 1
    patch = args.patch[0] if len(args.patch) == 1 else tuple(args.patch)
    cases = []
    for size in args.sizes:
        # the untiled reference runs once per size, in one process, whatever the rank counts asked
        for ranks in sorted(set(args.ranks) | ({1} if "untiled" in args.impls else set())):
            for impl in args.impls:
                wanted = ranks == 1 if impl == "untiled" else ranks in args.ranks
                # the untiled network has no overlap: it runs once
                for overlap in (args.overlap[:1] if impl == "untiled" else args.overlap):
                    if wanted:
                        cases.append(PriorCase(
                            impl=impl, size=size, ranks=ranks, model=args.model, channels=channels, patch=patch,
                            overlap=overlap, max_batch_size=args.max_batch_size, dtype=args.dtype,
                            device=args.device, repeats=args.repeats, warmup=args.warmup,
                            channels_last=args.channels_last, seed=args.seed))
    return cases


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m distinv.bench.studies.prior", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048], help="signal sizes n (n x n)")
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2], help="numbers of ranks")
    parser.add_argument("--impls", nargs="+", default=list(IMPLEMENTATIONS), choices=IMPLEMENTATIONS)
    parser.add_argument("--model", choices=MODELS, default="small")
    parser.add_argument("--channels", type=int, default=None, help="default: 1 (small), 3 (default model)")
    parser.add_argument("--patch", type=int, nargs="+", default=[256],
                        help="tile core size: one integer, or rows and columns")
    parser.add_argument("--overlap", type=int, nargs="+", default=[32],
                        help="tile halo; several values run every tiler at each (quality against cost)")
    parser.add_argument("--max-batch-size", type=int, default=None,
                        help="tiles per network call; 0: all; default 1 on CPU (measured fastest), 8 on CUDA")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="float32")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every case this many times, interleaved with the other cases of its size "
                             "(paired per-round ratios cancel the machine's slow speed drifts)")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=None, help="seconds per case")
    add_output_arguments(parser)
    args = parser.parse_args(argv)
    refuse_existing_output(parser, args)
    if min(args.overlap) < 0:
        parser.error(f"--overlap values must be >= 0, got {args.overlap}")
    if len(args.patch) > 2 or min(args.patch) < 1:
        parser.error(f"--patch takes one or two integers >= 1 (rows, columns), got {args.patch}")
    if args.repeats < 1 or args.warmup < 0 or args.rounds < 1:
        parser.error(f"--repeats and --rounds must be >= 1 and --warmup >= 0, got {args.repeats}, {args.rounds} "
                     f"and {args.warmup}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from distinv.bench.provenance import collect_provenance

    rows = run_benchmark(_cases(args), timeout=args.timeout, rounds=args.rounds)
    document = {"benchmark": "distinv.bench.studies.prior", "args": vars(args),
                "provenance": collect_provenance(args.device), "results": rows}
    emit_document(document, args)
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
