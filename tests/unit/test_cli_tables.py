"""Tables that fit: whole columns stay whole, folding ones wrap, movable ones move under the row."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from kairos.cli_tables import Column, fitted_table

COLUMNS = (Column("name"), Column("kind", movable=True), Column("note", folds=True))
ROWS = [["a-rather-long-task-name", "crawler", "the source refused the request; the next slot tries again"]]


def render(width: int, rows: list[list[str]] = ROWS) -> list[str]:
    console = Console(width=width, file=io.StringIO(), soft_wrap=True)
    console.print(fitted_table(title="t", columns=COLUMNS, rows=rows, width=width, collect_into="note"))
    output = console.file.getvalue()  # type: ignore[attr-defined]
    return [str(line) for line in output.splitlines()]


def test_a_wide_console_gets_every_column_on_one_line() -> None:
    lines = render(200)

    assert any("a-rather-long-task-name │ crawler │ the source refused" in line for line in lines)


def test_a_narrow_console_moves_and_folds_but_keeps_every_value() -> None:
    lines = render(50)

    assert max(map(len, lines)) <= 50
    assert any("│ a-rather-long-task-name │" in line for line in lines)
    text = "".join("".join(line.split("│")[-2].split()) for line in lines if line.startswith("│"))
    assert "the source refused the request; the next slot tries again".replace(" ", "") in text
    assert "kind:crawler" in text


def test_whole_columns_wider_than_the_console_are_cut_with_a_mark() -> None:
    lines = render(20)

    assert any("…" in line for line in lines)


def test_the_collecting_column_must_fold_and_stay() -> None:
    with pytest.raises(ValueError, match="folding"):
        fitted_table(title="t", columns=COLUMNS, rows=ROWS, width=80, collect_into="name")
