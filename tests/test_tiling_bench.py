"""The prior benchmark CLI at tiny sizes: every implementation runs, JSON is complete, --out is safe."""

import json
import statistics

import pytest

from distinv.bench.studies import prior


def test_cli_runs_every_implementation_and_writes_json(tmp_path, capsys):
    out = tmp_path / "prior.json"
    argv = ["--sizes", "64", "--ranks", "1", "2", "--repeats", "1", "--warmup", "0", "--patch", "32",
            "--overlap", "8", "--out", str(out)]
    assert prior.main(argv) == 0
    document = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == json.loads(json.dumps(document))
    rows = {(row["impl"], row["ranks"]): row for row in document["results"]}
    assert set(rows) == {(impl, ranks) for impl in prior.IMPLEMENTATIONS for ranks in (1, 2)} - {("untiled", 2)}
    for (impl, ranks), row in rows.items():
        assert len(row["peak_bytes_per_rank"]) == ranks and len(row["threads_per_rank"]) == ranks
        assert row["median_s"] > 0 and row["tile_work_multiplier"] >= 1
        # the network's share of the wall time is measured on every rank and never exceeds the wall time
        assert len(row["network_s_per_rank"]) == ranks and all(t > 0 for t in row["network_s_per_rank"])
        assert row["tiling_overhead_s"] == pytest.approx(row["median_s"] - max(row["network_s_per_rank"]))
        # (another rank's clock may start a little before rank 0's: barriers do not release all ranks at once)
        assert max(row["network_s_per_rank"]) <= 1.05 * row["median_s"] + 0.05
    # the same tiles in both layouts give the same output; distinv agrees with untiled far better than deepinv
    assert rows[("distinv-sharded", 2)]["agreement_psnr_db"] == pytest.approx(rows[("distinv", 1)]["agreement_psnr_db"],
                                                                              abs=1.0)
    assert rows[("distinv", 2)]["agreement_psnr_db"] > rows[("deepinv", 2)]["agreement_psnr_db"] + 10
    # where they differ: deepinv's reflect-padded border tiles; each row gives the three regions
    regions = {impl: rows[(impl, 2)]["agreement_regions_db"] for impl in ("distinv", "deepinv")}
    assert set(regions["distinv"]) == {"border", "seams", "elsewhere"}
    assert regions["distinv"]["border"] > regions["deepinv"]["border"] + 10
    assert "agreement_regions_db" not in rows[("untiled", 1)]
    assert any(r["site"] == "tiling.halo" for r in rows[("distinv-sharded", 2)]["comm_per_call"])
    # the dynamic schedule runs the same tiles, claimed from a shared counter
    assert rows[("distinv-dynamic", 2)]["agreement_psnr_db"] == pytest.approx(rows[("distinv", 2)]["agreement_psnr_db"],
                                                                              abs=1.0)
    assert any(r["site"] == "tiling.claim" for r in rows[("distinv-dynamic", 2)]["comm_per_call"])
    with pytest.raises(SystemExit):
        prior.main(argv)  # refuses to overwrite without --force
    assert prior.main(argv[:-2] + ["--impls", "distinv", "--ranks", "1", "--out", str(out), "--force"]) == 0


def test_gpu_settings_run_on_cpu(capsys):
    """The GPU run's code path (default DRUNet, color, bf16 autocast, channels_last, batches) at a tiny size."""
    argv = ["--model", "default", "--sizes", "64", "--ranks", "1", "--repeats", "1", "--warmup", "0",
            "--dtype", "bfloat16", "--channels-last", "--patch", "32", "--overlap", "8", "--max-batch-size", "8",
            "--impls", "untiled", "distinv"]
    assert prior.main(argv) == 0
    rows = json.loads(capsys.readouterr().out)["results"]
    assert [row["channels"] for row in rows] == [3, 3]
    assert all(row["dtype"] == "bfloat16" and row["agreement_psnr_db"] is not None for row in rows)


def test_rectangular_tiles_for_both_tilers(capsys):
    argv = ["--sizes", "64", "--ranks", "1", "--repeats", "1", "--warmup", "0", "--patch", "32", "16",
            "--overlap", "8", "--impls", "untiled", "distinv", "deepinv"]
    assert prior.main(argv) == 0
    rows = {row["impl"]: row for row in json.loads(capsys.readouterr().out)["results"]}
    assert rows["distinv"]["settings"]["patch"] == [32, 16] and rows["deepinv"]["settings"]["patch"] == [32, 16]
    # deepinv pads every window to patch + 2 overlap: 2 x 48 rows, 4 x 32 columns of a 64 x 64 signal
    assert rows["deepinv"]["tile_work_multiplier"] == pytest.approx((2 * 48 / 64) * (4 * 32 / 64))
    assert 1 < rows["distinv"]["tile_work_multiplier"] < rows["deepinv"]["tile_work_multiplier"]
    with pytest.raises(SystemExit):
        prior.main(["--patch", "32", "16", "8"])


def test_several_overlaps_in_one_run(capsys):
    argv = ["--sizes", "64", "--ranks", "1", "--repeats", "1", "--warmup", "0", "--patch", "32",
            "--overlap", "8", "16", "--impls", "untiled", "distinv", "deepinv"]
    assert prior.main(argv) == 0
    rows = json.loads(capsys.readouterr().out)["results"]
    assert sorted((row["impl"], row["overlap"]) for row in rows) == [
        ("deepinv", 8), ("deepinv", 16), ("distinv", 8), ("distinv", 16), ("untiled", None)]
    multiplier = {(row["impl"], row["overlap"]): row["tile_work_multiplier"] for row in rows}
    assert multiplier[("distinv", 8)] < multiplier[("distinv", 16)]
    assert multiplier[("deepinv", 8)] < multiplier[("deepinv", 16)]
    with pytest.raises(SystemExit):
        prior.main(["--overlap", "-1"])


def test_rounds_interleave_the_cases_and_keep_each_rounds_median(capfd):
    argv = ["--sizes", "48", "--ranks", "1", "--repeats", "2", "--warmup", "0", "--patch", "32", "--overlap", "8",
            "--impls", "untiled", "distinv", "deepinv", "--rounds", "2"]
    assert prior.main(argv) == 0
    captured = capfd.readouterr()
    rows = {row["impl"]: row for row in json.loads(captured.out)["results"]}
    for row in rows.values():
        times = row["times_s"]
        assert len(times) == 4 and row["median_s"] == pytest.approx(statistics.median(times))
        assert row["round_medians_s"] == pytest.approx([statistics.median(times[:2]), statistics.median(times[2:])])
    assert rows["distinv"]["agreement_psnr_db"] > rows["deepinv"]["agreement_psnr_db"]
    # every case runs once per round, the untiled reference first, the others' order rotated
    launches = [line.split()[1] + " " + line.split()[-1] for line in captured.err.splitlines()
                if line.startswith("[prior]")]
    assert launches == ["untiled 1/2", "distinv 1/2", "deepinv 1/2", "untiled 2/2", "deepinv 2/2", "distinv 2/2"]
    with pytest.raises(SystemExit):
        prior.main(["--rounds", "0"])
    with pytest.raises(ValueError, match="rounds must be an integer >= 1, got 0"):
        prior.run_benchmark([], rounds=0)
