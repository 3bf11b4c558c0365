"""The book pipeline: papermill execution with profiles, failing cells, plotly and maths in an offline static site."""

import json
import re
import sys
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
    with pytest.raises(ValueError, match=r"section 'defaults' must be a mapping of parameters .*got a int"):
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
    glued = {o["metadata"]["scrapbook"]["name"]: o["data"][o["metadata"]["scrapbook"]["mime_prefix"] + "text/plain"]
             for o in outputs if "scrapbook" in o.get("metadata", {})}
    assert set(glued) == {"basics_ranks", "basics_max_abs_diff", "basics_tiling_psnr_db"} and glued["basics_ranks"] == "2"
    assert float(glued["basics_max_abs_diff"]) < 1e-5  # distributed = single-process to float32 rounding
    table = next(o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {}))
    assert "forward A x" in table and "adjoint" in table


# ------------------------------------------------------------------------------------- offline site


def _offline_folder(root: Path) -> Path:
    """Stand-ins for the vendored scripts (``make site-js`` fetches the real ones)."""
    from distinv.book.vendor import MATHJAX_PATH, REQUIREJS_PATH, WIDGETS_PATH

    folder = root / "offline"
    for path in (MATHJAX_PATH, REQUIREJS_PATH, WIDGETS_PATH):
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(f"// stand-in for {path}\n")
    return folder


def _tiny_site(root: Path, folder: Path | None, mathjax_path: str = "vendor/mathjax/es5/tex-mml-chtml.js"):
    """Build a two-page site (an equation; saved widget state) with Sphinx, myst-nb and our extension."""
    from sphinx.application import Sphinx
    from sphinx.util.docutils import docutils_namespace, patch_docutils

    source = root / "src"
    source.mkdir(parents=True)
    (source / "conf.py").write_text(textwrap.dedent(f"""
        extensions = ["myst_nb", "distinv.book.sphinx_scripts"]
        myst_enable_extensions = ["dollarmath", "amsmath"]
        nb_execution_mode = "off"
        mathjax_path = {mathjax_path!r}
        distinv_offline_static = {str(folder or root / "nothing-here")!r}
    """))
    (source / "index.md").write_text("# Maths\n\nInline $x^2$ and display\n\n$$\\sum_k A_k^\\top A_k$$\n\n"
                                     "```{toctree}\nwidgets\n```\n")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Widgets\n\nA label $\\alpha$.")])
    notebook.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {
        "state": {"m": {"model_name": "IntSliderModel", "model_module": "@jupyter-widgets/controls",
                        "model_module_version": "2.0.0", "state": {"value": 3}}},
        "version_major": 2, "version_minor": 0}}
    nbformat.write(notebook, source / "widgets.ipynb")
    out = root / "html"
    with patch_docutils(str(source)), docutils_namespace():  # as sphinx-build: one build's registrations
        app = Sphinx(str(source), str(source), str(out), str(root / "doctrees"), "html", status=None,
                     warningiserror=True)
        app.build()
    return out


def test_the_site_serves_mathjax_and_the_widget_scripts_itself(tmp_path):
    out = _tiny_site(tmp_path, _offline_folder(tmp_path))
    maths, widgets = (out / "index.html").read_text(), (out / "widgets.html").read_text()
    assert 'src="_static/vendor/mathjax/es5/tex-mml-chtml.js' in maths and r"\(x^2\)" in maths
    assert 'src="_static/vendor/requirejs/require.js' in widgets
    assert 'src="_static/vendor/@jupyter-widgets/html-manager/dist/embed-amd.js' in widgets
    # the widgets' MathJax 2 call, given to MathJax 3 after its configuration and before the widgets
    # and the manager's fonts resolved from _static/vendor/ (RequireJS's base), not from the page's folder
    order = [widgets.index(s) for s in ("window.MathJax = {", "vendor/requirejs/require.js", "requirejs.config",
                                        "MathJax.Hub = hub", "html-manager/dist/embed-amd.js")]
    assert order == sorted(order) and "MathJax.Hub = hub" not in maths and "requirejs.config" not in maths
    for page in (maths, widgets):  # no script from elsewhere
        assert not re.findall(r'<script[^>]+src="(?:https?:)?//', page)
    assert (out / "_static/vendor/mathjax/es5/tex-mml-chtml.js").read_text().startswith("// stand-in")


def test_a_site_without_its_scripts_or_with_a_cdn_does_not_build(tmp_path):
    from sphinx.errors import ConfigError

    with pytest.raises(ConfigError, match=r"the offline site needs vendor/mathjax/es5/tex-mml-chtml.js, .* "
                                          r"run `make site-js`"):
        _tiny_site(tmp_path / "a", None)
    cdn = "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"
    with pytest.raises(ConfigError, match=f"pages would load scripts from the network: \\['{re.escape(cdn)}'\\]"):
        _tiny_site(tmp_path / "b", _offline_folder(tmp_path / "b"), mathjax_path=cdn)


FAKE_NPM = textwrap.dedent("""
    #!{python}
    import io, json, sys, tarfile, pathlib
    spec, destination = sys.argv[2], pathlib.Path(sys.argv[sys.argv.index("--pack-destination") + 1])
    name = "fake-1.0.0.tgz"
    with tarfile.open(destination / name, "w:gz") as tar:
        for member in ("package/dist/app.js", "package/dist/app.js.map", "package/src/app.ts", "package/LICENSE"):
            data = member.encode()
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    print(json.dumps([{{"filename": name, "integrity": {integrity!r}}}]))
""")


@pytest.mark.parametrize("served", ["sha512-good", "sha512-tampered"])
def test_fetch_unpacks_only_pinned_tarballs_and_only_the_served_files(tmp_path, monkeypatch, served):
    from distinv.book import vendor

    npm = tmp_path / "npm"
    npm.write_text(FAKE_NPM.format(python=sys.executable, integrity=served).lstrip())
    npm.chmod(0o755)
    monkeypatch.setattr(vendor, "PACKAGES", (vendor.VendorPackage("fake", "fake@1.0.0", "sha512-good",
                                                                  keep=("LICENSE", "dist/")),))
    if served != "sha512-good":
        with pytest.raises(ValueError, match="fake@1.0.0: the registry's tarball has digest sha512-tampered, "
                                             "expected sha512-good"):
            vendor.fetch(tmp_path / "out", npm=str(npm))
        assert not (tmp_path / "out" / "vendor" / "fake").exists()
        return
    assert vendor.fetch(tmp_path / "out", npm=str(npm)) == ["fake"]
    files = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert files == ["vendor/fake/.integrity", "vendor/fake/LICENSE", "vendor/fake/dist/app.js"]
    assert vendor.fetch(tmp_path / "out", npm=str(npm)) == []  # already there


@pytest.mark.parametrize("text, found", [
    ("all typeset", []),
    (r"left raw \(x^2\) here", [r"left raw \(x^2\) here"]),
    (r"display \[y\]", [r"display \[y\]"]),
    ("dollars $$a+b$$", ["dollars $$a+b$$", "dollars $$a+b$$"]),
    (r"an environment \begin{align} x \end{align}", [r"an environment \begin{align} x \end{align}"]),
    ("one dollar $5 is prose", []),
])
def test_raw_maths_is_found_in_visible_text(text, found):
    from distinv.book.check_site import find_raw_math

    assert find_raw_math(text) == found


@pytest.mark.parametrize("url, local", [
    ("http://127.0.0.1:41234/book/intro.html", True),
    ("http://localhost:8000/_static/plotly.min.js", True),
    ("http://[::1]:8000/x.js", True),
    ("data:font/woff2;base64,AAAA", True),
    ("https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js", False),
    ("https://fonts.googleapis.com/css?family=Roboto", False),
    ("http://127.0.0.2.example.org/x.js", False),
])
def test_only_loopback_requests_are_served(url, local):
    from distinv.book.check_site import is_loopback

    assert is_loopback(url) is local


def test_fetch_without_npm_says_how_to_get_it_and_keeps_to_the_package(tmp_path):
    from distinv.book import vendor

    with pytest.raises(FileNotFoundError, match=r"'no-such-npm' not found: .* \(Debian: apt-get install npm\)"):
        vendor.fetch(tmp_path, npm="no-such-npm")
    mathjax = vendor.PACKAGES[0]
    assert [vendor.wanted(mathjax, m) for m in ("package/es5/tex-mml-chtml.js", "package/es5/../../../etc/passwd",
                                                "es5/tex-mml-chtml.js", "package/es5/tex-mml-chtml.js.map")] == [
        True, False, False, False]
