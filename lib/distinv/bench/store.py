"""The results store: one tidy table (rows = run × iteration) kept as one CSV file per run.

Layout of a store folder::

    <root>/<run_id>.csv         rows = iterations of one run (params, metrics, provenance, status)
    <root>/<run_id>.ranks.csv   rows = ranks of that run (peak memory, bytes and seconds communicated)

Each file is written atomically (:func:`distinv.files.write_atomically`), ranks file first: a run's
``.csv`` appears whole or not at all, so a killed run never corrupts earlier rows, and a run counts as
done only once its main file exists with ``status == "ok"``. A failed run is stored as one row with its
error; a later run of the same point replaces it. Loading concatenates the files into a
:class:`pandas.DataFrame`.

>>> import tempfile
>>> store = ResultsStore(tempfile.mkdtemp())
>>> store.write_run("abc", [{"iteration": 1, "psnr": 30.0, "status": "ok"}], ranks=[{"rank": 0}])
>>> store.is_done("abc"), len(store.load())
(True, 1)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd

from distinv.files import write_atomically

__all__ = ["ResultsStore", "load_results", "STATUS_OK", "STATUS_ERROR"]

STATUS_OK = "ok"
STATUS_ERROR = "error"
_RANKS_SUFFIX = ".ranks.csv"


class ResultsStore:
    """A folder of per-run CSV files, read back as one table.

    :param str root: the folder (created when the first run is written).
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"ResultsStore({str(self.root)!r})"

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
