"""The schedule benchmark at a tiny size: both schedules in the same ranks, every tile run once, same output."""

import json

import pytest

from distinv.bench import schedule


def test_both_schedules_run_every_tile_once_and_agree(tmp_path, capsys):
    out = tmp_path / "schedule.json"
    argv = ["--size", "128", "--patch", "32", "--overlap", "8", "--calls", "2", "--contend", "none", "1",
            "--out", str(out)]
    assert schedule.main(argv) == 0
    document = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == document
    assert [c["contended_rank"] for c in document["conditions"]] == [None, 1]
    for condition in document["conditions"]:
        rows = {row["schedule"]: row for row in condition["rows"]}
        assert set(rows) == {"static", "dynamic"} and condition["ranks"] == 2
        assert rows["static"]["tiles_per_rank"] == [8, 8]  # 4 x 4 tiles, contiguous halves of equal work
        assert sum(rows["dynamic"]["tiles_per_rank"]) == 16
        assert all(len(row["times_s"]) == 2 for row in rows.values())
        assert len(condition["paired_static_over_dynamic"]) == 2
        # the same tiles summed in another order: equal to float rounding
        assert condition["max_abs_difference"] < 1e-5
    assert schedule.summary_sentence(document).startswith("With 2 balanced ranks: static ")
    with pytest.raises(SystemExit):
        schedule.main(argv)  # refuses to overwrite without --force


@pytest.mark.parametrize("argv", [["--nprocs", "1"], ["--contend", "2"], ["--contend", "first"],
                                  ["--patch", "32", "--overlap", "32"], ["--calls", "0"]])
def test_bad_arguments_are_refused(argv, capsys):
    with pytest.raises(SystemExit):
        schedule.parse_args(argv)
    assert "--" in capsys.readouterr().err.splitlines()[-1]
