"""Helpers for the book's notebooks: plotly figures that survive a static Jupyter Book build.

plotly >= 6 under nbclient emits only ``application/vnd.plotly.v1+json``, which myst-nb drops with a
``mystnb.unknown_mime_type`` warning. distinv registers a myst-nb mime renderer for that type
(:mod:`distinv.book.plotly_mime`, an entry point of the package): the book turns each figure's JSON
into a div and a ``Plotly.newPlot`` call, and every page loads one copy of plotly.js from the book's
``_static`` folder (copied from the plotly package at build time), so the site renders offline and
online alike. JupyterLab renders the same mimetype natively. MathJax and the widgets manager are
served from ``_static`` too (:mod:`distinv.book.vendor`, :mod:`distinv.book.sphinx_scripts`), and
``python -m distinv.book check-site`` fails a page that requests anything off the loopback server or
shows raw TeX.
"""

from __future__ import annotations

__all__ = ["setup_plotly", "PLOTLY_RENDERER", "plotly_js_path"]

#: Renderer used by the notebooks: the JSON mimetype that JupyterLab and the book both render.
PLOTLY_RENDERER = "plotly_mimetype"


def plotly_js_path() -> str:
    """Path of the plotly.js bundle that ships with the installed plotly package."""
    from pathlib import Path

    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise FileNotFoundError(f"plotly.js not found at {path}; reinstall plotly")
    return str(path)


def setup_plotly(renderer: str = PLOTLY_RENDERER) -> None:
    """Set plotly's default renderer, whatever the environment guessed (nbclient, papermill, lab).

    It returns nothing: called last in a notebook cell, a returned value would be printed on the page.

    :param str renderer: a plotly renderer string.

    >>> import plotly.io as pio
    >>> setup_plotly(); pio.renderers.default
    'plotly_mimetype'
    """
    import plotly.io as pio

    pio.renderers.default = renderer
