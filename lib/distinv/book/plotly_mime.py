"""A myst-nb mime renderer: plotly's JSON outputs become interactive figures in the built book.

Registered in ``pyproject.toml`` under the ``myst_nb.mime_renderers`` entry-point group. The page
must load plotly.js once (``html_js_files`` in ``_config.yml``).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Sequence

PLOTLY_MIME = "application/vnd.plotly.v1+json"


class PlotlyMimeRenderer:
    """Render ``application/vnd.plotly.v1+json`` as a plotly div; preferred over text/html."""

    mime_priority_overrides: ClassVar[Sequence[tuple[str, str, int | None]]] = (
        ("html", PLOTLY_MIME, 20), ("dirhtml", PLOTLY_MIME, 20), ("singlehtml", PLOTLY_MIME, 20),
    )

    @staticmethod
    def handle_mime(renderer: Any, data: Any, inline: bool) -> list | None:
        if inline or data.mime_type != PLOTLY_MIME:
            return None
        import plotly.io as pio
        from docutils import nodes

        figure = json.loads(data.content) if isinstance(data.content, str) else data.content
        html = pio.to_html(figure, include_plotlyjs=False, include_mathjax=False, full_html=False,
                           default_width="100%", default_height=525, validate=False)
        return [nodes.raw("", html, format="html", classes=["output", "text_html"])]
