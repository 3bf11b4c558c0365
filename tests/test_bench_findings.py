"""Chapter 10's numbers about the grid runs (distinv.bench.findings), checked against hand-computed values."""

import math

import pandas as pd
import pytest

from distinv.plots.benchmarks import speedup_table
from distinv.bench.findings import (best_speedup, failed_runs_table, rank_agreement, run_counts, sharded_memory_ratio,
                                    time_shares)


def _runs():
    """Two sources; on `cpu` deepinv and distinv (both layouts) on 1 and 2 ranks, on `gpu` deepinv only."""
    rows = [
        # source, variant, size, nprocs, t_total, t_prior, t_comm, t_other, peak
        ("cpu", "deepinv", 256, 1, 4.0, 3.8, 0.0, 0.2, 100),
        ("cpu", "deepinv", 256, 2, 2.5, 1.9, 0.5, 0.1, 100),
        ("cpu", "distinv (replicated)", 256, 1, 3.0, 3.0, 0.0, 0.0, 100),
        ("cpu", "distinv (replicated)", 256, 2, 1.5, 1.0, 0.4, 0.1, 120),
        ("cpu", "distinv (sharded)", 256, 2, 1.6, 1.0, 0.5, 0.1, 60),
        ("gpu", "deepinv", 1024, 1, 1.0, 1.0, 0.0, 0.0, 500),
        ("gpu", "deepinv", 1024, 2, 0.8, 0.5, 0.3, 0.0, 500),
    ]
    columns = ["source", "variant", "size", "nprocs", "t_total", "t_prior", "t_comm", "t_other", "peak_mem_bytes"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.assign(run_id=[f"r{i}" for i in range(len(frame))], use_case="denoise", threads_per_rank=1)


def test_run_counts_count_runs_sources_and_failed_runs_once():
    failed = pd.DataFrame({"run_id": ["x", "x", "y"]})  # a failed run may leave several rows
    counts = run_counts(_runs(), failed, ran=3, skipped=4)
    assert counts == {"runs": 7, "sources": 2, "ran": 3, "skipped": 4, "failed": 2}
    assert run_counts(pd.DataFrame(), pd.DataFrame(), ran=0, skipped=0)["runs"] == 0


def test_time_shares_are_sums_over_runs():
    shares = time_shares(_runs())
    # one rank: prior 3.8 + 3.0 + 1.0 over totals 4.0 + 3.0 + 1.0; several: prior 4.4, comm 1.7, other 0.3 over 6.4
    assert shares["prior_one_rank"] == pytest.approx(7.8 / 8.0)
    assert (shares["prior"], shares["comm"], shares["other"]) == pytest.approx((4.4 / 6.4, 1.7 / 6.4, 0.3 / 6.4))
    assert math.isnan(time_shares(_runs().query("nprocs == 2"))["prior_one_rank"])


def test_best_speedup_is_the_largest_ratio_to_the_same_source_and_variant_on_one_rank():
    best = best_speedup(speedup_table(_runs()))
    # cpu distinv replicated 3.0 / 1.5 = 2.0 beats cpu deepinv 4.0 / 2.5 = 1.6 and gpu 1.0 / 0.8 = 1.25; the sharded
    # run has no one-rank run of its own variant
    assert best == {"speedup": 2.0, "ranks": 2, "variant": "distinv (replicated)", "size": 256, "source": "cpu",
                    "efficiency": 1.0, "threads": 1}
    none = best_speedup(speedup_table(_runs().query("nprocs == 1")))
    assert none["variant"] == "none" and math.isnan(none["speedup"])


def test_sharded_memory_ratio_compares_the_layouts_at_equal_source_and_size():
    assert sharded_memory_ratio(_runs()) == {"low": 0.5, "high": 0.5, "pairs": 1}  # 60 / 120 on cpu at 256²
    missing = sharded_memory_ratio(_runs().query("variant != 'distinv (sharded)'"))
    assert missing["pairs"] == 0 and math.isnan(missing["low"])


def test_rank_agreement_pairs_iterations_with_the_one_rank_run_of_the_same_settings():
    frame = pd.DataFrame({
        "status": "ok", "use_case": "denoise", "variant": "deepinv", "size": 64,
        "source": ["cpu"] * 4 + ["gpu"] * 2, "iteration": [1, 2, 1, 2, 1, 1], "nprocs": [1, 1, 2, 2, 2, 4],
        "psnr": [20.0, 21.0, 20.0, 21.25, 30.0, 31.0]})
    # the gpu runs have no one-rank reference: only the cpu pairs count (gaps 0 and 0.25)
    assert rank_agreement(frame) == {"pairs": 2, "max_gap_db": 0.25}
    assert math.isnan(rank_agreement(frame[frame["source"] == "gpu"])["max_gap_db"])


def test_failed_runs_table_keeps_one_row_per_run_and_the_last_error_line():
    failed = pd.DataFrame({"source": "cpu", "run_id": ["a", "a", "b"], "use_case": "denoise", "nprocs": 2,
                           "error": ["Traceback\nValueError: bad size\n"] * 2 + ["RankError: " + "x" * 300]})
    table = failed_runs_table(failed)
    assert table["run_id"].tolist() == ["a", "b"] and table["error"].tolist()[0] == "ValueError: bad size"
    assert len(table["error"].tolist()[1]) == 160
    assert failed_runs_table(pd.DataFrame()).empty
