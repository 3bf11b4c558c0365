"""The measured conclusions of chapter 10 about the benchmark grids' runs, as numbers.

Each function reads the results frames (:func:`distinv.bench.store.load_results`,
:func:`distinv.bench.summary.summarise_runs`) and returns plain Python numbers and names (a dict), never
a sentence: the chapter holds the sentences and glues these values into them (myst-nb ``glue``). A value
that the runs at hand cannot give is ``nan`` (a number) or ``"none"`` (a name).

>>> runs = pd.DataFrame({"nprocs": [1, 2], "t_total": [1.0, 1.0], "t_prior": [1.0, 0.6],
...                      "t_comm": [0.0, 0.3], "t_other": [0.0, 0.1]})
>>> time_shares(runs)
{'prior_one_rank': 1.0, 'prior': 0.6, 'comm': 0.3, 'other': 0.1}
"""

from __future__ import annotations

import pandas as pd

__all__ = ["run_counts", "time_shares", "best_speedup", "sharded_memory_ratio", "rank_agreement",
           "failed_runs_table"]

_NAN = float("nan")


def run_counts(runs: pd.DataFrame, failed: pd.DataFrame, ran: int, skipped: int) -> dict:
    """How many runs the results folders hold, from how many sources, what this execution ran, how many failed.

    :param pandas.DataFrame runs: one row per successful run (:func:`distinv.bench.summary.summarise_runs`).
    :param pandas.DataFrame failed: the rows of the failed runs (any number of rows per run).
    :param int ran: grid points this execution ran.
    :param int skipped: grid points this execution found done.
    :return: ``{"runs", "sources", "ran", "skipped", "failed"}`` (integers).

    >>> runs = pd.DataFrame({"run_id": ["a", "b", "c"], "source": ["cpu", "h100", "h100"]})
    >>> run_counts(runs, pd.DataFrame({"run_id": ["f", "f"]}), ran=1, skipped=2)
    {'runs': 3, 'sources': 2, 'ran': 1, 'skipped': 2, 'failed': 1}
    """
    return {"runs": int(runs["run_id"].nunique()) if len(runs) else 0,
            "sources": int(runs["source"].nunique()) if len(runs) else 0,
            "ran": int(ran), "skipped": int(skipped),
            "failed": int(failed["run_id"].nunique()) if len(failed) else 0}


def time_shares(runs: pd.DataFrame) -> dict:
    """Shares of the iteration time (fractions, sums over the runs): the prior's on one rank, and the prior's,
    communication's and the rest's (barrier waits, zero-filling, copies) on several ranks.

    :param pandas.DataFrame runs: per-run table with ``nprocs``, ``t_total``, ``t_prior``, ``t_comm``, ``t_other``.
    :return: ``{"prior_one_rank", "prior", "comm", "other"}``; ``nan`` where no run has that many ranks.
    """
    one, multi = runs[runs["nprocs"] == 1], runs[runs["nprocs"] > 1]

    def share(part: pd.DataFrame, column: str) -> float:
        total = part["t_total"].sum()
        return float(part[column].sum() / total) if len(part) and total > 0 else _NAN

    return {"prior_one_rank": share(one, "t_prior"), "prior": share(multi, "t_prior"),
            "comm": share(multi, "t_comm"), "other": share(multi, "t_other")}


def best_speedup(scaling: pd.DataFrame) -> dict:
    """The largest measured speedup over one rank, with its run's ranks, variant, size, source, efficiency and
    threads per rank.

    :param pandas.DataFrame scaling: :func:`distinv.plots.benchmarks.speedup_table`.
    :return: ``{"speedup", "ranks", "variant", "size", "source", "efficiency", "threads"}``; ``nan``/``"none"``
        when no multi-rank run has a one-rank reference.

    >>> scaling = pd.DataFrame({"nprocs": [1, 2, 2], "speedup": [1.0, 1.5, 1.2], "variant": "distinv",
    ...                         "size": 1024, "source": "cpu", "efficiency": [1.0, 0.75, 0.6], "threads_per_rank": 1})
    >>> best_speedup(scaling)
    {'speedup': 1.5, 'ranks': 2, 'variant': 'distinv', 'size': 1024, 'source': 'cpu', 'efficiency': 0.75, 'threads': 1}
    """
    multi = scaling[scaling["nprocs"] > 1]
    if multi.empty:
        return {"speedup": _NAN, "ranks": _NAN, "variant": "none", "size": _NAN, "source": "none",
                "efficiency": _NAN, "threads": _NAN}
    best = multi.loc[multi["speedup"].idxmax()]
    return {"speedup": float(best["speedup"]), "ranks": int(best["nprocs"]), "variant": str(best["variant"]),
            "size": int(best["size"]), "source": str(best["source"]), "efficiency": float(best["efficiency"]),
            "threads": int(best["threads_per_rank"])}


def sharded_memory_ratio(runs: pd.DataFrame) -> dict:
    """The range, over the (source, size) pairs measured both ways on several ranks, of the sharded layout's
    peak memory per rank over the replicated one's.

    :param pandas.DataFrame runs: per-run table with ``variant`` (:func:`distinv.bench.summary.variant_label`).
    :return: ``{"low", "high", "pairs"}``; ``nan`` (and 0 pairs) without both layouts.

    >>> runs = pd.DataFrame({"nprocs": 2, "source": "cpu", "size": [256, 256, 512, 512],
    ...                      "variant": ["distinv (replicated)", "distinv (sharded)"] * 2,
    ...                      "peak_mem_bytes": [100, 90, 200, 150]})
    >>> sharded_memory_ratio(runs)
    {'low': 0.75, 'high': 0.9, 'pairs': 2}
    """
    peaks = runs[runs["nprocs"] > 1].pivot_table(index=["source", "size"], columns="variant",
                                                 values="peak_mem_bytes", aggfunc="max")
    if not {"distinv (replicated)", "distinv (sharded)"} <= set(peaks.columns):
        return {"low": _NAN, "high": _NAN, "pairs": 0}
    ratio = (peaks["distinv (sharded)"] / peaks["distinv (replicated)"]).dropna()
    if ratio.empty:
        return {"low": _NAN, "high": _NAN, "pairs": 0}
    return {"low": float(ratio.min()), "high": float(ratio.max()), "pairs": int(len(ratio))}


def rank_agreement(frame: pd.DataFrame, use_case: str = "denoise") -> dict:
    """The largest PSNR difference, over every iteration of every run, between several ranks and one rank
    (same source, variant and size).

    :param pandas.DataFrame frame: the per-iteration rows of :func:`distinv.bench.store.load_results`.
    :param str use_case: the use case compared.
    :return: ``{"pairs": number of (run, iteration) pairs compared, "max_gap_db"}`` (``nan`` without pairs).

    >>> frame = pd.DataFrame({"status": "ok", "use_case": "denoise", "source": "cpu", "variant": "distinv",
    ...                       "size": 64, "iteration": [1, 2, 1, 2], "nprocs": [1, 1, 2, 2],
    ...                       "psnr": [20.0, 21.0, 20.0, 21.5]})
    >>> rank_agreement(frame)
    {'pairs': 2, 'max_gap_db': 0.5}
    """
    ok = frame[(frame["status"] == "ok") & (frame["use_case"] == use_case)]
    keys = ["source", "variant", "size", "iteration"]
    reference = ok[ok["nprocs"] == 1].set_index(keys)["psnr"]
    others = ok[ok["nprocs"] > 1].set_index(keys)["psnr"]
    gap = (others - reference.reindex(others.index)).abs().dropna()
    return {"pairs": int(len(gap)), "max_gap_db": float(gap.max()) if len(gap) else _NAN}


def failed_runs_table(failed: pd.DataFrame) -> pd.DataFrame:
    """One row per failed run: where it ran, its point and the last line of its error (160 characters).

    >>> failed = pd.DataFrame({"source": ["h100"], "run_id": ["f4"], "use_case": ["denoise"], "nprocs": [2],
    ...                        "error": ["Traceback ...\\nRuntimeError: CUDA is already initialised\\n"]})
    >>> failed_runs_table(failed)["error"].tolist()
    ['RuntimeError: CUDA is already initialised']
    """
    columns = ["source", "run_id", "use_case", "nprocs", "error"]
    if failed.empty:
        return pd.DataFrame(columns=columns)
    table = failed[columns].drop_duplicates("run_id")
    return table.assign(error=table["error"].astype(str).str.strip().str.split("\n").str[-1].str[:160]
                        ).reset_index(drop=True)

