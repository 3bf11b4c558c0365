"""Atomic writes (distinv.files) and the files written through them: a writer that dies midway leaves the
previous file, or none, never half of one."""

import json
import shutil
import stat
import zipfile
from pathlib import Path

import pytest

from distinv.bench.output import write_json_atomically
from distinv.files import write_atomically
from distinv.models import sha256_of
from data_scripts_loader import load_data_script



def _hidden(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_the_file_appears_whole_and_readable_by_everyone(tmp_path):
    target = write_atomically(tmp_path / "a.txt", lambda tmp: tmp.write_text("content"))
    assert target == tmp_path / "a.txt" and target.read_text() == "content"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # not mkstemp's 0o600
    assert _hidden(tmp_path) == []


def test_a_writer_that_dies_midway_leaves_the_previous_file(tmp_path):
    target = write_atomically(tmp_path / "a.txt", lambda tmp: tmp.write_text("old"))

    def half_then_die(tmp: Path) -> None:
        tmp.write_text("ne")
        raise KeyboardInterrupt("killed mid-write")

    for path in (target, tmp_path / "b.txt"):
        with pytest.raises(KeyboardInterrupt):
            write_atomically(path, half_then_die)
    assert target.read_text() == "old" and not (tmp_path / "b.txt").exists()
    assert _hidden(tmp_path) == []


def test_an_existing_file_is_refused_unless_overwriting(tmp_path):
    target = tmp_path / "result.json"
    write_json_atomically({"a": 1}, target)
    with pytest.raises(FileExistsError, match=rf"{target} exists: pass --force to overwrite it"):
        write_json_atomically({"a": 2}, target)
    assert json.loads(target.read_text()) == {"a": 1}
    write_json_atomically({"a": 2}, target, force=True)
    assert json.loads(target.read_text()) == {"a": 2}
    with pytest.raises(FileExistsError, match="refusing to overwrite it"):
        write_atomically(target, lambda tmp: tmp.write_text("x"), overwrite=False)


def test_an_interrupted_extraction_is_redone_not_kept(tmp_path, monkeypatch):
    script = load_data_script("fetch_images")
    archive = tmp_path / "DIV2K_valid_HR.zip"
    png = bytes(range(256)) * 64
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("DIV2K_valid_HR/0801.png", png)
    dest = tmp_path / "images"

    def half_then_die(source, out, *args, **kwargs):
        out.write(source.read(100))
        raise KeyboardInterrupt("killed mid-extraction")

    monkeypatch.setattr(shutil, "copyfileobj", half_then_die)
    with pytest.raises(KeyboardInterrupt):
        script.extract(archive, ["0801"], dest)
    monkeypatch.undo()
    assert list(dest.iterdir()) == []  # before: a 100-byte 0801.png that the next run kept and hashed
    (image,) = script.extract(archive, ["0801"], dest)
    assert image.read_bytes() == png
    assert (dest / "0801.png.sha256").read_text() == f"{sha256_of(image)}  0801.png\n"
