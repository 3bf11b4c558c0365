"""Results store: atomic per-run files, resume markers, survival of a killed writer, locks shared by processes."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from distinv.bench.config import BenchConfig, point_id
from distinv.bench.runner import run_config
from distinv.bench.store import ResultsStore, load_results
import bench_fake_use_case


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


# ---------------------------------------------------------------------------------------------- locks


def _lock_file(store, run_id, **info):
    """Write a lock as another process would have left it."""
    store.root.mkdir(parents=True, exist_ok=True)
    path = store.root / f"{run_id}.lock"
    path.write_text(json.dumps(info))
    return path


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_lock_is_exclusive_holds_who_and_when_and_is_released(tmp_path):
    store = ResultsStore(tmp_path)
    lock = store.try_lock("a")
    assert store.try_lock("a") is None
    holder = store.lock_holder("a")
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    assert time.time() - 5 < holder["started"] <= time.time() and holder["stale"] is None
    lock.release()
    lock.release()  # idempotent
    assert store.lock_holder("a") is None and not (tmp_path / "a.lock").exists()
    with store.try_lock("a"):
        assert (tmp_path / "a.lock").exists()
    assert not (tmp_path / "a.lock").exists()
    assert store.run_ids() == []  # locks are not runs


def test_a_lock_whose_holder_died_on_this_host_is_broken(tmp_path):
    store = ResultsStore(tmp_path)
    _lock_file(store, "a", pid=_dead_pid(), host=socket.gethostname(), started=time.time())
    assert store.lock_holder("a")["stale"].endswith("on this host, is gone")
    lock = store.try_lock("a")
    assert lock is not None and store.lock_holder("a")["pid"] == os.getpid()


def test_a_reused_pid_does_not_keep_a_lock(tmp_path):
    store = ResultsStore(tmp_path)
    _lock_file(store, "a", pid=os.getpid(), host=socket.gethostname(), started=time.time(),
               process_started=psutil.Process().create_time() - 3600)  # our pid, but another process's
    assert store.try_lock("a") is not None


def test_a_live_holder_keeps_its_lock_until_the_lock_is_too_old(tmp_path):
    _lock_file(ResultsStore(tmp_path), "mine", pid=os.getpid(), host=socket.gethostname(), started=time.time(),
               process_started=psutil.Process().create_time())
    _lock_file(ResultsStore(tmp_path), "far", pid=1, host="another-host", started=time.time() - 7200)
    store = ResultsStore(tmp_path, lock_max_age_s=3 * 3600)
    assert store.try_lock("mine") is None and store.try_lock("far") is None  # cannot tell: wait
    store = ResultsStore(tmp_path, lock_max_age_s=3600)
    assert store.lock_holder("far")["stale"].startswith("older than lock_max_age_s=3600 s")
    assert store.try_lock("far") is not None


def test_an_empty_lock_is_stale_only_once_its_writer_cannot_still_be_writing(tmp_path):
    store = ResultsStore(tmp_path)
    path = _lock_file(store, "a")
    path.write_text("")
    assert store.try_lock("a") is None
    old = time.time() - 120
    os.utime(path, (old, old))
    assert store.try_lock("a") is not None


def test_a_lock_replaced_meanwhile_is_not_broken(tmp_path):
    from distinv.bench.store import _break_lock, _read_lock

    store = ResultsStore(tmp_path)
    path = _lock_file(store, "a", pid=_dead_pid(), host=socket.gethostname(), started=time.time())
    judged = _read_lock(path)  # judged stale by one process ...
    path.unlink()
    fresh = store.try_lock("a")  # ... but broken and claimed by another first
    assert not _break_lock(path, judged)
    assert store.lock_holder("a")["token"] == fresh.info["token"]


def test_release_leaves_a_lock_that_is_no_longer_its_own(tmp_path):
    store = ResultsStore(tmp_path)
    lock = store.try_lock("a")
    (tmp_path / "a.lock").unlink()  # broken as stale meanwhile ...
    other = store.try_lock("a")  # ... and claimed by another process
    lock.release()
    assert store.lock_holder("a")["token"] == other.info["token"]


@pytest.mark.parametrize("age", [0, -1, "1h", True])
def test_bad_lock_max_age(tmp_path, age):
    with pytest.raises(ValueError, match=f"lock_max_age_s must be a positive number of seconds, got {age!r}"):
        ResultsStore(tmp_path, lock_max_age_s=age)


# ----------------------------------------------------------------------------- runs under concurrency

SLEEPY = {"use_case": "bench_test_sleepy", "iterations": 3, "device": "cpu", "nprocs": 1}

GRID_RUNNER = textwrap.dedent("""
    import json, os, sys, time
    sys.path.insert(0, {tests!r})
    import bench_fake_use_case
    from distinv.bench.config import BenchConfig
    from distinv.bench.runner import run_config
    config = BenchConfig.from_dict(json.loads(sys.argv[1]))
    open(sys.argv[2] + f".ready.{{os.getpid()}}", "w").close()
    while not os.path.exists(sys.argv[2]):  # start together, once both are ready
        time.sleep(0.01)
    summary = run_config(config, verbose=False)
    print(json.dumps({{"pid": os.getpid(), "ran": summary.ran, "busy": summary.busy, "skipped": summary.skipped,
                      "failed": summary.failed}}))
""").format(tests=str(Path(__file__).parent))


def _grid(root, sizes, sleep_s):
    return {"name": "concurrent", "results_dir": str(root), "timeout_s": 60,
            "fixed": {**SLEEPY, "sleep_s": sleep_s}, "grid": {"size": list(sizes)}}


def test_two_processes_filling_one_store_run_every_point_exactly_once(tmp_path):
    root, go = tmp_path / "store", tmp_path / "go"
    grid = _grid(root, range(1, 13), 0.2)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", GRID_RUNNER, json.dumps(grid), str(go)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("go.ready.*"))) < 2:
        assert all(proc.poll() is None for proc in procs) and time.monotonic() < deadline, "a runner did not start"
        time.sleep(0.05)
    go.touch()
    outputs = [proc.communicate(timeout=240) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], [err[-2000:] for _, err in outputs]
    summaries = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    everything = {point_id(p) for p in BenchConfig.from_dict(grid).points()}
    first, second = (set(s["ran"]) for s in summaries)
    assert first | second == everything and not first & second  # each point ran once, none lost
    assert first and second  # they really ran side by side
    for mine, theirs in ((summaries[0], second), (summaries[1], first)):  # what one left, the other ran
        assert set(mine["busy"]) | set(mine["skipped"]) <= theirs and not mine["failed"]
    frame = ResultsStore(root).load()
    assert frame.groupby("run_id").size().to_dict() == {run_id: 3 for run_id in everything}  # whole files
    ran_by = {run_id: s["pid"] for s in summaries for run_id in s["ran"]}
    assert frame.groupby("run_id")["runner_pid"].unique().map(list).to_dict() == {k: [v] for k, v in ran_by.items()}
    assert sorted(p.name for p in root.iterdir() if not p.name.endswith(".csv")) == []  # no lock, no temporary


def test_a_lock_left_by_a_killed_run_is_recovered(tmp_path, monkeypatch):
    root, go = tmp_path / "store", tmp_path / "go"
    grid = BenchConfig.from_dict(_grid(root, [5], 600))  # a point that holds its lock for long
    (run_id,) = [point_id(p) for p in grid.points()]
    go.touch()
    proc = subprocess.Popen([sys.executable, "-c", GRID_RUNNER, json.dumps(grid.to_dict()), str(go)])
    try:
        deadline = time.monotonic() + 120
        while not (root / f"{run_id}.lock").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the run did not start"
            time.sleep(0.05)
        assert run_config(grid, verbose=False).busy == [run_id]  # held by a live process: left to it
    finally:
        proc.kill()
        proc.wait()
    store = ResultsStore(root)
    assert store.lock_holder(run_id)["stale"] == f"its holder, pid {proc.pid} on this host, is gone"
    assert store.run_ids() == []
    monkeypatch.setattr(bench_fake_use_case, "SLEEP_OVERRIDE_S", 0.0)  # the same point, quick this time
    summary = run_config(grid, verbose=False)
    assert summary.ran == [run_id] and store.is_done(run_id) and store.lock_holder(run_id) is None


def test_a_failed_or_interrupted_point_releases_its_lock(tmp_path, monkeypatch):
    from distinv.bench import runner

    grid = BenchConfig.from_dict(_grid(tmp_path, [1, 2], 0.0))
    first, second = (point_id(p) for p in grid.points())
    calls = []

    def failing_then_interrupted(params, timeout_s=None):
        calls.append(params["size"])
        if len(calls) == 1:
            raise RuntimeError("deliberate failure")
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_point", failing_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_config(grid, verbose=False)
    store = ResultsStore(tmp_path)
    assert calls == [1, 2] and store.status(first) == "error" and store.status(second) is None
    assert store.lock_holder(first) is None and store.lock_holder(second) is None
