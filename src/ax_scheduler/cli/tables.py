"""A table drawn line by line: rich's look, a thousand rows in milliseconds.

rich's ``Table`` lays out every cell through its measuring and wrapping engine,
about a millisecond a row: a second for the trials of a 1,000-trial run, more
than the rest of ``ax-scheduler status``. A table whose cells never fold needs
none of that: each column is as wide as its widest cell, and each row is one
line of rich's own box characters (``box.HEAVY_HEAD``, ``Table``'s default) and
padding. :func:`draw` makes that line by line; rich's ``Table`` is left for a
table too wide for the terminal, whose cells must fold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich import box
from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

BOX = box.HEAVY_HEAD


@dataclass(frozen=True)
class Column:
    """A column's header, and whether it is right-justified (numbers)."""

    header: str
    right: bool = False


def width_of(columns: Sequence[Column], rows: Sequence[Sequence[Text]]) -> int:
    """How many terminal cells wide :func:`draw` makes the table."""
    return sum(_widths(columns, rows)) + 3 * len(columns) + 1


def draw(title: str, columns: Sequence[Column], rows: Sequence[Sequence[Text]]) -> Text:
    """The table as rich's ``Table(title=title, title_justify="left")`` draws it unfolded.

    Args:
        title: The line above the table.
        columns: The columns.
        rows: One text per column per row, each on one line (no newlines).

    Returns:
        Its lines, styled as rich styles a table (an italic title, bold headers).
    """
    widths = _widths(columns, rows)
    padded = [width + 2 for width in widths]  # a space either side of each cell
    heading = Text(title, style="table.title")
    # Padded to the table's width as rich pads it; a longer title stays whole.
    heading.pad_right(max(0, sum(padded) + len(padded) + 1 - heading.cell_len))
    header = [Text(column.header, style="table.header") for column in columns]
    body = [
        _line(row, columns, widths, BOX.mid_left, BOX.mid_vertical, BOX.mid_right) for row in rows
    ]
    lines = [
        heading,
        Text(BOX.get_top(padded)),
        _line(header, columns, widths, BOX.head_left, BOX.head_vertical, BOX.head_right),
        Text(BOX.get_row(padded, "head", edge=True)),
        *body,
        Text(BOX.get_bottom(padded)),
    ]
    return Text("\n").join(lines)


def folded(title: str, columns: Sequence[Column], rows: Sequence[Sequence[Text]]) -> Table:
    """The same table as rich's ``Table``, whose cells fold to fit the console's width."""
    table = Table(title=title, title_justify="left", box=BOX)
    for column in columns:
        table.add_column(
            column.header, justify="right" if column.right else "left", overflow="fold"
        )
    for row in rows:
        table.add_row(*row)
    return table


def _widths(columns: Sequence[Column], rows: Sequence[Sequence[Text]]) -> list[int]:
    return [
        max([cell_len(column.header), *(row[index].cell_len for row in rows)])
        for index, column in enumerate(columns)
    ]


def _line(
    cells: Sequence[Text],
    columns: Sequence[Column],
    widths: Sequence[int],
    left: str,
    between: str,
    right: str,
) -> Text:
    line = Text(left)
    for index, (cell, column, width) in enumerate(zip(cells, columns, widths, strict=True)):
        gap = " " * (width - cell.cell_len)
        line.append(" " + gap if column.right else " ")
        line.append_text(cell)
        line.append(
            (" " if column.right else gap + " ") + (right if index == len(cells) - 1 else between)
        )
    return line
