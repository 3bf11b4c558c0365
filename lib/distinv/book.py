"""Helpers for the book's notebooks: plotly rendering that survives a static Jupyter Book build."""

from __future__ import annotations

__all__ = ["setup_plotly", "PLOTLY_RENDERER"]

#: plotly >= 6 under nbclient emits only ``application/vnd.plotly.v1+json``, which myst-nb drops;
#: adding the ``notebook_connected`` renderer also stores an HTML output that loads plotly.js from a CDN.
PLOTLY_RENDERER = "plotly_mimetype+notebook_connected"


def setup_plotly(renderer: str = PLOTLY_RENDERER) -> str:
    """Set plotly's default renderer so figures show both in Jupyter and in the built book.

    :param str renderer: a plotly renderer string.
    :return: the renderer in use.

    >>> setup_plotly()
    'plotly_mimetype+notebook_connected'
    """
    import plotly.io as pio

    pio.renderers.default = renderer
    return pio.renderers.default
