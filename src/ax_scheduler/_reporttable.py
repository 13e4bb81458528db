"""The HTML report's results table: what a reader needs first in the page's width.

The parameters, the metrics, the status, how long a trial took and why it failed
are shown; standard errors, job handles, timestamps and folders are a click away
(a CSS checkbox, no script), and a long text opens from its cell.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped, unused-ignore]

from ._figures import MAX_CELL_CHARS, present, shorten

#: The results table's columns shown first, with the parameters and metrics.
LEADING_COLUMNS = ("trial_index", "status")
FIRST_FACTS = ("duration_s", "failure_reason")

#: Text cells up to this long stay on one line; longer ones wrap.
WORD_CHARS = 24


def results_table(frame: Any, first_columns: Sequence[str]) -> str:
    """The table (not empty), ``first_columns`` and the leading ones in the page's width;
    the rest behind a toggle.

    A reader looks first at what was tried and what came of it: the parameters,
    the metrics, the status, the time it took and why a trial failed. Standard
    errors, job handles, timestamps and folders are there on demand (plain CSS: a
    checkbox shows them), and a long failure reason opens from its cell.
    """
    first = {*LEADING_COLUMNS, *first_columns, *FIRST_FACTS}
    shown = [column in first for column in frame.columns]
    header = "".join(
        _header(column, at_first) for column, at_first in zip(frame.columns, shown, strict=True)
    )
    rows = "\n".join(_table_row(row, shown) for row in frame.itertuples(index=False))
    return (
        _more_toggle([c for c in frame.columns if c not in first])
        + '<div class="table-wrap"><table class="results">\n'
        f"<thead><tr>{header}</tr></thead>\n<tbody>\n{rows}\n</tbody></table></div>"
    )


def _more_toggle(hidden: list[str]) -> str:
    if not hidden:
        return ""
    names = html.escape(", ".join(hidden))
    return (
        '<input type="checkbox" id="all-columns">'
        f'<label for="all-columns" class="note"> Show the other columns too: {names}</label>\n'
    )


def _header(column: Any, at_first: bool) -> str:
    # Long names break at an underscore rather than widen a column of numbers
    # (not before a last word of one or two letters: duration_s, job_id).
    name = re.sub(r"_(?=[^_]{3})", "_<wbr>", html.escape(str(column)))
    return f"<th>{name}</th>" if at_first else f'<th class="more">{name}</th>'


def _table_row(row: Sequence[Any], shown: list[bool]) -> str:
    status = html.escape(str(row[1]), quote=True)  # the second column, after trial_index
    cells = "".join(_cell(value, at_first) for value, at_first in zip(row, shown, strict=True))
    return f'<tr class="{status}">{cells}</tr>'


def _cell(value: Any, at_first: bool) -> str:
    kind, content = _cell_content(value)
    classes = " ".join(name for name in (kind, "" if at_first else "more") if name)
    return f'<td class="{classes}">{content}</td>' if classes else f"<td>{content}</td>"


def _cell_content(value: Any) -> tuple[str, str]:
    """How the cell is laid out (its class) and its HTML."""
    if not present(value):
        return "", ""
    if isinstance(value, int | float | np.number) and not isinstance(value, bool):
        return "num", html.escape(format_value(value))
    text = format_value(value)
    if len(text) <= WORD_CHARS:  # a status, a choice, a time: on one line
        return "", html.escape(text)
    if len(text) <= MAX_CELL_CHARS:  # a sentence or a path: wrapped in the cell's width
        return "text", html.escape(text)
    # Cut, the whole text a click away (and wrapped, when open).
    short = f'<span class="short">{html.escape(shorten(text))}</span>'
    return "text", f"<details><summary>{short}</summary>{html.escape(text)}</details>"


def format_value(value: Any) -> str:
    """A cell's text: times to the millisecond, floats to six significant digits."""
    if isinstance(value, pd.Timestamp):
        return f"{value:%Y-%m-%d %H:%M:%S.%f}"[:-3]
    if isinstance(value, float | np.floating):
        return f"{value:.6g}"
    return str(value)
