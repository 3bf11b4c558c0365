"""Execute the jupytext notebooks with papermill into the executed notebooks the book renders.

``notebooks/NN_name.py`` (jupytext percent format, a ``parameters`` cell) is converted in memory,
executed with the parameters of a profile (``notebooks/profiles/{cpu,gpu}.yaml``: a ``defaults``
section plus one section per notebook), and written atomically to ``book/executed/NN_name.ipynb``.
Only parameters that the notebook declares are passed. A failing cell raises with its traceback.

Text streams are stored as a terminal shows them (:func:`collapse_streams`): a progress bar that
redraws itself with carriage returns is kept in its last state, not as one line per redraw.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import yaml

from distinv.files import write_atomically

__all__ = ["load_profile", "notebook_parameters", "execute_notebook", "execute_all", "collapse_streams"]


def load_profile(path: str | Path) -> dict[str, dict]:
    """Read a profile YAML: ``{"defaults": {...}, "<notebook stem>": {...}}``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"profile {str(path)!r} not found (expected e.g. notebooks/profiles/cpu.yaml)")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"profile {path} must map section names ('defaults' or a notebook stem) to mappings of "
                         f"parameters, got a {type(data).__name__}")
    for section, values in data.items():
        if not isinstance(values, dict):
            raise ValueError(f"profile {path}: section {section!r} must be a mapping of parameters (NAME: value), "
                             f"got a {type(values).__name__}")
    return data


def notebook_parameters(profile: dict[str, dict], stem: str, overrides: dict | None = None) -> dict:
    """Parameters of one notebook: defaults, then its section, then explicit overrides.

    :param dict profile: :func:`load_profile`.
    :param str stem: the notebook's file stem, e.g. ``"01_natural_images"``.
    :param dict overrides: ``{name: value}`` applied last.

    >>> notebook_parameters({"defaults": {"nprocs": 2, "size": 64}, "01_x": {"size": 128}}, "01_x", {"nprocs": 1})
    {'nprocs': 1, 'size': 128}
    """
    if overrides is not None and not isinstance(overrides, dict):
        raise TypeError(f"overrides must be a mapping of parameter names to values or None, got "
                        f"{type(overrides).__name__} {overrides!r}")
    return {**profile.get("defaults", {}), **profile.get(stem, {}), **(overrides or {})}


def _to_notebook(source: Path):
    import jupytext

    nb = jupytext.read(source)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.setdefault("language_info", {"name": "python"})
    for cell in nb.cells:  # papermill expects every cell to carry a tags list
        cell.metadata.setdefault("tags", [])
    return nb


def _declared(nb) -> set[str]:
    from papermill.inspection import _infer_parameters

    return {p.name for p in _infer_parameters(nb)}


def _as_terminal_shows(text: str) -> str:
    """``text`` with every carriage return applied: of a line redrawn with ``\\r``, its last drawing."""
    lines = text.split("\n")
    return "\n".join(next((part for part in reversed(line.split("\r")) if part), "") for line in lines)


def collapse_streams(outputs: list[dict]) -> list[dict]:
    """Merge each run of consecutive stream outputs of the same name (``stdout``, ``stderr``) into one and
    apply its carriage returns; other outputs and their order are kept.

    A progress bar sent in many small writes (tqdm: ``"\\r 10%"``, ``"\\r 20%"``, ...) becomes its last
    state. myst-nb's own merging appends a newline to every write, which turns each redraw into a line.

    >>> bar = [{"output_type": "stream", "name": "stderr", "text": f"\\rit {p}%"} for p in (0, 50, 100)]
    >>> bar.append({"output_type": "stream", "name": "stderr", "text": "\\n"})
    >>> [o["text"] for o in collapse_streams(bar + [{"output_type": "stream", "name": "stdout", "text": "done\\n"}])]
    ['it 100%\\n', 'done\\n']
    """
    merged: list[dict] = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if output.get("output_type") == "stream":
            output = copy.copy(output)
            output["text"] = "".join(output["text"]) if isinstance(output["text"], list) else output["text"]
            if previous is not None and previous.get("output_type") == "stream" and previous["name"] == output["name"]:
                previous["text"] += output["text"]
                continue
        merged.append(output)
    for output in merged:
        if output.get("output_type") == "stream":
            output["text"] = _as_terminal_shows(output["text"])
    return merged


def execute_notebook(source: str | Path, output: str | Path, parameters: dict | None = None,
                     kernel_name: str = "python3", timeout: float | None = None) -> float:
    """Execute one jupytext notebook with papermill; write ``output`` atomically.

    :param str source: the ``.py`` notebook.
    :param str output: the executed ``.ipynb`` to write (replaced only when execution succeeds).
    :param dict parameters: values for the ``parameters`` cell (undeclared names are dropped).
    :param str kernel_name: Jupyter kernel.
    :param float timeout: per-cell timeout in seconds (None: none).
    :return: seconds spent.
    """
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ValueError(f"timeout must be a positive number of seconds per cell or None, got {timeout!r}")
    import nbformat
    import papermill

    source, output = Path(source), Path(output)
    nb = _to_notebook(source)
    declared = _declared(nb)
    params = {k: v for k, v in (parameters or {}).items() if k in declared}
    output.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    executed = papermill.execute_notebook(
        nb, None, parameters=params, kernel_name=kernel_name, cwd=str(source.parent),
        progress_bar=False, execution_timeout=timeout, log_output=False,
    )
    for cell in executed.cells:
        if cell.cell_type == "code":
            cell.outputs = collapse_streams(cell.outputs)
    write_atomically(output, lambda tmp: nbformat.write(executed, str(tmp)))
    return time.perf_counter() - start


def execute_all(notebooks_dir: str | Path, output_dir: str | Path, profile_path: str | Path,
                only: list[str] | None = None, overrides: dict | None = None) -> dict[str, float]:
    """Execute every ``NN_*.py`` notebook of ``notebooks_dir`` (or those named in ``only``)."""
    profile = load_profile(profile_path)
    sources = sorted(Path(notebooks_dir).glob("[0-9][0-9]_*.py"))
    if only:
        unknown = set(only) - {s.stem for s in sources}
        if unknown:
            raise ValueError(f"only names unknown notebooks {sorted(unknown)}; known: {[s.stem for s in sources]}")
        sources = [s for s in sources if s.stem in only]
    timings = {}
    for source in sources:
        params = notebook_parameters(profile, source.stem, overrides)
        print(f"executing {source.name} with {params}", flush=True)
        timings[source.stem] = execute_notebook(source, Path(output_dir) / f"{source.stem}.ipynb", params)
        print(f"  done in {timings[source.stem]:.1f} s", flush=True)
    return timings
