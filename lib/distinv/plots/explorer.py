"""An ipywidgets explorer of benchmark results: pick a source, a use case and a view.

In a live kernel the dropdowns redraw the figure. In the static book widget callbacks are dead and a
widget shows only its saved state, so :meth:`ResultsExplorer.show` also displays the default view as an
ordinary plotly output, which every renderer keeps.

>>> import pandas as pd
>>> runs = pd.DataFrame({"source": ["cpu"], "use_case": ["denoise"], "variant": ["deepinv"], "size": [64],
...                      "nprocs": [1], "t_total": [1.0], "t_grad": [0.0], "t_prior": [1.0], "t_comm": [0.0],
...                      "t_other": [0.0], "peak_mem_bytes": [2 ** 30]})
>>> explorer = ResultsExplorer(runs)
>>> explorer.views
('time breakdown', 'speedup', 'memory', 'distinv vs deepinv')
>>> explorer.figure("cpu", "denoise", "memory").layout.title.text
'Peak memory per rank · cpu · denoise'
"""

from __future__ import annotations

from typing import Callable

import pandas as pd
import plotly.graph_objects as go

from distinv.plots import benchmarks

__all__ = ["ResultsExplorer"]

_VIEWS: dict[str, tuple[Callable[..., go.Figure], str]] = {
    "time breakdown": (benchmarks.time_breakdown_figure, "Time per iteration"),
    "speedup": (benchmarks.speedup_figure, "Strong scaling"),
    "memory": (benchmarks.memory_figure, "Peak memory per rank"),
    "distinv vs deepinv": (benchmarks.implementation_figure, "distinv vs deepinv"),
}


class ResultsExplorer:
    """Dropdowns over the per-run table and the figure they select.

    :param pandas.DataFrame runs: per-run table (:func:`~distinv.bench.summary.summarise_runs`), with a
        ``source`` column when several result folders are loaded.
    :param str view: the default view, one of :attr:`views`.
    :param str use_case: the default use case (when the first source has it).
    """

    views = tuple(_VIEWS)

    def __init__(self, runs: pd.DataFrame, view: str = "time breakdown", use_case: str = "denoise"):
        if runs.empty:
            raise ValueError("runs is empty: nothing to explore")
        if view not in _VIEWS:
            raise ValueError(f"view must be one of {self.views}, got {view!r}")
        self.runs = runs if "source" in runs else runs.assign(source="local")
        self.default_view = view
        self.default_use_case = use_case

    def sources(self) -> list[str]:
        """Result sources in the table."""
        return sorted(self.runs["source"].astype(str).unique())

    def use_cases(self, source: str) -> list[str]:
        """Use cases measured in ``source``.

        :param str source: a source name.
        """
        return sorted(self.runs[self.runs["source"] == source]["use_case"].astype(str).unique())

    def figure(self, source: str, use_case: str, view: str) -> go.Figure:
        """The figure of one selection.

        :param str source: a source name.
        :param str use_case: a use case measured there.
        :param str view: one of :attr:`views`.
        """
        make, title = _VIEWS[view]
        part = self.runs[(self.runs["source"] == source) & (self.runs["use_case"] == use_case)]
        if part.empty:
            return go.Figure().update_layout(title=f"no {use_case!r} runs in {source!r}")
        return make(part, title=f"{title} · {source} · {use_case}")

    def default_figure(self) -> go.Figure:
        """The first source's default use case (else its first) in the default view (what the static page shows)."""
        source = self.sources()[0]
        cases = self.use_cases(source)
        return self.figure(source, self.default_use_case if self.default_use_case in cases else cases[0],
                           self.default_view)

    def widget(self):
        """An ipywidgets box: three dropdowns and an output area redrawn on every change."""
        import ipywidgets as widgets
        from IPython.display import display

        source = widgets.Dropdown(options=self.sources(), description="source")
        cases = self.use_cases(source.value)
        use_case = widgets.Dropdown(options=cases, description="use case",
                                    value=self.default_use_case if self.default_use_case in cases else cases[0])
        view = widgets.Dropdown(options=self.views, value=self.default_view, description="view")
        output = widgets.Output()

        def redraw(_=None):
            output.clear_output(wait=True)
            with output:
                display(self.figure(source.value, use_case.value, view.value))

        def new_source(change):
            use_case.options = self.use_cases(change["new"])

        source.observe(new_source, names="value")
        for control in (source, use_case, view):
            control.observe(redraw, names="value")
        redraw()
        return widgets.VBox([widgets.HBox([source, use_case, view]), output])

    def show(self) -> None:
        """Display the widget (live kernels) and the default view as a plain figure (static pages)."""
        from IPython.display import display

        display(self.widget())
        display(self.default_figure())
