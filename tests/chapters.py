"""Execute a chapter under papermill, as ``make book`` does, and read back what it glued."""

import ast
from pathlib import Path

import nbformat

from distinv.book.execute import load_profile, notebook_parameters

ROOT = Path(__file__).resolve().parents[1]


def glued_values(outputs: list) -> dict:
    """The values a notebook glued, as Python values (myst-nb stores their text under a mime prefix)."""
    values = {}
    for output in outputs:
        record = output.get("metadata", {}).get("scrapbook", {})
        if "name" in record:
            text = output["data"][record.get("mime_prefix", "") + "text/plain"]
            values[record["name"]] = ast.literal_eval(text) if text not in ("nan", "inf") else float(text)
    return values


def execute_chapter(stem: str, folder: Path, parameters: dict | None = None,
                    cwd: Path = ROOT / "notebooks") -> tuple[list, dict, dict]:
    """Run ``notebooks/<stem>.py`` with ``parameters`` (default: its section of the tiny profile).

    :return: every code cell's outputs (in order), the glued values, and the parameters used.
    """
    import jupytext
    import papermill

    if parameters is None:
        parameters = notebook_parameters(load_profile(ROOT / "notebooks" / "profiles" / "tiny.yaml"), stem)
    source, out = folder / f"{stem}.ipynb", folder / f"{stem}_out.ipynb"
    notebook = jupytext.read(ROOT / "notebooks" / f"{stem}.py")
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, source)
    papermill.execute_notebook(str(source), str(out), parameters=parameters, kernel_name="python3", cwd=str(cwd),
                               progress_bar=False, execution_timeout=300)
    executed = nbformat.read(out, as_version=4)
    outputs = [o for cell in executed.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    return outputs, glued_values(outputs), parameters


def glue_references(stem: str) -> set[str]:
    """The names that the markdown of ``notebooks/<stem>.py`` refers to with ``{glue:text}`` (its prose's numbers)."""
    import re

    import jupytext

    notebook = jupytext.read(ROOT / "notebooks" / f"{stem}.py")
    return set(re.findall(r"\{glue:text\}`(\w+)", "".join(c.source for c in notebook.cells if c.cell_type == "markdown")))
