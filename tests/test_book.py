"""The book pipeline: papermill execution with profiles, failing cells, plotly in the static site."""

import json
import textwrap
from pathlib import Path

import nbformat
import plotly.io
import pytest

from distinv.book import setup_plotly
from distinv.book.execute import execute_all, execute_notebook, load_profile, notebook_parameters
from distinv.book.plotly_mime import PLOTLY_MIME, PlotlyMimeRenderer

ROOT = Path(__file__).resolve().parents[1]


def _write_py_notebook(path: Path, body: str) -> Path:
    path.write_text(textwrap.dedent(body))
    return path


def test_profile_sections_and_overrides(tmp_path):
    profile = tmp_path / "p.yaml"
    profile.write_text("defaults: {nprocs: 2, size: 8}\n00_x: {size: 16}\n")
    data = load_profile(profile)
    assert notebook_parameters(data, "00_x") == {"nprocs": 2, "size": 16}
    assert notebook_parameters(data, "01_y", {"nprocs": 3}) == {"nprocs": 3, "size": 8}
    with pytest.raises(FileNotFoundError, match="profile .* not found"):
        load_profile(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("defaults: 3\n")
    with pytest.raises(ValueError, match="must map section names"):
        load_profile(tmp_path / "bad.yaml")


def test_declared_parameters_only_and_atomic_output(tmp_path):
    source = _write_py_notebook(tmp_path / "00_demo.py", """
        # %% tags=["parameters"]
        a = 1
        # %%
        b = a * 10
        print("b is", b)
    """)
    out = tmp_path / "out" / "00_demo.ipynb"
    execute_notebook(source, out, {"a": 4, "unknown": 5})
    nb = nbformat.read(out, as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "b is 40" in text
    assert not any("unknown" in c.source for c in nb.cells)


def test_a_progress_bar_is_stored_in_its_last_state_and_setup_prints_nothing(tmp_path):
    source = _write_py_notebook(tmp_path / "00_bar.py", """
        # %% tags=["parameters"]
        steps = 3
        # %%
        import sys, time
        from distinv.book import setup_plotly
        for step in range(steps + 1):
            sys.stderr.write(f"\\rbar {step}/{steps}")
            sys.stderr.flush()
            time.sleep(0.05)  # separate writes, as a progress bar makes them
        sys.stderr.write("\\n")
        print("done")
        setup_plotly()
    """)
    out = tmp_path / "00_bar.ipynb"
    execute_notebook(source, out)
    (cell,) = [c for c in nbformat.read(out, as_version=4).cells if "steps + 1" in c.source]
    assert [(o.output_type, o.get("name"), o.get("text")) for o in cell.outputs] == [
        ("stream", "stderr", "bar 3/3\n"), ("stream", "stdout", "done\n")]


def test_failing_cell_raises_with_traceback_and_keeps_previous_output(tmp_path):
    good = _write_py_notebook(tmp_path / "00_ok.py", "# %% tags=[\"parameters\"]\nx = 1\n# %%\nprint(x)\n")
    out = tmp_path / "out"
    execute_all(tmp_path, out, _profile(tmp_path))
    before = (out / "00_ok.ipynb").read_text()
    good.write_text("# %% tags=[\"parameters\"]\nx = 1\n# %%\ndef boom():\n    raise RuntimeError('cell broke')\nboom()\n")
    with pytest.raises(Exception, match="cell broke") as info:
        execute_all(tmp_path, out, _profile(tmp_path))
    assert "boom" in str(info.value)  # the cell's traceback
    assert (out / "00_ok.ipynb").read_text() == before  # never half-written
    with pytest.raises(ValueError, match="only names unknown notebooks"):
        execute_all(tmp_path, out, _profile(tmp_path), only=["99_nope"])


def _profile(tmp_path: Path) -> Path:
    path = tmp_path / "profile.yaml"
    path.write_text("defaults: {}\n")
    return path


def test_plotly_json_becomes_a_figure_div():
    import plotly.graph_objects as go

    class Data:
        mime_type = PLOTLY_MIME
        content = json.loads(go.Figure(go.Scatter(y=[1, 3, 2])).to_json())

    nodes = PlotlyMimeRenderer.handle_mime(None, Data(), inline=False)
    html = nodes[0].astext()
    assert 'class="plotly-graph-div"' in html and "Plotly.newPlot" in html
    assert "cdn.plot.ly" not in html  # the page loads plotly.js once, from _static
    assert PlotlyMimeRenderer.handle_mime(None, Data(), inline=True) is None
    assert ("html", PLOTLY_MIME, 20) in PlotlyMimeRenderer.mime_priority_overrides
    assert setup_plotly() is None  # nothing for a notebook cell to print
    assert plotly.io.renderers.default == "plotly_mimetype"


def test_plotly_renderer_is_registered_for_myst_nb():
    from myst_nb.core.render import load_mime_renders

    assert PlotlyMimeRenderer in load_mime_renders()


def test_notebook_00_executes_with_tiny_parameters(tmp_path):
    profile = load_profile(ROOT / "notebooks" / "profiles" / "tiny.yaml")
    out = tmp_path / "00.ipynb"
    execute_notebook(ROOT / "notebooks" / "00_distributed_basics.py", out,
                     notebook_parameters(profile, "00_distributed_basics"))
    nb = nbformat.read(out, as_version=4)
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert sum(PLOTLY_MIME in o.get("data", {}) for o in outputs) >= 2
    markdown = "".join(o["data"].get("text/markdown", "") for o in outputs if "data" in o)
    assert "On 2 ranks" in markdown
    table = next(o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {}))
    assert "forward A x" in table and "adjoint" in table
