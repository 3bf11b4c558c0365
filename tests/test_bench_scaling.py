"""The strong-scaling model: analytic limits, fitting from measured runs, the published figures."""

import math

import pandas as pd
import pytest

from distinv.bench.studies.scaling import (CollectiveCost, StrongScalingModel, load_published_scaling, prediction_table,
                                   published_conditions)


def test_allreduce_cost_follows_the_ring_formula():
    cost = CollectiveCost(latency_s=1e-5, seconds_per_byte=1e-9)
    assert cost.allreduce(1e6, 1) == 0.0
    assert cost.allreduce(1e6, 2) == pytest.approx(2 * 1e-5 + 1e6 * 1e-9)
    assert cost.allreduce(1e6, 64) == pytest.approx(2 * 63 * 1e-5 + 2 * 63 / 64 * 1e6 * 1e-9)


def test_fit_recovers_latency_and_bandwidth_from_two_rank_runs():
    sizes = [1e4, 1e5, 1e6, 1e7]
    runs = pd.DataFrame({"use_case": "allreduce", "nprocs": 2, "comm_bytes": sizes,
                         "t_comm": [2 * 3e-5 + n * 2e-10 for n in sizes]})
    cost = CollectiveCost.fit(runs)
    assert cost.latency_s == pytest.approx(3e-5, rel=1e-6)
    assert cost.seconds_per_byte == pytest.approx(2e-10, rel=1e-6)
    with pytest.raises(ValueError, match="at least 2 sizes, got 1"):
        CollectiveCost.fit(runs.iloc[:1])


def test_free_communication_gives_the_tile_count_limit():
    model = StrongScalingModel(seconds_per_pixel=1e-8, collective=CollectiveCost(0.0, 0.0))
    table = model.predict(size=1024, patch=256, overlap=0, nprocs=[1, 2, 16, 64]).set_index("nprocs")
    assert table.loc[2, "speedup"] == pytest.approx(2.0)
    assert table.loc[16, "speedup"] == pytest.approx(16.0)
    assert table.loc[64, "speedup"] == pytest.approx(16.0)  # 16 tiles: ranks beyond 16 idle
    assert table.loc[1, "t_compute"] == pytest.approx(16 * 256 ** 2 * 1e-8)


def test_communication_bends_the_curve():
    slow = StrongScalingModel(1e-8, CollectiveCost(1e-4, 1e-9))
    table = slow.predict(size=4096, patch=448, overlap=32, channels=3)
    assert table["efficiency"].is_monotonic_decreasing
    assert (table["t_comm"].iloc[1:] > 0).all() and table["t_comm"].iloc[0] == 0


def test_from_runs_measures_rates_from_the_largest_one_rank_run():
    runs = pd.DataFrame([
        {"use_case": "denoise", "variant": "deepinv", "nprocs": 1, "size": 64, "t_prior": 1.0,
         "tile_work_multiplier": 2.0, "t_other": 0.0},
        {"use_case": "denoise", "variant": "deepinv", "nprocs": 1, "size": 128, "t_prior": 2.0,
         "tile_work_multiplier": 1.5, "t_other": 128 ** 2 * 1e-9},
        {"use_case": "allreduce", "variant": "allreduce", "nprocs": 2, "comm_bytes": 100, "t_comm": 1e-3},
        {"use_case": "allreduce", "variant": "allreduce", "nprocs": 2, "comm_bytes": 200, "t_comm": 2e-3},
    ])
    model = StrongScalingModel.from_runs(runs)
    assert model.seconds_per_pixel == pytest.approx(2.0 / (1.5 * 128 ** 2))
    assert model.other_seconds_per_pixel == pytest.approx(1e-9)
    with pytest.raises(ValueError, match="no one-rank denoise run of variant 'distinv'"):
        StrongScalingModel.from_runs(runs, variant="distinv")


@pytest.mark.parametrize("kwargs, match", [
    ({"size": 0, "patch": 8, "overlap": 0}, "size must be an integer >= 1, got 0"),
    ({"size": 64, "patch": 8, "overlap": -1}, "overlap must be an integer >= 0, got -1"),
    ({"size": 64, "patch": 8, "overlap": 0, "nprocs": [0]}, r"nprocs must hold integers >= 1, got 0"),
])
def test_predict_validates_its_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StrongScalingModel(1e-8, CollectiveCost(0, 0)).predict(**kwargs)


def test_published_figures_are_shipped_with_their_conditions():
    published = load_published_scaling()
    row = published[(published.problem == "sr8") & (published.image == 4096) & (published.gpus == 64)].iloc[0]
    assert row["total_s_per_iter"] == pytest.approx(0.262) and row["speedup"] == pytest.approx(13.99)
    assert math.isclose(row["efficiency"], row["speedup"] / 64, rel_tol=0.01)
    assert "V100" in published_conditions() and "Another code on another machine" in published_conditions()


def test_prediction_table_reads_each_model_at_64_ranks_and_adds_the_published_figure():
    free = StrongScalingModel(seconds_per_pixel=1e-8, collective=CollectiveCost(0.0, 0.0))
    slow = StrongScalingModel(seconds_per_pixel=1e-8, collective=CollectiveCost(1e-3, 1e-9))
    predictions = {name: model.predict(size=4096, patch=448, overlap=32) for name, model in
                   (("free", free), ("slow", slow))}
    table = prediction_table(predictions, load_published_scaling(), size=4096).set_index("series")
    # ceil(4096 / 448)² = 100 tiles: 2 on the busiest of 64 ranks, so free communication gives 100 / 2 = 50×
    assert table.loc["free", ["ranks", "tiles on the busiest rank"]].tolist() == [64, 2]
    assert table.loc["free", "speedup"] == pytest.approx(50.0) and table.loc["free", "all-reduce share"] == 0.0
    slow_at_64 = predictions["slow"].set_index("nprocs").loc[64]
    assert table.loc["slow", "all-reduce share"] == pytest.approx(slow_at_64["t_comm"] / slow_at_64["t_total"])
    assert table.loc["published (V100, 4096²)", "speedup"] == pytest.approx(13.99)
    assert prediction_table(predictions, load_published_scaling(), size=2048)["speedup"].iloc[-1] == pytest.approx(9.69)
    assert prediction_table(predictions, load_published_scaling(), size=1024)["series"].tolist() == ["free", "slow"]
