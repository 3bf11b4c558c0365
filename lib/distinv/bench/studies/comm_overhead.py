"""Micro-benchmark: what the accounted wrappers of :mod:`distinv.distributed.comm` cost.

Ranks run, in the same job and interleaved, loops of small in-place all-reduces through three paths:
``raw`` (``torch.distributed.all_reduce``), ``comm_off`` (``comm.all_reduce`` with accounting off:
the path every distinv operator takes by default) and ``comm_on`` (inside ``comm.accounting()``).
The time per call of each loop is recorded ``repeats`` times; the figures are medians, with the spread
of the ``raw`` loops beside them so that a difference can be read against the noise.

::

    python -m distinv.bench.studies.comm_overhead --nprocs 2 --calls 200 --repeats 7 --numel 16

prints one JSON object.

>>> result = measure_comm_overhead(OverheadConfig(nprocs=1, calls=5, repeats=3))
>>> sorted(result["median_us"])
['comm_off', 'comm_on', 'raw']
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch
import torch.distributed as dist

from distinv.distributed import comm

__all__ = ["OverheadConfig", "measure_comm_overhead", "comm_overhead_rank"]

VARIANTS = ("raw", "comm_off", "comm_on")


@dataclass(frozen=True)
class OverheadConfig:
    """Size of the micro-benchmark.

    :param int nprocs: ranks, ``>= 1`` (on one rank the wrappers return at once and ``raw`` still
        calls gloo, so the interesting figure needs ``>= 2``).
    :param int calls: all-reduces per timed loop, ``>= 1``.
    :param int repeats: timed loops per variant, ``>= 1``.
    :param int numel: float32 elements per all-reduce, ``>= 1``.
    :param int warmup: untimed calls per variant before the first loop, ``>= 0``.
    """

    nprocs: int = 2
    calls: int = 200
    repeats: int = 7
    numel: int = 16
    warmup: int = 20

    def __post_init__(self):
        for name, minimum in (("nprocs", 1), ("calls", 1), ("repeats", 1), ("numel", 1), ("warmup", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _loop(call: Callable[[torch.Tensor], object], buffer: torch.Tensor, calls: int) -> float:
    """Seconds per call of ``calls`` calls, started together on every rank."""
    if comm.world()[1] > 1:
        dist.barrier()  # the reference path: deliberately not through the wrappers
    start = time.perf_counter()
    for _ in range(calls):
        call(buffer)
    return (time.perf_counter() - start) / calls


def comm_overhead_rank(config: OverheadConfig) -> dict:
    """Rank entry point: every variant's per-call times (seconds), interleaved over the repeats."""
    buffer = torch.zeros(config.numel)  # zeros: the sums stay finite however many calls
    calls = {
        "raw": lambda t: dist.all_reduce(t),
        "comm_off": lambda t: comm.all_reduce(t, site="bench.overhead"),
        "comm_on": lambda t: comm.all_reduce(t, site="bench.overhead"),
    }
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for name in VARIANTS:
        _run_variant(name, calls[name], buffer, config.warmup)
    for repeat in range(config.repeats):
        order = VARIANTS if repeat % 2 == 0 else VARIANTS[::-1]  # no variant always runs first
        for name in order:
            times[name].append(_run_variant(name, calls[name], buffer, config.calls))
    return times


def _run_variant(name: str, call, buffer: torch.Tensor, calls: int) -> float:
    if calls == 0:
        return 0.0
    if name == "comm_on":
        with comm.accounting():
            return _loop(call, buffer, calls)
    return _loop(call, buffer, calls)


def measure_comm_overhead(config: OverheadConfig = OverheadConfig()) -> dict:
    """Launch the ranks and summarise rank 0's times (microseconds per all-reduce).

    :param OverheadConfig config: benchmark size.
    :return: ``{"config", "median_us", "raw_spread_us", "overhead_off_us", "overhead_on_us",
        "environment"}``; ``overhead_*`` are median differences with ``raw``.
    """
    from distinv.launch import launch

    times = launch(comm_overhead_rank, config, nprocs=config.nprocs, timeout=600)
    median = {name: statistics.median(values) * 1e6 for name, values in times.items()}
    return {
        "config": asdict(config),
        "median_us": median,
        "raw_spread_us": [min(times["raw"]) * 1e6, max(times["raw"]) * 1e6],
        "overhead_off_us": median["comm_off"] - median["raw"],
        "overhead_on_us": median["comm_on"] - median["raw"],
        "environment": {"torch": torch.__version__, "backend": "gloo", "device": "cpu",
                        "machine": platform.machine(), "cpu_count": os.cpu_count()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m distinv.bench.studies.comm_overhead",
                                     description=__doc__.split("\n")[0])
    defaults = OverheadConfig()
    for name in ("nprocs", "calls", "repeats", "numel", "warmup"):
        parser.add_argument(f"--{name}", type=int, default=getattr(defaults, name))
    args = parser.parse_args(argv)
    config = OverheadConfig(**{name: getattr(args, name) for name in ("nprocs", "calls", "repeats", "numel", "warmup")})
    print(json.dumps(measure_comm_overhead(config), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
