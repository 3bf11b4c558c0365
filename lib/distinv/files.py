"""Files that appear whole or not at all.

Every file distinv writes for later use (results, executed notebooks, weights, model cards, fetched
images and their digests) goes through :func:`write_atomically`: the content is written to a hidden
temporary file in the target's folder, flushed to disk, then renamed over the target (``os.replace`` is
atomic on POSIX). A writer killed midway leaves the previous file, or none, never half of one.

>>> import pathlib, tempfile
>>> target = pathlib.Path(tempfile.mkdtemp()) / "note.txt"
>>> write_atomically(target, lambda tmp: tmp.write_text("whole")).read_text()
'whole'
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

__all__ = ["write_atomically"]

#: Permissions of a written file (``mkstemp`` would leave it readable by its owner only).
FILE_MODE = 0o644


def write_atomically(path: str | os.PathLike, write: Callable[[Path], object], *, overwrite: bool = True,
                     refusal_hint: str = "refusing to overwrite it") -> Path:
    """Create ``path`` by calling ``write(tmp)`` on a temporary file beside it, then renaming it.

    :param path: the file to create or replace; its folder must exist.
    :param write: writes the whole content into the path it is given (its return value is ignored).
    :param bool overwrite: replace an existing ``path``; if false, an existing ``path`` raises.
    :param str refusal_hint: the end of the error message when ``path`` exists and ``overwrite`` is false
        (e.g. ``"pass --force to overwrite it"``).
    :return: ``path``, as a :class:`~pathlib.Path`.
    :raises FileExistsError: ``path`` exists and ``overwrite`` is false (nothing is written).
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} exists: {refusal_hint}")
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    temporary = Path(temporary)
    try:
        write(temporary)
        with open(temporary, "rb+") as stream:
            os.fsync(stream.fileno())
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path
