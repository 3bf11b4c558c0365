"""Command line of the benchmark runner.

::

    python -m distinv.bench run CONFIG.yaml [--results-dir DIR] [--force]
    python -m distinv.bench list CONFIG.yaml            # the grid's points and whether each is done
    python -m distinv.bench show RESULTS_DIR            # one line per stored run
    python -m distinv.bench use-cases

``CONFIG.yaml`` may also be the name of a configuration shipped in ``distinv/bench/configs``
(``cpu``, ``gpu``, ``tiny``). Under ``torchrun`` ``run`` runs in place on the job's ranks.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from distinv.bench.config import load_config, point_id
from distinv.bench.registry import get_use_case, use_case_names
from distinv.bench.runner import run_config
from distinv.bench.store import ResultsStore

CONFIGS_DIR = Path(__file__).resolve().parent / "configs"


def resolve_config_path(name: str) -> Path:
    """A path as given, or the shipped configuration ``configs/<name>.yaml``.

    :param str name: path or shipped name.
    """
    path = Path(name)
    if path.is_file():
        return path
    shipped = CONFIGS_DIR / f"{name}.yaml"
    if shipped.is_file():
        return shipped
    names = sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml"))
    raise FileNotFoundError(f"no configuration file {name!r}, and no shipped configuration of that name ({names})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m distinv.bench", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the points of a grid that are not done yet")
    run.add_argument("config")
    run.add_argument("--results-dir", default=None, help="store folder (default: the config's results_dir)")
    run.add_argument("--force", action="store_true", help="rerun points already done")
    listing = sub.add_parser("list", help="list a grid's points and their status")
    listing.add_argument("config")
    listing.add_argument("--results-dir", default=None)
    show = sub.add_parser("show", help="summarise a results folder")
    show.add_argument("results_dir")
    sub.add_parser("use-cases", help="list the registered use cases")
    args = parser.parse_args(argv)

    if args.command == "use-cases":
        for name in use_case_names():
            case = get_use_case(name)
            print(f"{name:12s} {case.description}\n{'':12s} params: {case.parameters()}")
        return 0
    if args.command == "show":
        frame = ResultsStore(args.results_dir).load()
        if frame.empty:
            print(f"no runs in {args.results_dir}")
            return 0
        keys = [k for k in ("use_case", "implementation", "nprocs", "size", "status") if k in frame]
        table = frame.groupby(["run_id", *keys], dropna=False).agg(
            iterations=("iteration", "count"), t_total=("t_total", "median")).reset_index()
        print(table.to_string(index=False))
        return 0

    config = load_config(resolve_config_path(args.config))
    if args.command == "list":
        store = ResultsStore(args.results_dir or config.results_dir)
        for params in config.points():
            run_id = point_id(params)
            values = " ".join(f"{k}={params[k]}" for k in config.grid)
            print(f"{run_id} {store.status(run_id) or 'todo':5s} {values}")
        return 0
    summary = run_config(config, results_dir=args.results_dir, force=args.force)
    if os.environ.get("RANK", "0") == "0":
        print(f"ran {len(summary.ran)}, skipped {len(summary.skipped)}, failed {len(summary.failed)}; "
              f"results in {summary.results_dir}")
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
