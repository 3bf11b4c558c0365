"""What pinning glibc's mmap threshold costs in time: ``python -m distinv.bench.allocator``.

Each policy (glibc's default, :func:`distinv.allocator.map_large_allocations`) runs in fresh processes,
alternating, since a pinned threshold stays pinned: vector updates on a 16 MiB slab (a 64-slice slab of
256², as a solver's CG makes), and the small DRUNet on one 96² window (the CT lean settings' in-plane tile)
and on one 288² tile (a 256² patch with its overlap). Prints medians over rounds and the mapped/default
ratios as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

__all__ = ["allocator_costs", "main"]

_ONE_ROUND = """
import json, sys, time, statistics, torch
from deepinv.models import DRUNet
from distinv.allocator import map_large_allocations
torch.set_num_threads(1)
if sys.argv[1] == "mapped":
    map_large_allocations()
def median_seconds(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter(); fn(); times.append(time.perf_counter() - start)
    return statistics.median(times)
slab = torch.rand(64, 256, 256)
def vector_updates():
    y = slab * 2.0 + 1.0
    return float((torch.sqrt(y) - slab).mul_(y).sum())
net = DRUNet(1, 1, nc=[32, 64, 128, 256], nb=2, pretrained=None).eval()
window, tile = torch.rand(1, 1, 96, 96), torch.rand(1, 1, 288, 288)
with torch.no_grad():
    out = {"slab_updates_s": median_seconds(vector_updates, 9),
           "drunet_96_s": median_seconds(lambda: net(window, 0.05), 9),
           "drunet_288_s": median_seconds(lambda: net(tile, 0.05), 3)}
print(json.dumps(out))
"""

POLICIES = ("default", "mapped")


def allocator_costs(rounds: int = 3) -> dict:
    """Medians over ``rounds`` fresh processes per policy (alternating) and the mapped/default ratios.

    :param int rounds: processes per policy, ``>= 1``.
    """
    if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
        raise ValueError(f"rounds must be an integer >= 1, got {rounds!r}")
    runs: dict[str, list[dict]] = {policy: [] for policy in POLICIES}
    for _ in range(rounds):
        for policy in POLICIES:
            done = subprocess.run([sys.executable, "-c", _ONE_ROUND, policy], capture_output=True, text=True,
                                  check=True)
            runs[policy].append(json.loads(done.stdout.strip().splitlines()[-1]))
    keys = list(runs["default"][0])
    medians = {policy: {key: statistics.median(run[key] for run in runs[policy]) for key in keys}
               for policy in POLICIES}
    return {"rounds": rounds, "threads": 1, "medians": medians,
            "mapped_over_default": {key: medians["mapped"][key] / medians["default"][key] for key in keys}}


def main(argv: list[str] | None = None) -> dict:
    """``python -m distinv.bench.allocator [--rounds N] [--out FILE]``."""
    from distinv.bench.output import add_output_arguments, emit_document, refuse_existing_output
    from distinv.bench.provenance import collect_provenance

    parser = argparse.ArgumentParser(prog="python -m distinv.bench.allocator", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    add_output_arguments(parser)
    args = parser.parse_args(argv)
    refuse_existing_output(parser, args)
    document = {"study": "allocator costs", **allocator_costs(args.rounds), "provenance": collect_provenance("cpu")}
    emit_document(document, args)
    return document


if __name__ == "__main__":
    main()
