"""The Markdown sentences of chapter 10 about the benchmark grids' runs: each states one measured
conclusion, computed from the results frames (:func:`distinv.bench.store.load_results`,
:func:`distinv.bench.summary.summarise_runs`), never typed by hand."""

from __future__ import annotations

import pandas as pd

__all__ = ["runs_sentence", "time_share_sentence", "best_speedup_sentence", "sharded_memory_sentence",
           "rank_agreement_sentence", "failed_runs_table"]


def runs_sentence(runs: pd.DataFrame, failed: pd.DataFrame, ran: int, skipped: int) -> str:
    """How many runs the results folders hold, per source, what this execution ran, and how many failed.

    :param pandas.DataFrame runs: one row per successful run (:func:`distinv.bench.summary.summarise_runs`).
    :param pandas.DataFrame failed: the rows of the failed runs.

    >>> runs = pd.DataFrame({"run_id": ["a", "b"], "source": ["cpu", "h100"]})
    >>> print(runs_sentence(runs, pd.DataFrame({"run_id": []}), ran=1, skipped=1))
    The results folders hold **2** successful runs (1 from `cpu`, 1 from `h100`); this execution ran 1 point(s) and skipped 1 already done. No run failed.
    """
    per_source = runs.groupby("source").size()
    text = (f"The results folders hold **{runs['run_id'].nunique()}** successful runs "
            f"({', '.join(f'{n} from `{s}`' for s, n in per_source.items())}); "
            f"this execution ran {ran} point(s) and skipped {skipped} already done. ")
    if len(failed):
        return text + f"**{failed['run_id'].nunique()} run(s) failed**; their errors are listed at the end of the page."
    return text + "No run failed."


def time_share_sentence(runs: pd.DataFrame) -> str:
    """The prior's share of the iteration time on one rank, and the shares of prior, communication and the
    rest on several ranks (sums over the runs).

    >>> runs = pd.DataFrame({"nprocs": [1, 2], "t_total": [1.0, 1.0], "t_prior": [1.0, 0.6],
    ...                      "t_comm": [0.0, 0.3], "t_other": [0.0, 0.1]})
    >>> print(time_share_sentence(runs))
    Over all runs on one rank the prior takes **100 %** of the iteration time. On several ranks the prior's share is **60 %**, communication **30 %** and the rest (waiting at the barrier for the slowest rank, zero-filling and copies) **10 %**.
    """
    multi, one = runs[runs["nprocs"] > 1], runs[runs["nprocs"] == 1]
    if not (len(multi) and len(one)):
        return "Not enough runs for a time split."

    def share(part: pd.DataFrame, column: str) -> float:
        return 100 * part[column].sum() / part["t_total"].sum()

    return (f"Over all runs on one rank the prior takes **{share(one, 't_prior'):.0f} %** of the iteration time. "
            f"On several ranks the prior's share is **{share(multi, 't_prior'):.0f} %**, communication "
            f"**{share(multi, 't_comm'):.0f} %** and the rest (waiting at the barrier for the slowest rank, "
            f"zero-filling and copies) **{share(multi, 't_other'):.0f} %**.")


def best_speedup_sentence(scaling: pd.DataFrame) -> str:
    """The largest measured speedup over one rank, with its run's variant, size, source and threads.

    :param pandas.DataFrame scaling: :func:`distinv.bench.figures.speedup_table`.

    >>> scaling = pd.DataFrame({"nprocs": [1, 2], "speedup": [1.0, 1.5], "variant": "distinv", "size": 1024,
    ...                         "source": "cpu", "efficiency": [1.0, 0.75], "threads_per_rank": 1})
    >>> print(best_speedup_sentence(scaling))
    The best measured speedup is **1.50×** on 2 ranks (distinv, 1024², `cpu`, efficiency 75 %), with 1 thread(s) per rank.
    """
    multi = scaling[scaling["nprocs"] > 1]
    if multi.empty:
        return "No multi-rank run has a one-rank reference yet."
    best = multi.sort_values("speedup").iloc[-1]
    return (f"The best measured speedup is **{best['speedup']:.2f}×** on {best['nprocs']} ranks "
            f"({best['variant']}, {int(best['size'])}², `{best['source']}`, efficiency "
            f"{100 * best['efficiency']:.0f} %), with {int(best['threads_per_rank'])} thread(s) per rank.")


def sharded_memory_sentence(runs: pd.DataFrame) -> str:
    """The range over sizes of the sharded layout's peak memory per rank over the replicated one's, on
    several ranks; ``""`` when the runs lack one of the two layouts.

    >>> runs = pd.DataFrame({"nprocs": 2, "source": "cpu", "size": [256, 256, 512, 512],
    ...                      "variant": ["distinv (replicated)", "distinv (sharded)"] * 2,
    ...                      "peak_mem_bytes": [100, 90, 200, 150]})
    >>> print(sharded_memory_sentence(runs))  # doctest: +ELLIPSIS
    On several ranks the sharded layout's peak memory per rank is 0.75–0.90 times the replicated one's ...
    """
    peaks = runs[runs["nprocs"] > 1].pivot_table(index=["source", "size"], columns="variant",
                                                 values="peak_mem_bytes", aggfunc="max")
    if not {"distinv (replicated)", "distinv (sharded)"} <= set(peaks.columns):
        return ""
    ratio = (peaks["distinv (sharded)"] / peaks["distinv (replicated)"]).dropna()
    return (f"On several ranks the sharded layout's peak memory per rank is {ratio.min():.2f}–{ratio.max():.2f} "
            "times the replicated one's over the sizes measured: where the ratio is close to 1, the network's "
            "activations for a batch of tiles, not the image, set the peak.")


def rank_agreement_sentence(frame: pd.DataFrame, use_case: str = "denoise") -> str:
    """The largest PSNR difference, over every iteration of every run, between several ranks and one rank
    (same source, variant and size).

    :param pandas.DataFrame frame: the per-iteration rows of :func:`distinv.bench.store.load_results`.

    >>> frame = pd.DataFrame({"status": "ok", "use_case": "denoise", "source": "cpu", "variant": "distinv",
    ...                       "size": 64, "iteration": [1, 2, 1, 2], "nprocs": [1, 1, 2, 2],
    ...                       "psnr": [20.0, 21.0, 20.0, 21.000002]})
    >>> print(rank_agreement_sentence(frame))
    Across 2 (run, iteration) pairs with a one-rank reference, the largest PSNR difference between several ranks and one is **2.0e-06 dB**.
    """
    ok = frame[(frame["status"] == "ok") & (frame["use_case"] == use_case)]
    keys = ["source", "variant", "size", "iteration"]
    reference = ok[ok["nprocs"] == 1].set_index(keys)["psnr"]
    others = ok[ok["nprocs"] > 1].set_index(keys)["psnr"]
    gap = (others - reference.reindex(others.index)).abs().dropna()
    if gap.empty:
        return "No multi-rank run has a one-rank reference yet."
    return (f"Across {len(gap)} (run, iteration) pairs with a one-rank reference, the largest PSNR difference "
            f"between several ranks and one is **{gap.max():.1e} dB**.")


def failed_runs_table(failed: pd.DataFrame) -> pd.DataFrame:
    """One row per failed run: where it ran, its point and the last line of its error (160 characters).

    >>> failed = pd.DataFrame({"source": ["h100"], "run_id": ["f4"], "use_case": ["denoise"], "nprocs": [2],
    ...                        "error": ["Traceback ...\\nRuntimeError: CUDA is already initialised\\n"]})
    >>> failed_runs_table(failed)["error"].tolist()
    ['RuntimeError: CUDA is already initialised']
    """
    columns = ["source", "run_id", "use_case", "nprocs", "error"]
    return failed[columns].assign(error=failed["error"].str.strip().str.split("\n").str[-1].str[:160])
