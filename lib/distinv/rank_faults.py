"""Why a launch failed, in words: the errors :func:`distinv.launch` raises and how it tells the cause.

A rank fails by raising (its traceback travels to the launcher), by dying without a result (a signal,
an exit, a crash in native code: the launcher reads its exit code and the end of its stderr), or by
still running at the launch's timeout (a stack dump tells where). When one rank fails, the others
often fail after it only because they lost a peer (gloo's "Connection closed by peer"): the first
rank that failed on its own is the cause, the others its echoes. "Out of memory" is said only when it
is known: a ``MemoryError``, an allocator's refusal, or the memory cgroup's out-of-memory kill count
rising during the launch.

>>> failures = [RankFailure(0, "RuntimeError", "", "RuntimeError: Connection closed by peer", 0, True),
...             death_failure(1, -9, True, "", "forkserver", None, None, 1)]
>>> error = primary_error(failures, finished=[], nranks=2)
>>> error.rank, error.cause
(1, 'killed by signal SIGKILL, sent by another process or by the kernel')
"""

from __future__ import annotations

import os
import re
import signal
import sys
from dataclasses import dataclass

__all__ = ["RankError", "LaunchTimeout", "RankFailure", "EXIT_MAIN_REENTERED", "main_guard_advice",
           "exception_cause", "failure_from_exception", "death_failure", "primary_error", "oom_kill_count",
           "main_thread_stack"]

#: exit code of a rank whose start-up import of the main module called launch again (EX_CONFIG)
EXIT_MAIN_REENTERED = 78
_TAIL_CHARS = 4000
_STACK_FRAMES = 10
#: what a rank's error says when it only lost a peer that failed first (gloo, NCCL)
_PEER_LOST = ("closed by peer", "reset by peer", "broken pipe", "remote process exited", "connection refused")
_CRASH_SIGNALS = tuple(getattr(signal, name) for name in ("SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE", "SIGABRT")
                       if hasattr(signal, name))
_THREAD_HEADER = re.compile(r"^(?:Current thread|Thread) 0x[0-9a-f]+ .*$", re.MULTILINE)


class RankError(RuntimeError):
    """A rank failed: an exception raised on it (re-raised in the caller with the rank's traceback), or
    the rank died without a result (``exc_type == "ProcessExit"``, the tail of its stderr instead).

    :param int rank: the rank that failed first on its own.
    :param str remote_traceback: the rank's traceback, or the end of its stderr.
    :param str exc_type: the exception's type name, or ``"ProcessExit"``.
    :param str cause: what happened, in words (``"killed by signal SIGKILL ..."``, ``"out of memory ..."``).
    :param dict others: ``{rank: one line}`` for the ranks that failed after it (often as its echo).
    :param list finished: ranks that had already returned.
    """

    def __init__(self, rank: int, remote_traceback: str, exc_type: str = "Exception", cause: str = "",
                 others: dict[int, str] | None = None, finished: list[int] | None = None):
        self.rank = rank
        self.remote_traceback = remote_traceback
        self.exc_type = exc_type
        self.cause = cause
        self.others = dict(others or {})
        self.finished = list(finished or [])
        head = f"rank {rank} failed with {exc_type}" + (f" ({cause})" if cause else "")
        lines = [f"{head}:", remote_traceback.rstrip("\n")]
        if self.finished:
            lines.append(f"ranks that had already returned: {', '.join(map(str, self.finished))}")
        lines += [f"then rank {other}: {summary}" for other, summary in sorted(self.others.items())]
        super().__init__("\n".join(lines) + "\n")

    def __reduce__(self):  # picklable (a grid runner in another process may hand it on)
        return type(self), (self.rank, self.remote_traceback, self.exc_type, self.cause, self.others, self.finished)


class LaunchTimeout(TimeoutError):
    """Ranks still running when the launch timeout expired; ``stacks`` tells where each of them was.

    :param float timeout: the launch's timeout in seconds.
    :param list ranks: the ranks still running.
    :param dict stacks: ``{rank: frames}``, the Python stack of each (most recent call first).
    :param list finished: ranks that had already returned.
    """

    def __init__(self, timeout: float, ranks: list[int], stacks: dict[int, str] | None = None,
                 finished: list[int] | None = None):
        self.timeout = timeout
        self.ranks = ranks
        self.stacks = dict(stacks or {})
        self.finished = list(finished or [])
        names = ", ".join(str(r) for r in ranks)
        text = f"ranks still running after timeout={timeout:g} s: {names}; all ranks were stopped"
        if self.finished:
            text += f" (ranks that had already returned: {', '.join(map(str, self.finished))})"
        for rank, stack in sorted(self.stacks.items()):
            text += f"\nrank {rank} was at (most recent call first):\n{stack}"
        super().__init__(text)

    def __reduce__(self):
        return type(self), (self.timeout, self.ranks, self.stacks, self.finished)


@dataclass
class RankFailure:
    """One rank's failure, as the launcher saw it.

    :param int rank: the rank.
    :param str exc_type: the exception's type name, or ``"ProcessExit"``.
    :param str cause: what happened, in words (may be empty).
    :param str text: its traceback, or the end of its stderr.
    :param int order: when the launcher saw it, among the launch's failures.
    :param bool peer_lost: it only lost a peer that failed: an echo of another failure.
    """

    rank: int
    exc_type: str
    cause: str
    text: str
    order: int
    peer_lost: bool = False

    def summary(self) -> str:
        """One line: the type and the cause, or the traceback's last line."""
        last = next((line for line in reversed(self.text.strip().splitlines()) if line.strip()), "")
        what = self.cause or last.removeprefix(f"{self.exc_type}: ")
        return f"{self.exc_type}: {what}"[:300]


RankError.__module__ = LaunchTimeout.__module__ = "distinv"  # public as distinv.RankError, distinv.LaunchTimeout


def main_guard_advice(main: str, who: str) -> str:
    """What to do when importing the main module in a new process launched again.

    :param str main: the main module's file.
    :param str who: the process that imported it.
    """
    return (f"{main} called distinv.launch again while {who} imported it: multiprocessing's 'forkserver' and "
            f"'spawn' start methods import the main module in every new process, which reruns its top-level "
            f"code. Put the launch call (and the code that uses its result) under "
            f'`if __name__ == "__main__":` in {main}.')


def _is_out_of_memory(exc: BaseException) -> bool:
    text = str(exc)
    return (isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"
            or "can't allocate memory" in text or "CUDA out of memory" in text)


def exception_cause(exc: BaseException, stage: str, backend: str, memory_limit_bytes: int | None) -> str:
    """What a rank's exception means, in words, from where it happened (empty when the traceback says it).

    :param BaseException exc: the exception.
    :param str stage: ``"start"``, ``"init"`` (joining the process group), ``"fn"`` or ``"result"``.
    :param str backend: the process group's backend.
    :param int memory_limit_bytes: the rank's memory cap, or ``None``.

    >>> exception_cause(MemoryError(), "fn", "gloo", 2 ** 28)
    "out of memory: an allocation failed under the rank's memory cap (memory_limit_bytes=268435456)"
    >>> exception_cause(ValueError("bad"), "fn", "gloo", None)
    ''
    """
    if _is_out_of_memory(exc):
        if memory_limit_bytes:
            return (f"out of memory: an allocation failed under the rank's memory cap "
                    f"(memory_limit_bytes={memory_limit_bytes})")
        return "out of memory: an allocation failed"
    if stage == "init":
        return (f"while joining the process group (backend {backend!r}, "
                f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')})")
    if stage == "start":
        return "while starting, before joining the process group"
    return ""


def failure_from_exception(rank: int, text: str, exc_type: str, cause: str, order: int) -> RankFailure:
    """The failure of a rank that sent its exception.

    :param int rank: the rank.
    :param str text: its traceback.
    :param str exc_type: the exception's type name.
    :param str cause: :func:`exception_cause`'s words.
    :param int order: when the launcher saw it.
    """
    last = text.strip().splitlines()[-1] if text.strip() else ""
    return RankFailure(rank, exc_type, cause, text, order, _mentions_lost_peer(last))


def _mentions_lost_peer(text: str) -> bool:
    lowered = text.lower()
    return any(hint in lowered for hint in _PEER_LOST)


def death_failure(rank: int, exitcode: int | None, started: bool, tail: str, start_method: str,
                  memory_limit_bytes: int | None, oom_kills_before: int | None, order: int) -> RankFailure:
    """The failure of a rank that exited without a result or an error: why, from its exit code and stderr.

    :param int rank: the rank.
    :param int exitcode: the process's exit code (``-N``: killed by signal ``N``).
    :param bool started: whether the rank's own code had begun (else it died importing what it runs).
    :param str tail: the end of its stderr.
    :param str start_method: how it was started.
    :param int memory_limit_bytes: its memory cap, or ``None``.
    :param int oom_kills_before: :func:`oom_kill_count` when the launch began, or ``None``.
    :param int order: when the launcher saw it.

    >>> death_failure(1, -11, True, "Fatal Python error: Segmentation fault", "fork", None, None, 0).cause
    'killed by signal SIGSEGV: a crash in native code'
    """
    tail = tail.strip()
    text = f"its stderr ended with:\n{tail[-_TAIL_CHARS:]}" if tail else "(it wrote nothing on its stderr)"
    if not started:
        if exitcode == EXIT_MAIN_REENTERED:
            main = getattr(sys.modules.get("__main__"), "__file__", None) or "the main module"
            advice = main_guard_advice(main, f"the rank (started with {start_method!r})")
            return RankFailure(rank, "RuntimeError", "the main module launched again in the rank", advice, order)
        cause = f"it exited with code {exitcode} while starting, before running fn"
        text = ("its start-up error (importing the main module, or the module of fn or of its arguments, in "
                "the new process) is on the launcher's stderr")
        return RankFailure(rank, "ProcessExit", cause, text, order)
    if exitcode is not None and exitcode < 0:
        cause = _signal_cause(-exitcode, oom_kills_before)
    else:
        cause = f"it exited with code {exitcode} before returning (sys.exit or os._exit in fn, or an abort)"
    if memory_limit_bytes and re.search(r"bad_alloc|can't allocate memory|Cannot allocate memory", tail):
        cause = f"out of memory under the rank's memory cap (memory_limit_bytes={memory_limit_bytes}); {cause}"
    return RankFailure(rank, "ProcessExit", cause, text, order, _mentions_lost_peer(tail))


def _signal_cause(number: int, oom_kills_before: int | None) -> str:
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    if number == getattr(signal, "SIGKILL", 9):
        oom_kills = oom_kill_count()
        if oom_kills_before is not None and oom_kills is not None and oom_kills > oom_kills_before:
            return (f"killed by the kernel's out-of-memory killer: SIGKILL, and the memory cgroup's oom_kill "
                    f"count rose from {oom_kills_before} to {oom_kills} during the launch")
        if oom_kills_before is not None and oom_kills is not None:
            return ("killed by signal SIGKILL from another process (kill -9, a job scheduler); the memory "
                    "cgroup recorded no out-of-memory kill")
        return "killed by signal SIGKILL, sent by another process or by the kernel"
    if number in _CRASH_SIGNALS:
        return f"killed by signal {name}: a crash in native code"
    return f"killed by signal {name}"


def oom_kill_count() -> int | None:
    """How many processes of this memory cgroup the out-of-memory killer stopped (cgroup v2 or v1), or
    ``None`` where the count cannot be read."""
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        try:
            with open(path) as handle:
                for line in handle:
                    name, _, value = line.partition(" ")
                    if name == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            continue
    return None


def primary_error(failures: list[RankFailure], finished: list[int], nranks: int) -> RankError:
    """The error to raise: the rank that failed on its own first is the cause, the others its echoes.

    :param list failures: every failure seen, in order.
    :param list finished: ranks that had returned.
    :param int nranks: the launch's rank count.
    """
    primary = min(failures, key=lambda f: (f.peer_lost, f.order))
    others = {f.rank: f.summary() for f in failures if f is not primary}
    cause = primary.cause
    if primary.peer_lost and not cause and len(finished) == nranks - 1:
        cause = ("left alone in a collective: every other rank had returned, so it waited for a collective that "
                 "they never called")
    return RankError(primary.rank, primary.text, primary.exc_type, cause, others, finished)


def main_thread_stack(dump: str, hidden: tuple[str, ...] = ()) -> str:
    """The main thread's frames in a faulthandler dump (its block comes last: the oldest thread).

    :param str dump: what ``faulthandler`` wrote.
    :param tuple hidden: frames whose line holds one of these strings are left out (the machinery that
        started the rank).

    >>> main_thread_stack('Current thread 0x01 (most recent call first):\\n  File "job.py", line 3 in wait\\n')
    '  File "job.py", line 3 in wait'
    """
    headers = list(_THREAD_HEADER.finditer(dump))
    if not headers:
        return ""
    frames = [line.strip() for line in dump[headers[-1].end():].splitlines() if line.strip().startswith("File ")]
    frames = [line for line in frames if not any(part in line for part in hidden)]
    return "\n".join("  " + line for line in frames[:_STACK_FRAMES])
