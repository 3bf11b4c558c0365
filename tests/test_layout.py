"""Every ``python -m distinv.X`` command that the README, the notebooks and the book print names a module that
exists and runs: a moved module leaves no stale command behind."""

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: ``-m distinv.a.b`` (after ``python``, ``python3``, ``.venv/bin/python`` or ``torchrun ...``); a name followed by
#: ``.<placeholder>`` or more word characters is not a complete name and is skipped.
COMMAND = re.compile(r"-m\s+(distinv(?:\.\w+)*)(?![\w<]|\.[\w<])")


def documents() -> list[Path]:
    """The files whose commands readers copy."""
    paths = [ROOT / "README.md", ROOT / "Makefile", *sorted((ROOT / "notebooks").glob("*.py")),
             *sorted((ROOT / "book").glob("*.md")), *sorted((ROOT / "data_scripts" / "cluster").glob("*.sbatch"))]
    return [path for path in paths if path.is_file()]


def commands(text: str) -> set[str]:
    """The module names of the ``-m distinv...`` commands in ``text``.

    >>> sorted(commands("python -m distinv.bench run cpu; python3 -m distinv.bench.studies.prior --sizes 64. "
    ...                 "Run `python -m distinv.bench.studies.<name>`."))
    ['distinv.bench', 'distinv.bench.studies.prior']
    """
    return set(COMMAND.findall(text))


def runnable(name: str) -> bool:
    """Whether ``python -m name`` finds something to run: a module, or a package with a ``__main__``."""
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError:  # a parent package is missing
        return False
    if spec is None:
        return False
    if spec.submodule_search_locations is not None:  # a package runs its __main__
        return importlib.util.find_spec(f"{name}.__main__") is not None
    return True


def test_helpers_reject_made_up_and_non_runnable_names():
    assert not runnable("distinv.bench.no_such_study")
    assert not runnable("distinv.no_such_package.prior")
    assert not runnable("distinv.bench.studies")  # a package without __main__
    assert runnable("distinv.bench") and runnable("distinv.bench.studies.prior")
    text = "python -m distinv.bench.made_up --sizes 64; python -m distinv.bench.studies.prior --sizes 64"
    assert {name for name in commands(text) if not runnable(name)} == {"distinv.bench.made_up"}


def test_printed_commands_name_existing_modules():
    found = {path.relative_to(ROOT).as_posix(): commands(path.read_text(encoding="utf-8")) for path in documents()}
    names = set().union(*found.values())
    assert "distinv.bench" in names and "distinv.bench.studies.prior" in names, names  # the scan sees the README
    stale = {f"{where}: python -m {name}" for where, found_names in found.items() for name in found_names
             if not runnable(name)}
    assert not stale, "commands naming modules that do not exist:\n" + "\n".join(sorted(stale))
