"""Every figure and table of the book: plotly figures, styled tables and, for chapter 10, the results
explorer; one module per chapter's use case (``images``, ``ct``, ``radio``) or benchmark (``benchmarks``:
the grid's results, ``prior``: the tiled-prior study, ``explorer``)."""
