"""From the tidy results table (run × iteration) to one row per run, the unit every figure uses.

Times are medians over a run's iterations (the warm-up is never stored); memory is the peak over ranks;
PSNR/SSIM are those of the last iteration. ``t_other = t_total - t_grad - t_prior - t_comm`` is what the
split does not name (synchronisation waits, copies, Python). ``variant`` names the implementation (the
solver, for the reconstruction use cases) and, except for deepinv's tiler, its layout.

>>> import pandas as pd
>>> rows = pd.DataFrame({"run_id": ["a", "a"], "status": ["ok", "ok"], "use_case": ["denoise"] * 2,
...     "implementation": ["deepinv"] * 2, "layout": ["replicated"] * 2, "nprocs": [1, 1], "size": [64, 64],
...     "iteration": [1, 2], "t_total": [1.0, 3.0], "t_prior": [1.0, 2.0], "psnr": [20.0, 21.0]})
>>> summarise_runs(rows)[["variant", "t_total", "psnr"]].to_dict("records")
[{'variant': 'deepinv', 't_total': 2.0, 'psnr': 21.0}]
"""

from __future__ import annotations

import pandas as pd

__all__ = ["summarise_runs", "TIME_PARTS", "variant_label"]

#: The disjoint parts of an iteration's wall time, in stacking order.
TIME_PARTS = ("t_grad", "t_prior", "t_comm", "t_other")
_MEDIAN = ("t_total", "t_grad", "t_prior", "t_comm", "comm_bytes")
_LAST = ("psnr", "ssim")
_MAX = ("peak_mem_bytes",)
_INTEGERS = ("nprocs", "size", "iteration", "iterations", "warmup", "seed", "patch", "overlap", "max_batch_size",
             "threads_per_rank")


def variant_label(implementation: str, layout: str | float | None) -> str:
    """``"deepinv"``, ``"distinv (replicated)"``, ``"distinv (sharded)"``, ...

    :param str implementation: the implementation.
    :param str layout: the tiling layout (ignored for deepinv, which has one).
    """
    if not isinstance(implementation, str):
        return ""
    if implementation == "deepinv" or not isinstance(layout, str):
        return implementation
    return f"{implementation} ({layout})"


def summarise_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per successful run: its parameters, provenance and summary figures.

    :param pandas.DataFrame frame: the tidy table (from :class:`~distinv.bench.store.ResultsStore` or
        :func:`~distinv.bench.store.load_results`).
    """
    if frame.empty:
        return pd.DataFrame()
    ok = frame[frame["status"] == "ok"].sort_values(["run_id", "iteration"])
    if ok.empty:
        return pd.DataFrame()
    for column in ("t_grad", "t_prior", "t_comm"):
        if column not in ok:
            ok = ok.assign(**{column: 0.0})
    ok = ok.fillna({"t_grad": 0.0, "t_prior": 0.0, "t_comm": 0.0})
    for column in _INTEGERS:  # failed runs' empty cells made these float in the full table
        if column in ok and ok[column].notna().all():
            ok = ok.astype({column: int})
    keys = ["source", "run_id"] if "source" in ok else ["run_id"]
    constant = [c for c in ok.columns if c not in (*_MEDIAN, *_LAST, *_MAX, "iteration", *keys)]
    grouped = ok.groupby(keys, sort=False, dropna=False)
    runs = grouped[constant].first()
    runs = runs.join(grouped[[c for c in _MEDIAN if c in ok]].median())
    runs = runs.join(grouped[[c for c in _LAST if c in ok]].last())
    runs = runs.join(grouped[[c for c in _MAX if c in ok]].max())
    runs["iterations_timed"] = grouped.size()
    runs["t_other"] = (runs["t_total"] - runs["t_grad"] - runs["t_prior"] - runs["t_comm"]).clip(lower=0.0)
    runs = runs.reset_index()
    layout = runs["layout"] if "layout" in runs else pd.Series([None] * len(runs))
    runs["variant"] = [variant_label(name, l) for name, l in zip(_implementation_names(runs), layout)]
    return runs


def _implementation_names(runs: pd.DataFrame) -> list:
    """Per run: its ``solver`` (the reconstruction use cases), else its ``implementation`` (the tiler, for the
    prior's use cases), else its use case."""
    names = []
    for index in range(len(runs)):
        row = runs.iloc[index]
        for column in ("solver", "implementation", "use_case"):
            if column in runs and isinstance(row[column], str):
                names.append(row[column])
                break
        else:
            names.append(None)
    return names
