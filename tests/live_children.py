"""The processes a test left behind: live descendants of this process, multiprocessing's helpers aside."""

import time

import psutil

_HELPERS = ("multiprocessing.forkserver", "multiprocessing.resource_tracker")


def live_children() -> list[str]:
    """``"pid: command line"`` of every live descendant that is not a long-lived multiprocessing helper."""
    live = []
    for proc in psutil.Process().children(recursive=True):
        try:
            cmdline = " ".join(proc.cmdline())
            if proc.status() != psutil.STATUS_ZOMBIE and not any(h in cmdline for h in _HELPERS):
                live.append(f"{proc.pid}: {cmdline}")
        except psutil.NoSuchProcess:
            pass
    return live


def no_children_left(wait_s: float = 2.0) -> list[str]:
    """The descendants still alive after ``wait_s`` seconds (an empty list when all are gone)."""
    deadline = time.monotonic() + wait_s
    while (left := live_children()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left
