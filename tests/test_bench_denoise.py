"""The denoise use case with distinv's TiledDenoiser: replicated and sharded layouts equal one rank."""

import pytest

from distinv.bench.config import BenchConfig
from distinv.bench.runner import run_config
from distinv.bench.store import ResultsStore

FIXED = {"use_case": "denoise", "implementation": "distinv", "size": 64, "patch": 32, "overlap": 8,
         "blend": "smooth", "iterations": 2, "device": "cpu"}


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    root = tmp_path_factory.mktemp("distinv")
    cfg = BenchConfig.from_dict({"name": "d", "results_dir": str(root), "timeout_s": 120, "fixed": FIXED,
                                 "grid": {"layout": ["replicated", "sharded"], "nprocs": [1, 2, 3]},
                                 "exclude": [{"layout": "replicated", "nprocs": 3}]})
    summary = run_config(cfg, verbose=False)
    assert not summary.failed, ResultsStore(root).load()["error"].dropna().tolist()
    return ResultsStore(root).load()


@pytest.mark.parametrize("layout, nprocs", [("replicated", 2), ("sharded", 2), ("sharded", 3)])
def test_distinv_tiling_on_several_ranks_equals_one_rank(frame, layout, nprocs):
    reference = frame[(frame.layout == "replicated") & (frame.nprocs == 1)].sort_values("iteration")
    multi = frame[(frame.layout == layout) & (frame.nprocs == nprocs)].sort_values("iteration")
    assert multi["psnr"].to_numpy() == pytest.approx(reference["psnr"].to_numpy(), abs=1e-4)
    assert multi["ssim"].to_numpy() == pytest.approx(reference["ssim"].to_numpy(), abs=1e-5)


def test_sharded_ranks_send_less_than_the_whole_image(frame):
    image_bytes = 64 * 64 * 4
    sharded = frame[(frame.layout == "sharded") & (frame.nprocs == 2)]
    replicated = frame[(frame.layout == "replicated") & (frame.nprocs == 2)]
    assert (sharded["comm_bytes"] > 0).all() and (sharded["comm_bytes"] < image_bytes).all()
    assert (replicated["comm_bytes"] == image_bytes).all()


def test_work_multiplier_is_recorded(frame):
    assert (frame["tile_work_multiplier"] > 1).all()
    assert frame.groupby("layout")["tile_work_multiplier"].nunique().eq(1).all()
