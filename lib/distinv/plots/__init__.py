"""plotly figures of the book's chapters, one module per chapter's use case."""
