"""Rank faults end a launch with an error that names the rank and the cause, fast, with no rank left.

Each fault: a rank SIGKILLed inside a collective, a rank over its memory cap, a rank left alone in a
collective, ranks hung in a collective, a rank whose process group cannot start, a rank that dies
after saying why on stderr; and an interrupted launch.
"""

import importlib
import re
import resource
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from distinv import LaunchTimeout, RankError, launch
from live_children import no_children_left
import rank_functions as rf

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = importlib.import_module("distinv.launch")  # the module (``distinv.launch`` is the function)
FAST_S = 30.0


def _failure(fn, *args, **options):
    """Run a launch that must fail; return its exception and the seconds it took."""
    start = time.monotonic()
    with pytest.raises((RankError, LaunchTimeout)) as info:
        launch(fn, *args, nprocs=2, **{"timeout": 60, **options})
    return info.value, time.monotonic() - start


def test_a_rank_killed_in_a_collective_is_named_with_its_signal():
    error, seconds = _failure(rf.all_reduce_until_killed, 1)
    assert isinstance(error, RankError) and seconds < FAST_S
    assert error.rank == 1 and error.exc_type == "ProcessExit"
    assert "killed by signal SIGKILL" in error.cause and "out of memory" not in error.cause
    assert str(error).startswith("rank 1 failed with ProcessExit (killed by signal SIGKILL")
    assert set(error.others) <= {0}  # rank 0 lost its peer: at most an echo, never the cause
    assert no_children_left() == []


@pytest.mark.parametrize("kind, exc_type", [("torch", "RuntimeError"), ("python", "MemoryError")])
def test_a_rank_over_its_memory_cap_is_named_out_of_memory(kind, exc_type):
    error, seconds = _failure(rf.allocate_on_rank, 1, 1 << 30, kind, memory_limit_bytes=256 << 20)
    assert isinstance(error, RankError) and seconds < FAST_S
    assert error.rank == 1 and error.exc_type == exc_type
    assert error.cause == ("out of memory: an allocation failed under the rank's memory cap "
                           "(memory_limit_bytes=268435456)")
    assert "allocate_on_rank" in error.remote_traceback
    assert no_children_left() == []


def test_work_under_the_memory_cap_runs_and_the_cap_ends_with_the_call():
    assert launch(rf.allocate_on_rank, 1, 64 << 20, nprocs=2, memory_limit_bytes=256 << 20, timeout=60) == 64 << 20
    before = resource.getrlimit(resource.RLIMIT_AS)
    with pytest.raises(MemoryError):  # one rank runs in this process: capped during fn only
        launch(rf.allocate_on_rank, 0, 1 << 30, "python", nprocs=1, memory_limit_bytes=256 << 20)
    assert resource.getrlimit(resource.RLIMIT_AS) == before
    assert bytearray(300 << 20)  # the cap is gone


def test_an_error_that_is_not_about_memory_does_not_say_out_of_memory():
    error, _ = _failure(rf.fail_on_rank, 1, memory_limit_bytes=256 << 20)
    assert error.exc_type == "ValueError" and error.cause == "" and "out of memory" not in str(error)


def test_a_rank_left_alone_in_a_collective_is_named():
    error, seconds = _failure(rf.all_reduce_on_rank, 1)
    assert isinstance(error, RankError) and seconds < FAST_S
    assert error.rank == 1 and error.finished == [0]
    assert error.cause.startswith("left alone in a collective: every other rank had returned")
    assert "all_reduce" in error.remote_traceback
    assert no_children_left() == []


def test_ranks_hung_in_a_collective_time_out_with_where_each_was():
    error, seconds = _failure(rf.all_reduce_while_others_sleep, 1, timeout=3)
    assert isinstance(error, LaunchTimeout) and 3 <= seconds < FAST_S
    assert error.ranks == [0, 1]
    assert re.search(r"line \d+ in all_reduce$", error.stacks[1], re.MULTILINE)
    assert "in all_reduce_while_others_sleep" in error.stacks[1]
    assert error.stacks[0].splitlines()[0].endswith("in all_reduce_while_others_sleep")  # asleep there
    assert f"rank 1 was at (most recent call first):\n{error.stacks[1]}" in str(error)
    assert no_children_left() == []


def test_a_rank_whose_process_group_cannot_start_is_named(monkeypatch):
    monkeypatch.setitem(LAUNCH._RANK_ENV_FOR_TESTS, 1, {"GLOO_SOCKET_IFNAME": "distinv-no-such-if0"})
    error, seconds = _failure(rf.describe_rank)
    assert isinstance(error, RankError) and seconds < FAST_S
    assert error.rank == 1 and error.exc_type == "RuntimeError"
    assert error.cause.startswith("while joining the process group (backend 'gloo', 127.0.0.1:")
    assert "Unable to find address for: distinv-no-such-if0" in error.remote_traceback
    assert no_children_left() == []


@pytest.mark.parametrize("how, cause, stderr", [
    ("exit", "it exited with code 3 before returning", "rank 1 is about to die by exit"),
    ("segfault", "killed by signal SIGSEGV: a crash in native code", "in die_on_rank"),  # faulthandler's dump
])
def test_a_rank_that_dies_is_explained_by_the_end_of_its_stderr(how, cause, stderr):
    error, seconds = _failure(rf.die_on_rank, 1, how)
    assert isinstance(error, RankError) and seconds < FAST_S
    assert error.rank == 1 and error.exc_type == "ProcessExit" and error.cause.startswith(cause)
    assert error.remote_traceback.startswith("its stderr ended with:")
    assert "rank 1 is about to die by" in error.remote_traceback and stderr in error.remote_traceback
    assert no_children_left() == []


@pytest.mark.parametrize("value, error, match", [
    (0, ValueError, r"memory_limit_bytes must be None or an integer number of bytes >= 1048576, got 0"),
    (1.5e9, TypeError, r"memory_limit_bytes must be None or an integer .* got 1500000000.0 \(float\)"),
    ("1G", TypeError, r"memory_limit_bytes must be None or an integer .* got '1G' \(str\)"),
])
def test_bad_memory_limit(value, error, match):
    with pytest.raises(error, match=match):
        launch(rf.describe_rank, nprocs=2, memory_limit_bytes=value)


INTERRUPTED = textwrap.dedent("""
    import signal, sys
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even if our parent ignores SIGINT
    sys.path[:0] = [{tests!r}, {lib!r}]
    import distinv, rank_functions
    if __name__ == "__main__":
        try:
            distinv.launch(rank_functions.record_pid_and_wait, {folder!r}, nprocs=2, timeout=600)
        except KeyboardInterrupt:
            print("KeyboardInterrupt", flush=True)
""")


def test_an_interrupted_launch_stops_within_a_second_and_leaves_no_rank(tmp_path):
    script = tmp_path / "interrupted.py"
    script.write_text(INTERRUPTED.format(tests=str(ROOT / "tests"), lib=str(ROOT / "lib"), folder=str(tmp_path)))
    launcher = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while len(list(tmp_path.glob("rank*.pid"))) < 2:
            assert launcher.poll() is None and time.monotonic() < deadline, "the ranks did not start"
            time.sleep(0.1)
        pids = [int(p.read_text()) for p in tmp_path.glob("rank*.pid")]
        start = time.monotonic()
        launcher.send_signal(signal.SIGINT)
        assert select.select([launcher.stdout], [], [], 60)[0], "no output within 60 s of the interrupt"
        line = launcher.stdout.readline()  # printed once launch has stopped the ranks and re-raised
        seconds = time.monotonic() - start
        survivors = [pid for pid in pids if _alive(pid)]
        launcher.wait(timeout=60)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert line.strip() == "KeyboardInterrupt" and seconds < 1.0
    assert survivors == []


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_launch_errors_survive_pickling():
    """A grid runner or a pool may hand the error to another process."""
    import pickle

    error = RankError(1, "Traceback ...\nValueError: no", "ValueError", "", {0: "RuntimeError: lost peer"}, [2])
    timeout = LaunchTimeout(3.0, [0, 1], {1: '  File "job.py", line 3 in wait'}, [2])
    for original in (error, timeout):
        copy = pickle.loads(pickle.dumps(original))
        assert type(copy) is type(original) and str(copy) == str(original) and vars(copy) == vars(original)
    assert type(error).__module__ == "distinv"  # tracebacks name it distinv.RankError
