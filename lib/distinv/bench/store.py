"""The results store: one tidy table (rows = run × iteration) kept as one CSV file per run.

Layout of a store folder::

    <root>/<run_id>.csv         rows = iterations of one run (params, metrics, provenance, status)
    <root>/<run_id>.ranks.csv   rows = ranks of that run (peak memory, bytes and seconds communicated)

    <root>/<run_id>.lock        while a process runs that point: its pid, host and start time

Each file is written atomically (:func:`distinv.files.write_atomically`), ranks file first: a run's
``.csv`` appears whole or not at all, so a killed run never corrupts earlier rows, and a run counts as
done only once its main file exists with ``status == "ok"``. A failed run is stored as one row with its
error; a later run of the same point replaces it. Loading concatenates the files into a
:class:`pandas.DataFrame`.

Several processes may fill one store at once (two jobs of a cluster array, two notebooks): a process
runs a point only while it holds the point's lock (:meth:`ResultsStore.try_lock`), a file created with
``O_CREAT | O_EXCL`` so that exactly one creator wins. A lock is stale, and is broken by the next
process that wants the point, when its holder is gone (same host, pid dead or reused) or when it is
older than ``lock_max_age_s`` (the only test for a holder on another host).

>>> import tempfile
>>> store = ResultsStore(tempfile.mkdtemp())
>>> with store.try_lock("abc") as lock:
...     store.try_lock("abc") is None  # held: another claim fails
...     store.write_run("abc", [{"iteration": 1, "psnr": 30.0, "status": "ok"}], ranks=[{"rank": 0}])
True
>>> store.is_done("abc"), len(store.load()), store.lock_holder("abc")
(True, 1, None)
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from distinv.files import write_atomically

__all__ = ["ResultsStore", "RunLock", "load_results", "STATUS_OK", "STATUS_ERROR", "DEFAULT_LOCK_MAX_AGE_S"]

STATUS_OK = "ok"
STATUS_ERROR = "error"
_RANKS_SUFFIX = ".ranks.csv"
_LOCK_SUFFIX = ".lock"
#: A lock older than this is stale whoever holds it (a point never runs this long).
DEFAULT_LOCK_MAX_AGE_S = 24 * 3600.0
#: A lock file without readable content older than this was left by a process that died creating it.
_UNREADABLE_LOCK_AGE_S = 60.0


class ResultsStore:
    """A folder of per-run CSV files, read back as one table, with a lock per run being written.

    :param str root: the folder (created when the first run is written).
    :param float lock_max_age_s: age in seconds after which a lock is stale even if its holder may live
        (on another host its liveness cannot be checked); ``> 0``.
    """

    def __init__(self, root: str | os.PathLike, lock_max_age_s: float = DEFAULT_LOCK_MAX_AGE_S):
        if isinstance(lock_max_age_s, bool) or not isinstance(lock_max_age_s, (int, float)) or not lock_max_age_s > 0:
            raise ValueError(f"lock_max_age_s must be a positive number of seconds, got {lock_max_age_s!r}")
        self.root = Path(root)
        self.lock_max_age_s = float(lock_max_age_s)

    def __repr__(self) -> str:
        return f"ResultsStore({str(self.root)!r})"

    # ------------------------------------------------------------------ locks
    def try_lock(self, run_id: str) -> "RunLock | None":
        """Claim a run: its lock, or ``None`` when a live holder has it. A stale lock is broken first.

        :param str run_id: the run's identity.
        :return: a :class:`RunLock` (release it, or use it as a context manager), or ``None``.
        """
        _check_run_id(run_id)
        self.root.mkdir(parents=True, exist_ok=True)
        path = self._lock_path(run_id)
        for _ in range(3):  # a broken stale lock may be claimed by another process first
            lock = RunLock._create(path)
            if lock is not None:
                return lock
            judged = _read_lock(path)
            if judged is None:  # released meanwhile: try again
                continue
            if self._stale_reason(judged) is None or not _break_lock(path, judged):
                return None
        return None

    def lock_holder(self, run_id: str) -> dict[str, Any] | None:
        """Who holds the run's lock: ``{"pid", "host", "started", ...}`` plus ``"stale"`` (why, or ``None``);
        ``None`` when the run is not locked.

        :param str run_id: the run's identity.
        """
        judged = _read_lock(self._lock_path(run_id))
        if judged is None:
            return None
        return {**judged["info"], "stale": self._stale_reason(judged)}

    def _lock_path(self, run_id: str) -> Path:
        return self.root / f"{run_id}{_LOCK_SUFFIX}"

    def _stale_reason(self, judged: dict[str, Any]) -> str | None:
        info, age = judged["info"], time.time() - judged["mtime"]
        if not info:
            return (f"unreadable lock {age:.0f} s old: its writer died creating it"
                    if age > _UNREADABLE_LOCK_AGE_S else None)
        age = time.time() - float(info.get("started", judged["mtime"]))
        if age > self.lock_max_age_s:
            return f"older than lock_max_age_s={self.lock_max_age_s:g} s ({age:.0f} s)"
        same_host = info.get("host") == socket.gethostname()
        if same_host and not _process_alive(info.get("pid"), info.get("process_started")):
            return f"its holder, pid {info.get('pid')} on this host, is gone"
        return None

    # ------------------------------------------------------------------ writing
    def write_run(self, run_id: str, rows: Iterable[Mapping], ranks: Iterable[Mapping] = ()) -> None:
        """Store (or replace) the rows of one run, atomically.

        :param str run_id: the run's identity (see :func:`distinv.bench.config.point_id`).
        :param list rows: one mapping per iteration (or one row for a failed run); each with a ``status``.
        :param list ranks: one mapping per rank.
        """
        _check_run_id(run_id)
        rows = [dict(row, run_id=run_id) for row in rows]
        if not rows:
            raise ValueError(f"run {run_id!r}: rows must hold at least one row")
        if any("status" not in row for row in rows):
            raise ValueError(f"run {run_id!r}: every row needs a 'status' ({STATUS_OK!r} or {STATUS_ERROR!r})")
        self.root.mkdir(parents=True, exist_ok=True)
        ranks = [dict(row, run_id=run_id) for row in ranks]
        if ranks:
            _atomic_write_csv(pd.DataFrame(ranks), self.root / f"{run_id}{_RANKS_SUFFIX}")
        _atomic_write_csv(pd.DataFrame(rows), self._path(run_id))

    # ------------------------------------------------------------------ reading
    def _path(self, run_id: str) -> Path:
        return self.root / f"{run_id}.csv"

    def run_ids(self) -> list[str]:
        """Identities of the stored runs (done or failed), sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name[:-4] for p in self.root.glob("*.csv")
                      if not p.name.endswith(_RANKS_SUFFIX) and not p.name.startswith("."))

    def stored_at(self, run_id: str) -> float | None:
        """When the run's file was last written (seconds since the epoch), or ``None`` when it is not stored.

        :param str run_id: the run's identity.
        """
        try:
            return self._path(run_id).stat().st_mtime
        except FileNotFoundError:
            return None

    def status(self, run_id: str) -> str | None:
        """``"ok"``, ``"error"``, or ``None`` when the run is not stored.

        :param str run_id: the run's identity.
        """
        path = self._path(run_id)
        if not path.is_file():
            return None
        return str(pd.read_csv(path, usecols=["status"], nrows=1)["status"].iloc[0])

    def is_done(self, run_id: str) -> bool:
        """Whether the run is stored and succeeded.

        :param str run_id: the run's identity.
        """
        return self.status(run_id) == STATUS_OK

    def load(self) -> pd.DataFrame:
        """All runs as one table, rows = run × iteration (failed runs: one row, ``status == "error"``)."""
        return _concat(self._path(run_id) for run_id in self.run_ids())

    def load_ranks(self) -> pd.DataFrame:
        """Per-rank figures of every stored run, rows = run × rank."""
        return _concat(p for p in (self.root / f"{r}{_RANKS_SUFFIX}" for r in self.run_ids()) if p.is_file())


class RunLock:
    """A claim on one run of a store, held from its creation to :meth:`release` (a context manager).

    The lock file holds JSON: ``pid``, ``host``, ``started`` (epoch seconds), ``process_started`` (the
    holder's start time, to tell a reused pid) and a random ``token`` that :meth:`release` checks, so a
    lock broken as stale and taken by another process is never removed by its former holder.
    """

    def __init__(self, path: Path, info: dict[str, Any]):
        self.path = path
        self.info = info

    @classmethod
    def _create(cls, path: Path) -> "RunLock | None":
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                "process_started": _process_start_time(os.getpid()), "token": secrets.token_hex(8)}
        # The content is written to a private file first and hard-linked to the lock's name (which fails if
        # the name exists): the lock appears with its content, so a holder killed while taking it never
        # leaves an empty lock that only ages out.
        draft = path.with_name(f".{path.name}.{info['token']}")
        try:
            handle = os.open(draft, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            try:
                os.write(handle, json.dumps(info).encode())
                os.fsync(handle)
            finally:
                os.close(handle)
            os.link(draft, path)
        except FileExistsError:
            return None
        finally:
            draft.unlink(missing_ok=True)
        return cls(path, info)

    def release(self) -> None:
        """Remove the lock if it is still this one (idempotent)."""
        judged = _read_lock(self.path)
        if judged is not None and judged["info"].get("token") == self.info["token"]:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"RunLock({str(self.path)!r}, pid={self.info['pid']})"


def _read_lock(path: Path) -> dict[str, Any] | None:
    """``{"info": content or {}, "mtime", "inode"}`` of a lock file, or ``None`` when there is none."""
    try:
        with open(path, "rb") as handle:
            stat = os.fstat(handle.fileno())
            raw = handle.read()
    except FileNotFoundError:
        return None
    try:
        info = json.loads(raw)
        info = info if isinstance(info, dict) else {}
    except ValueError:
        info = {}
    return {"info": info, "mtime": stat.st_mtime, "inode": (stat.st_dev, stat.st_ino, stat.st_mtime_ns)}


def _break_lock(path: Path, judged: dict[str, Any]) -> bool:
    """Remove the stale lock ``judged`` unless it was replaced meanwhile; breakers take turns.

    Creators never replace a lock (``O_EXCL``), so the lock can change only by being removed; the
    breakers serialise on ``<lock>.breaking`` so that one of them cannot remove the fresh lock another
    has just created after breaking the same stale one.
    """
    guard = path.with_name(path.name + ".breaking")
    try:
        handle = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        try:
            if time.time() - guard.stat().st_mtime > _UNREADABLE_LOCK_AGE_S:  # its breaker died
                guard.unlink(missing_ok=True)
        except FileNotFoundError:
            pass
        return False
    try:
        now = _read_lock(path)
        if now is not None and now["inode"] != judged["inode"]:
            return False
        path.unlink(missing_ok=True)
        return True
    finally:
        os.close(handle)
        guard.unlink(missing_ok=True)


def _process_start_time(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, OSError):
        return None


def _process_alive(pid: Any, started: Any) -> bool:
    """Whether ``pid`` runs and is the process that started at ``started`` (not a reuse of its pid)."""
    import psutil

    if not isinstance(pid, int):
        return False
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return not isinstance(started, (int, float)) or abs(process.create_time() - started) < 1.0
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # access denied: it exists
        return True


def load_results(folders: Mapping[str, str | os.PathLike] | Iterable[str | os.PathLike],
                 ranks: bool = False) -> pd.DataFrame:
    """Load several stores into one table with a ``source`` column naming where each row came from.

    :param folders: ``{source: folder}``, or folders (then the source is the folder's name).
    :param bool ranks: load the per-rank tables instead of the per-iteration ones.

    >>> load_results({"none": "/nonexistent"}).empty
    True
    """
    if not isinstance(folders, Mapping):
        folders = {Path(f).name: f for f in folders}
    frames = []
    for source, folder in folders.items():
        store = ResultsStore(folder)
        frame = store.load_ranks() if ranks else store.load()
        if not frame.empty:
            frames.append(frame.assign(source=source))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _check_run_id(run_id: str) -> None:
    if not isinstance(run_id, str) or not run_id or any(c in run_id for c in "/\\") or run_id.startswith("."):
        raise ValueError(f"run_id must be a non-empty file name without '/' and not starting with '.', got {run_id!r}")


def _atomic_write_csv(frame: pd.DataFrame, path: Path) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as handle:
            frame.to_csv(handle, index=False)

    write_atomically(path, write)


#: Columns read as text even when they look like numbers (a run id or a commit made of digits).
_TEXT_COLUMNS = {"run_id": str, "commit": str, "error": str, "status": str, "config_hash": str}


def _concat(paths: Iterable[Path]) -> pd.DataFrame:
    frames = [pd.read_csv(p, dtype=_TEXT_COLUMNS) for p in paths]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
