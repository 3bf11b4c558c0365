"""Results store: atomic per-run files, resume markers, and survival of a killed writer."""

import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

from distinv.bench.store import ResultsStore, load_results


def _rows(n, status="ok", value=1.0):
    return [{"iteration": i, "psnr": value, "status": status} for i in range(1, n + 1)]


def test_write_then_load_round_trips_rows_and_ranks(tmp_path):
    store = ResultsStore(tmp_path)
    store.write_run("a", _rows(3), ranks=[{"rank": 0, "peak_mem_bytes": 10}, {"rank": 1, "peak_mem_bytes": 12}])
    store.write_run("b", [{"status": "error", "error": "boom"}])
    frame = store.load()
    assert sorted(frame["run_id"].unique()) == ["a", "b"]
    assert len(frame[frame.run_id == "a"]) == 3
    assert store.status("a") == "ok" and store.status("b") == "error" and store.status("c") is None
    assert store.is_done("a") and not store.is_done("b")
    assert store.load_ranks()["peak_mem_bytes"].tolist() == [10, 12]


def test_rewriting_a_run_replaces_it(tmp_path):
    store = ResultsStore(tmp_path)
    store.write_run("a", [{"status": "error", "error": "first"}])
    store.write_run("a", _rows(2, value=7.0))
    frame = store.load()
    assert frame["psnr"].tolist() == [7.0, 7.0] and store.is_done("a")


def test_a_write_that_dies_midway_leaves_earlier_rows_intact(tmp_path, monkeypatch):
    store = ResultsStore(tmp_path)
    store.write_run("a", _rows(2, value=1.0))

    def half_then_die(self, handle, **kwargs):
        handle.write("iteration,psnr,status\n1,")
        handle.flush()
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_die)
    with pytest.raises(KeyboardInterrupt):
        store.write_run("a", _rows(2, value=99.0))
    with pytest.raises(KeyboardInterrupt):
        store.write_run("b", _rows(2, value=99.0))
    monkeypatch.undo()
    assert store.load()["psnr"].tolist() == [1.0, 1.0]
    assert store.run_ids() == ["a"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


WRITER = textwrap.dedent("""
    import sys
    from distinv.bench.store import ResultsStore
    store = ResultsStore(sys.argv[1])
    rows = [{"iteration": i, "psnr": float(i), "status": "ok", "pad": "x" * 2000} for i in range(1, 401)]
    k = 0
    while True:
        store.write_run(f"run{k:05d}", rows, ranks=[{"rank": 0}])
        print(k, flush=True)
        k += 1
""")


def test_a_really_killed_writer_leaves_only_complete_runs(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(3):  # let a few runs land, then kill while the next is being written
            proc.stdout.readline()
        time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    store = ResultsStore(tmp_path)
    frame = store.load()
    assert len(store.run_ids()) >= 3
    assert frame.groupby("run_id").size().eq(400).all()
    assert (frame["status"] == "ok").all()


def test_load_results_tags_sources_and_handles_missing_folders(tmp_path):
    ResultsStore(tmp_path / "cpu").write_run("a", _rows(1))
    ResultsStore(tmp_path / "h100").write_run("b", _rows(2))
    frame = load_results({"here": tmp_path / "cpu", "gpu": tmp_path / "h100", "none": tmp_path / "nope"})
    assert frame.groupby("source").size().to_dict() == {"gpu": 2, "here": 1}
    assert set(load_results([tmp_path / "cpu"])["source"]) == {"cpu"}


@pytest.mark.parametrize("run_id", ["", "a/b", ".hidden"])
def test_bad_run_ids_are_refused(tmp_path, run_id):
    with pytest.raises(ValueError, match="run_id must be a non-empty file name"):
        ResultsStore(tmp_path).write_run(run_id, _rows(1))


def test_rows_without_status_are_refused(tmp_path):
    with pytest.raises(ValueError, match="every row needs a 'status'"):
        ResultsStore(tmp_path).write_run("a", [{"iteration": 1}])


def test_identifiers_made_of_digits_stay_text(tmp_path):
    store = ResultsStore(tmp_path)
    store.write_run("012345678901", [{"iteration": 1, "status": "ok", "commit": "0123456789", "error": ""}],
                    ranks=[{"rank": 0}])
    frame = store.load()
    assert frame["run_id"].tolist() == ["012345678901"] and frame["commit"].tolist() == ["0123456789"]
    assert store.load_ranks()["run_id"].tolist() == ["012345678901"]
