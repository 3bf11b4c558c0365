"""Tables for display in the book: no index column, each column with its own number format."""

from __future__ import annotations

import pandas as pd

__all__ = ["display_table"]


def display_table(frame: pd.DataFrame, formats: dict[str, str]):
    """``frame`` as a :class:`pandas.io.formats.style.Styler` without its index, the columns named in
    ``formats`` written with their format strings (columns absent from ``frame`` ignored), empty cells as
    dashes.

    >>> frame = pd.DataFrame({"a": [1.23456, None], "b": [1e-7, 2.0]})
    >>> display_table(frame, {"a": "{:.2f}", "b": "{:.1e}", "c": "{:.0f}"}).to_html().count("–")
    1
    """
    return frame.style.hide(axis="index").format({c: f for c, f in formats.items() if c in frame}, na_rep="–")
