"""The grid runner: real runs on 1-3 gloo ranks, equivalence with one rank, resume, failures."""

import pytest

from distinv.bench.config import BenchConfig, point_id
from distinv.bench.registry import UseCase, register_use_case
from distinv.bench.runner import run_config
from distinv.bench.store import ResultsStore


def failing_rank(cfg):
    """A use case entry point that always fails."""
    raise ValueError(f"deliberate failure at size {cfg['size']}")


register_use_case(UseCase("bench_test_failing", "test_bench_runner:failing_rank", {"size": 8}), replace=True)

DENOISE = {"use_case": "denoise", "implementation": "deepinv", "size": 64, "patch": 32, "overlap": 8,
           "iterations": 2, "device": "cpu"}


@pytest.fixture(scope="module")
def denoise_grid(tmp_path_factory):
    """One 3-point grid (1, 2, 3 ranks) run once for the tests below."""
    root = tmp_path_factory.mktemp("denoise")
    cfg = BenchConfig.from_dict({"name": "t", "results_dir": str(root), "timeout_s": 120, "fixed": DENOISE,
                                 "grid": {"nprocs": [1, 2, 3]}})
    summary = run_config(cfg, verbose=False)
    return cfg, summary, ResultsStore(root)


def test_every_point_runs_and_stores_one_row_per_iteration(denoise_grid):
    cfg, summary, store = denoise_grid
    assert len(summary.ran) == 3 and not summary.failed
    frame = store.load()
    assert frame.groupby("nprocs").size().to_dict() == {1: 2, 2: 2, 3: 2}
    assert (frame["status"] == "ok").all()
    for column in ("t_total", "t_prior", "t_comm", "comm_bytes", "peak_mem_bytes", "psnr", "ssim"):
        assert frame[column].notna().all(), column
    assert (frame["t_prior"] <= frame["t_total"]).all()
    assert (frame["peak_mem_bytes"] > 10e6).all()
    assert frame["config_hash"].eq(cfg.config_hash).all()
    assert frame["commit"].str.fullmatch(r"[0-9a-f]{40}|unknown").all()


def test_multi_rank_runs_equal_the_single_rank_run(denoise_grid):
    frame = denoise_grid[2].load().sort_values(["nprocs", "iteration"])
    reference = frame[frame.nprocs == 1].set_index("iteration")
    for nprocs in (2, 3):
        multi = frame[frame.nprocs == nprocs].set_index("iteration")
        assert multi["psnr"].to_numpy() == pytest.approx(reference["psnr"].to_numpy(), abs=1e-4)
        assert multi["ssim"].to_numpy() == pytest.approx(reference["ssim"].to_numpy(), abs=1e-5)


def test_communication_is_counted_only_with_several_ranks(denoise_grid):
    frame = denoise_grid[2].load()
    image_bytes = 64 * 64 * 4
    assert (frame[frame.nprocs == 1]["comm_bytes"] == 0).all()
    assert (frame[frame.nprocs > 1]["comm_bytes"] == image_bytes).all()  # one all-reduce of the image
    ranks = denoise_grid[2].load_ranks()
    assert ranks.groupby("run_id").size().sort_values().tolist() == [1, 2, 3]


def test_a_rerun_skips_done_points_unless_forced(denoise_grid, tmp_path):
    cfg, first, store = denoise_grid
    stamps = {p.name: p.stat().st_mtime_ns for p in store.root.glob("*.csv")}
    again = run_config(cfg, verbose=False)
    assert again.ran == [] and sorted(again.skipped) == sorted(first.ran)
    assert {p.name: p.stat().st_mtime_ns for p in store.root.glob("*.csv")} == stamps
    one = BenchConfig.from_dict({**cfg.to_dict(), "grid": {"nprocs": [1]}})
    forced = run_config(one, force=True, verbose=False)
    assert forced.ran == [point_id(one.points()[0])]


def test_a_failing_point_is_recorded_and_the_grid_goes_on(tmp_path):
    cfg = BenchConfig.from_dict({"name": "f", "results_dir": str(tmp_path), "timeout_s": 120,
                                 "fixed": {"size": 16, "iterations": 1, "device": "cpu"},
                                 "grid": {"use_case": ["bench_test_failing", "allreduce"], "nprocs": [1, 2]}})
    summary = run_config(cfg, verbose=False)
    assert len(summary.failed) == 2 and len(summary.ran) == 2
    frame = ResultsStore(tmp_path).load()
    failed = frame[frame.status == "error"]
    assert sorted(failed["nprocs"]) == [1, 2]
    assert failed["error"].str.contains("deliberate failure at size 16").all()
    assert failed["error"].str.contains(r"RankError: rank \d failed").any()  # the 2-rank failure names its rank
    assert (frame[frame.use_case == "allreduce"]["status"] == "ok").all()
    # a rerun retries the failed points only
    again = run_config(cfg, verbose=False)
    assert sorted(again.failed) == sorted(summary.failed) and sorted(again.skipped) == sorted(summary.ran)
