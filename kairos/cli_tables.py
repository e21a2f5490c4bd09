"""Tables that fit the console's width without losing a cell.

Rich shrinks every column evenly when a table is too wide, so at 80 or 100 columns the error of a
run was squeezed to nothing and its status cut to ``SUCCEED…``. Here each column says what it may
give up instead: a *whole* column (a status, a name, a marker, a time) is printed whole or not at
all; a *folding* column (an error, a description) wraps onto more lines; a *movable* column, when
the width is short, moves into the row's ``collect_into`` cell as a ``header: value`` line, so
its value is still under the row. Only when the whole columns alone are wider than the console
does Rich cut them, and it marks the cut with ``…``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.table import Table
from rich.text import Text

FOLDED_MIN_WIDTH = 12
"""The narrowest a folding column becomes (when its content is wider)."""
_PADDING = 1  # Rich's default cell padding, on each side


@dataclass(frozen=True, slots=True)
class Column:
    header: str
    folds: bool = False
    """Long free text: wraps (and breaks long words) rather than widening the table."""
    movable: bool = False
    """May move into the ``collect_into`` column when the table is too wide; the last moves first."""


Cell = Text | str
"""A plain ``str`` is printed as is (never read as Rich markup: an error message may hold ``[``)."""


def _lines(cell: Text) -> list[str]:
    return cell.plain.splitlines() or [""]


def _natural(header: str, cells: Sequence[Text]) -> int:
    return max([len(header)] + [Text(line).cell_len for cell in cells for line in _lines(cell)])


def _chrome(column_count: int) -> int:
    """Borders and padding of a table with Rich's default box: ``│ a │ b │``."""
    return column_count * (2 * _PADDING + 1) + 1


def fitted_table(
    *,
    title: str,
    columns: Sequence[Column],
    rows: Sequence[Sequence[Cell]],
    width: int,
    collect_into: str,
) -> Table:
    """A table of ``rows`` at most ``width`` wide (when its whole columns allow it), nothing dropped."""
    headers = [column.header for column in columns]
    if collect_into not in headers or not columns[headers.index(collect_into)].folds:
        raise ValueError(f"collect_into must name a folding column: {collect_into!r}")
    if columns[headers.index(collect_into)].movable:
        raise ValueError(f"collect_into must name a column that stays: {collect_into!r}")
    cells = [[cell if isinstance(cell, Text) else Text(cell) for cell in row] for row in rows]
    kept = list(columns)
    table_cells = {column.header: [row[index] for row in cells] for index, column in enumerate(columns)}

    movable = [column for column in kept if column.movable]
    while movable and sum(_minimum(column, table_cells) for column in kept) + _chrome(len(kept)) > width:
        moved = movable.pop()
        kept.remove(moved)
        for target, value in zip(table_cells[collect_into], table_cells.pop(moved.header), strict=True):
            if value.plain:
                target.append("\n" if target.plain else "")
                target.append(f"{moved.header}: ")
                target.append_text(value)

    widths = _widths(kept, table_cells, width - _chrome(len(kept)))
    # The title folds too (a console in soft-wrap mode would otherwise print it on one line).
    table = Table(title=Text(title, no_wrap=False, overflow="fold"), title_justify="left")
    for column in kept:
        table.add_column(
            column.header,
            width=widths[column.header] if widths else None,
            no_wrap=not column.folds,
            overflow="fold" if column.folds else "ellipsis",
        )
    for index in range(len(cells)):
        table.add_row(*(table_cells[column.header][index] for column in kept))
    return table


def _minimum(column: Column, table_cells: dict[str, list[Text]]) -> int:
    natural = _natural(column.header, table_cells[column.header])
    return min(natural, FOLDED_MIN_WIDTH) if column.folds else natural


def _widths(kept: Sequence[Column], table_cells: dict[str, list[Text]], room: int) -> dict[str, int] | None:
    """Each column's content width: whole ones at their widest cell, folding ones sharing what is left.

    ``None`` when even the minimums do not fit: Rich then shrinks the columns and marks each cut.
    """
    widths = {column.header: _minimum(column, table_cells) for column in kept}
    spare = room - sum(widths.values())
    if spare < 0:
        return None
    growing = [column.header for column in kept if column.folds]
    naturals = {header: _natural(header, table_cells[header]) for header in growing}
    while spare > 0 and growing:
        for header in list(growing):
            if widths[header] >= naturals[header]:
                growing.remove(header)
            elif spare > 0:
                widths[header] += 1
                spare -= 1
    return widths
