"""The book's view of the tiled-prior benchmark files: loading both file kinds, the numbers the chapter glues in."""

import json
import math

import pandas as pd
import pytest

from distinv.plots.prior import (agreement_cost_figure, best_tradeoff, cheapest_at_least_as_good, file_summary,
                                        load_prior_runs, memory_growth, network_layout_speedups, network_share,
                                        overlap_sweeps, paired_speedups, paired_speedups_by_file, prior_table,
                                        region_gains, round_drift, slab_share_range, styled_table, tradeoff_table)


def _row(impl, overlap, median, agreement, ranks=2):
    return {"impl": impl, "size": 256, "ranks": ranks, "model": "shipped", "overlap": overlap, "median_s": median,
            "network_s_per_rank": [median * 0.9] * ranks, "tiling_overhead_s": median * 0.1,
            "tile_work_multiplier": 1.0 if overlap is None else 1 + overlap / 64, "peak_bytes_per_rank": [2 ** 20] * ranks,
            "agreement_psnr_db": agreement, "settings": {"patch": 64}, "device_name": "cpu (test)"}


def test_loads_single_and_gathered_files_and_compares_at_equal_agreement(tmp_path):
    single = {"provenance": {"recorded_at": "2026-11-27T06:00:00"}, "results": [
        _row("untiled", None, 4.0, math.inf, ranks=1),
        _row("deepinv", 16, 2.4, 55.0),
        dict(_row("deepinv", 32, 3.0, 60.0), agreement_regions_db={"border": 49.0, "seams": 69.0, "elsewhere": math.inf}),
        _row("distinv", 8, 2.0, 58.0), _row("distinv", 16, 2.2, 62.0), _row("distinv", 32, 2.9, 70.0),
        {"impl": "distinv-sharded", "size": 256, "ranks": 2, "error": "RankError: boom"},
    ]}
    gathered = {"runs": [{"provenance": {}, "results": [_row("distinv", 32, 1.0, None, ranks=1)]}]}
    (tmp_path / "sweep.json").write_text(json.dumps(single))
    (tmp_path / "gpu.json").write_text(json.dumps(gathered))
    runs = load_prior_runs(tmp_path)
    assert len(runs) == 7  # the failed cell is left out
    assert set(runs["source"]) == {"sweep", "gpu"}
    assert runs.loc[runs["impl"] == "untiled", "agreement_psnr_db"].isna().all()  # exact (inf) shows as empty
    assert runs.loc[runs["source"] == "sweep", "date"].unique().tolist() == ["2026-11-27"]
    sweep = runs[runs["source"] == "sweep"]
    best = cheapest_at_least_as_good(sweep, "deepinv", 32)
    assert best[["impl", "overlap"]].values.tolist() == [["distinv", 16]]  # overlap 8 agrees worse than 60 dB
    assert best["speedup"].item() == pytest.approx(3.0 / 2.2)
    assert cheapest_at_least_as_good(sweep, "deepinv", 64).empty
    figure = agreement_cost_figure(sweep)
    assert sorted(trace.name for trace in figure.data) == ["deepinv", "distinv"]
    table = prior_table(runs[runs["source"] == "sweep"])
    assert table.shape[0] == 6 and "border (dB)" in table and "elsewhere (dB)" not in table and table["overlap"].tolist()[0] == "–"
    assert table["size"].tolist()[0] == "256²" and "–" in styled_table(table).to_html()
    assert table["overlap"].tolist()[1:3] == ["16", "32"]  # not "16.0"
    assert "network s" not in table
    summary = file_summary(runs).set_index("file")
    assert summary.loc["sweep", ["model", "network", "cases"]].tolist() == ["shipped", "NCHW", 6]
    assert summary.loc["sweep", "network share (median %)"] == pytest.approx(90.0)  # network_s = 0.9 median_s
    assert pd.isna(summary.loc["sweep", "drift between rounds (max %)"])  # one round: no drift to measure
    regions = runs[(runs["impl"] == "deepinv") & (runs["overlap"] == 32)][["border_db", "seams_db", "elsewhere_db"]]
    assert regions.iloc[0].tolist()[:2] == [49.0, 69.0] and pd.isna(regions.iloc[0]["elsewhere_db"])
    (key, rows), = overlap_sweeps(runs)  # the gathered file has one overlap only: no sweep
    assert key == ("sweep", 256, 2) and "untiled" in set(rows["impl"])
    rows = rows.copy()
    rows = pd.concat([rows, rows[rows["impl"] == "distinv"].assign(impl="distinv-crop", median_s=2.95)], ignore_index=True)
    regions = {"distinv": [73.5, 66.3], "distinv-crop": [73.5, 65.7], "deepinv": [50.1, 65.6]}
    for impl, values in regions.items():
        rows.loc[(rows["impl"] == impl) & (rows["overlap"] == 32), ["border_db", "seams_db"]] = values
    gains = region_gains(rows, 32).set_index("comparison")
    blending, tiles = gains.index
    assert blending.startswith("smooth blending") and tiles.startswith("distinv's tiles")
    regions = ["border (dB)", "seams (dB)"]
    assert gains.loc[blending, regions].tolist() == pytest.approx([0.0, 0.6])  # 73.5 - 73.5, 66.3 - 65.7
    assert gains.loc[tiles, regions].tolist() == pytest.approx([23.4, 0.1])  # 73.5 - 50.1, 65.7 - 65.6
    assert gains.loc[tiles, "elsewhere (dB)"] != gains.loc[tiles, "elsewhere (dB)"]  # exact in deepinv's row: nan
    assert region_gains(rows, 64).empty
    rows = rows[rows["impl"] != "distinv-crop"]
    table = tradeoff_table(rows)
    # deepinv at 32 first (60 dB, 3.0 s, work 1.5); distinv's fastest setting at >= 60 dB is overlap 16 (62 dB, 2.2 s)
    assert table[["tiler", "overlap"]].values.tolist() == [["deepinv", 32], ["distinv", 16]]
    assert table["speedup"].tolist() == pytest.approx([1.0, 3.0 / 2.2])
    assert table["work ratio"].tolist() == pytest.approx([1.0, 1.5 / 1.25])
    best = best_tradeoff([(("sweep", 256, 2), rows)])
    assert (best["tiler"], best["overlap"], best["speedup"]) == ("distinv", 16, pytest.approx(3.0 / 2.2))
    assert best["reference_agreement_db"] == 60.0 and best["agreement_db"] == 62.0
    assert best_tradeoff([(("sweep", 256, 2), rows)], "deepinv", 64)["tiler"] == "none"


def test_per_axis_overlaps_are_not_sweeps(tmp_path):
    rows = [_row("distinv", 32, 1.0, 70.0), dict(_row("distinv-slab", None, 0.9, 80.0), overlap=[32, 0])]
    (tmp_path / "slab.json").write_text(json.dumps({"results": rows}))
    runs = load_prior_runs(tmp_path)
    assert sorted(runs["overlap"].astype(str)) == ["32", "32x0"]
    assert overlap_sweeps(runs) == []


def test_memory_growth_in_slab_shares_and_the_network_layout(tmp_path):
    def row(impl, size, peaks_mib):
        return dict(_row(impl, 32, 1.0, 60.0), size=size, channels=3, peak_bytes_per_rank=[p * 2 ** 20 for p in peaks_mib])

    document = {"args": {"channels_last": True}, "provenance": {}, "results": [
        row("distinv-sharded", 1024, [500, 510]), row("deepinv", 1024, [520, 520]),
        row("distinv-sharded", 2048, [527, 531]), row("deepinv", 2048, [700, 610]),
        dict(_row("untiled", None, 4.0, math.inf, ranks=1), size=2048)]}
    (tmp_path / "memory.json").write_text(json.dumps(document))
    runs = load_prior_runs(tmp_path)
    assert file_summary(runs)["network"].tolist() == ["channels-last"]
    # one rank's share of a 3-channel float32 signal grows by 3 * 4 * (2048² - 1024²) / 2 bytes = 18 MiB
    growth = memory_growth(runs).set_index(["ranks", "tiler"])
    assert growth.loc[(2, "distinv-sharded"), ["from", "to"]].tolist() == [1024, 2048]
    assert growth["slab share growth (MiB)"].tolist() == pytest.approx([18.0, 18.0])
    # per rank: sharded +27 and +21 MiB (1.5 and 1.17 slab shares), deepinv +180 and +90 MiB (10 and 5)
    assert growth.loc[(2, "distinv-sharded"), ["peak growth min (MiB)", "peak growth max (MiB)"]].tolist() == [21, 27]
    assert growth.loc[(2, "distinv-sharded"), ["slab shares min", "slab shares max"]].tolist() == pytest.approx(
        [21 / 18, 27 / 18])
    assert growth.loc[(2, "deepinv"), ["slab shares min", "slab shares max"]].tolist() == pytest.approx([5.0, 10.0])
    assert memory_growth(runs[runs["size"] == 1024]).empty
    four = runs[runs["ranks"] == 2].assign(ranks=4)
    four["peak_mib_per_rank"] = [[2 * v for v in peaks] for peaks in four["peak_mib_per_rank"]]
    both = memory_growth(pd.concat([runs, four], ignore_index=True)).set_index(["ranks", "tiler"])
    assert both.loc[(4, "distinv-sharded"), "slab share growth (MiB)"] == pytest.approx(9.0)  # the share halves
    assert both.loc[(4, "distinv-sharded"), ["peak growth min (MiB)", "peak growth max (MiB)"]].tolist() == [42, 54]
    assert slab_share_range(both.reset_index(), "distinv-sharded") == pytest.approx({"low": 21 / 18, "high": 54 / 9})


def test_network_layout_compares_files_with_equal_settings_only(tmp_path):
    def document(channels_last, recorded, medians, overlap=32):
        args = {"sizes": [256], "overlap": [overlap], "channels_last": channels_last, "out": f"{recorded}.json"}
        return {"args": args, "provenance": {"recorded_at": recorded},
                "results": [_row("untiled", None, medians[0], math.inf, ranks=1), _row("distinv", overlap, medians[1], 60.0)]}

    files = {"old": document(False, "2026-11-27T01:00", [9.0, 9.0]), "nchw": document(False, "2026-11-27T02:00", [4.0, 3.0]),
             "last": document(True, "2026-11-27T03:00", [2.0, 2.4]),
             "other": document(True, "2026-11-27T04:00", [1.0, 1.0], overlap=16)}  # no NCHW twin
    for name, data in files.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
    table = network_layout_speedups(load_prior_runs(tmp_path))
    # "last" against the latest NCHW file with its settings ("nchw", not "old"); "other" has no NCHW twin
    assert table[["channels-last file", "NCHW file", "tiler", "cases"]].values.tolist() == [
        ["last", "nchw", "untiled", 1], ["last", "nchw", "distinv", 1]]
    assert table["speedup min"].tolist() == pytest.approx([4.0 / 2.0, 3.0 / 2.4])
    assert table["speedup max"].tolist() == table["speedup min"].tolist()
    (tmp_path / "last.json").unlink()
    assert network_layout_speedups(load_prior_runs(tmp_path)).empty


def test_paired_speedups_pair_the_rounds_of_one_file(tmp_path):
    def row(impl, ranks, rounds, overlap=32, **fields):
        times = [t for median in rounds for t in (0.99 * median, 1.01 * median)]  # 2 repeats, 2 % apart
        return dict(_row(impl, overlap, sorted(rounds)[1], 60.0, ranks=ranks), round_medians_s=rounds, times_s=times,
                    **fields)

    document = {"args": {"rounds": 3}, "results": [
        row("untiled", 1, [6.0, 9.0, 6.6], overlap=None), row("deepinv", 2, [3.0, 4.5, 3.3]),
        row("distinv", 2, [2.0, 3.0, 3.3], tile_work_multiplier=1.25), row("distinv", 1, [4.0, 6.0, 4.4])]}
    (tmp_path / "rounds.json").write_text(json.dumps(document))
    (tmp_path / "plain.json").write_text(json.dumps({"results": [_row("distinv", 32, 1.0, 60.0)]}))
    runs = load_prior_runs(tmp_path)
    table = paired_speedups(runs[runs["source"] == "rounds"]).set_index(["tiler", "ranks"])
    # paired per round: deepinv / distinv = 1.5, 1.5, 1.0; untiled / distinv = 3, 3, 2
    assert table.loc[("distinv", 2), "vs deepinv"] == "1.50× (1.00–1.50)"
    assert table.loc[("distinv", 2), "vs untiled"] == "3.00× (2.00–3.00)"
    assert table.loc[("distinv", 2), "work ratio"] == "1.20×"  # deepinv's work multiplier 1.5 over 1.25
    assert table.loc[("distinv", 1), "vs deepinv"] == table.loc[("distinv", 1), "work ratio"] == "–"  # no deepinv on 1 rank
    assert table.loc[("deepinv", 2), "vs deepinv"] == "–" and table.loc[("deepinv", 2), "vs untiled"] == "2.00× (2.00–2.00)"
    assert set(table["rounds"]) == {3} and table.loc[("distinv", 2), "overlap"] == 32
    assert paired_speedups(runs[runs["source"] == "plain"]).empty  # one round: nothing is paired
    by_file = paired_speedups_by_file(runs)
    assert set(by_file["file"]) == {"rounds"} and len(by_file) == 3 and by_file.columns[0] == "file"
    # the cases moved by 50 to 65 % between rounds (6.0 to 9.0 s, 2.0 to 3.3 s...), by 2 % between repeats
    drift = round_drift(runs[runs["source"] == "rounds"])
    assert (drift["cases"], drift["rounds"]) == (4, 3)
    assert drift["between_max"] == pytest.approx(3.3 / 2.0 - 1) and drift["between_median"] == pytest.approx(0.5)
    assert drift["within_max"] == drift["within_median"] == pytest.approx(1.01 / 0.99 - 1)
    assert round_drift(runs[runs["source"] == "plain"])["cases"] == 0
    # every tiled row spent 90 % of its median in the network (the untiled row is left out)
    assert network_share(runs[runs["source"] == "rounds"]) == pytest.approx({"median": 0.9, "low": 0.9, "high": 0.9})
    summary = file_summary(runs).set_index("file")
    assert summary.loc["rounds", "rounds"] == 3
    assert summary.loc["rounds", "drift between rounds (max %)"] == pytest.approx(65)
