"""The schedule benchmark at a tiny size: the three tilers in the same ranks, every tile run once, same output."""

import json
import statistics

import pytest

from distinv.bench.studies import schedule


def test_every_tiler_runs_every_tile_once_and_the_schedules_agree(tmp_path, capsys):
    out = tmp_path / "schedule.json"
    argv = ["--size", "128", "--patch", "32", "--overlap", "8", "--calls", "2", "--contend", "none", "1",
            "--out", str(out)]
    assert schedule.main(argv) == 0
    document = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == document
    assert [c["contended_rank"] for c in document["conditions"]] == [None, 1]
    for condition in document["conditions"]:
        rows = {row["tiler"]: row for row in condition["rows"]}
        assert list(rows) == list(schedule.TILERS) and condition["ranks"] == 2
        # 4 x 4 tiles: contiguous halves of equal work (distinv), dealt round-robin (deepinv), claimed (dynamic)
        assert rows["distinv"]["tiles_per_rank"] == [8, 8] and rows["deepinv"]["tiles_per_rank"] == [8, 8]
        assert sum(rows["distinv-dynamic"]["tiles_per_rank"]) == 16
        assert all(len(row["times_s"]) == 2 for row in rows.values())
        ratios = schedule.paired_ratio(condition, "deepinv", "distinv")
        assert ratios == [a / b for a, b in zip(rows["deepinv"]["times_s"], rows["distinv"]["times_s"])]
        # the same tiles summed in another order: equal to float rounding
        assert condition["max_abs_difference_static_dynamic"] < 1e-5
    table = schedule.schedule_table(document, "f")
    assert table["condition"].tolist() == ["balanced", "rank 1 shares its core"]
    assert table["distinv (s)"].tolist() == [c["rows"][0]["median_s"] for c in document["conditions"]]
    assert table["dynamic tiles per rank"].tolist()[0] == "/".join(
        f"{t:g}" for t in document["conditions"][0]["rows"][1]["tiles_per_rank"])
    speedups = schedule.dynamic_speedups([document])
    static_over_dynamic = [statistics.median(schedule.paired_ratio(c, "distinv", "distinv-dynamic"))
                           for c in document["conditions"]]
    assert (speedups["balanced_low"], speedups["contended_high"]) == tuple(static_over_dynamic)
    figure = schedule.schedule_figure(document)
    assert [trace.name for trace in figure.data] == list(schedule.TILERS)
    assert list(figure.data[0].x) == ["2 balanced ranks", "busy process on rank 1's core"]
    with pytest.raises(SystemExit):
        schedule.main(argv)  # refuses to overwrite without --force


@pytest.mark.parametrize("argv", [["--nprocs", "1"], ["--contend", "2"], ["--contend", "first"],
                                  ["--patch", "32", "--overlap", "32"], ["--calls", "0"]])
def test_bad_arguments_are_refused(argv, capsys):
    with pytest.raises(SystemExit):
        schedule.parse_args(argv)
    assert "--" in capsys.readouterr().err.splitlines()[-1]


def test_channels_last_network_for_every_tiler(capsys):
    argv = ["--size", "64", "--patch", "32", "--overlap", "8", "--calls", "1", "--contend", "none", "--channels-last"]
    assert schedule.main(argv) == 0
    document = json.loads(capsys.readouterr().out)
    (condition,) = document["conditions"]
    assert document["args"]["channels_last"] is True and condition["max_abs_difference_static_dynamic"] < 1e-5
    tiles = {row["tiler"]: row["tiles_per_rank"] for row in condition["rows"]}
    assert tiles["distinv"] == tiles["deepinv"] == [2, 2] and sum(tiles["distinv-dynamic"]) == 4
