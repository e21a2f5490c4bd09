"""The ``kairos data`` commands: what the stored market data looks like.

``kairos data gaps`` lists the trading days between a symbol's first and last stored daily bar (or
fund NAV) that have none (:mod:`kairos.operations.gaps`), of the deployed stage with ``--stage``
(its MarketData table found by :func:`kairos.operations.deployed.resolve_stage`), else of the
embedded DynamoDB.
"""

from __future__ import annotations

import re
import textwrap
from datetime import date
from enum import StrEnum
from typing import Annotated, Any

import typer

from kairos.cli import (
    DEFAULT_FILE,
    DEFAULT_STAGE,
    FileOption,
    JsonOption,
    KairosGroup,
    KairosTyper,
    _fail,
    _local_dynamodb,
    _plan,
    _print_json,
    _print_table,
)
from kairos.cli import services as cli_services
from kairos.cli_operations import LocalOption, ProfileOption, ReadStageOption, RegionOption, aws_errors, deployed_stage
from kairos.cli_tables import Cell, Column
from kairos.excerpts import excerpt
from kairos.operations.gaps import GapsReport, SeriesGaps, find_gaps
from kairos_runtime.tables import TableId
from kairos_runtime.tasks.market.model import AssetClass, trading_date_of
from kairos_runtime.tasks.market.trading_calendar import CalendarCache

data_app = KairosTyper(
    help="What the stored market data looks like: holes in daily series.", cls=KairosGroup, no_args_is_help=True
)

RANGES_SHOWN = 12
"""Gap ranges a table row lists before it counts the rest (``--json`` has them all)."""
SYMBOL_PATTERN = {
    AssetClass.INDEX: r"[0-9A-Z]{6}",
    AssetClass.STOCK: r"[0-9]{6}",
    AssetClass.ETF: r"[0-9]{6}",
    AssetClass.FUND: r"[0-9]{6}",
}


class Asset(StrEnum):
    STOCK = "STOCK"
    ETF = "ETF"
    INDEX = "INDEX"
    FUND = "FUND"


GAPS_COLUMNS = (
    Column("symbol"),
    Column("first"),
    Column("last"),
    Column("stored", movable=True),
    Column("missing"),
    Column("gaps (trading days without an item)", folds=True),
)


def _date(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _fail(f"{option}: {excerpt(text)} is not a date (YYYY-MM-DD)", code=2) from None


def _ranges(series: SeriesGaps) -> str:
    if not series.missing:
        return "none" if series.stored else "nothing stored"
    parts = [start.isoformat() if start == end else f"{start.isoformat()}..{end.isoformat()}"
             for start, end in series.ranges()]  # fmt: skip
    shown = ", ".join(parts[:RANGES_SHOWN])
    return shown + (f" and {len(parts) - RANGES_SHOWN} more" if len(parts) > RANGES_SHOWN else "")


def _rows(report: GapsReport) -> list[list[Cell]]:
    return [
        [
            each.symbol,
            each.first.isoformat() if each.first else "-",
            each.last.isoformat() if each.last else "-",
            str(each.stored),
            str(len(each.missing)),
            _ranges(each),
        ]
        for each in report.series
    ]


def _report(table: Any, asset: AssetClass, *, start: date | None, end: date, symbol: str | None) -> GapsReport:
    calendar = CalendarCache().get(table)
    return find_gaps(table, asset, calendar, start=start, end=end, symbol=symbol)


@data_app.command()
def gaps(
    asset: Annotated[Asset, typer.Option("--asset", "-a", help="The asset class whose daily series are checked.")],
    symbol: Annotated[
        str | None, typer.Option("--symbol", help="Only this symbol (default: every listed one).")
    ] = None,
    from_: Annotated[
        str | None, typer.Option("--from", help="First date checked, YYYY-MM-DD (default: the first stored).")
    ] = None,
    to: Annotated[str | None, typer.Option("--to", help="Last date checked (default: today in Shanghai).")] = None,
    file: FileOption = DEFAULT_FILE,
    stage: ReadStageOption = None,
    local: LocalOption = False,
    profile: ProfileOption = None,
    region: RegionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Trading days between a symbol's first and last stored daily bar (funds: NAV) with none, against
    the exchange calendar. Exit 0 whether or not there are gaps; --json for scripts."""
    asset_class = AssetClass(asset.value)
    if symbol is not None and not re.fullmatch(SYMBOL_PATTERN[asset_class], symbol):
        raise _fail(f"--symbol: {excerpt(symbol)} is not a {asset.value} code (six characters such as 600519)", code=2)
    start = _date(from_, "--from")
    end = _date(to, "--to") or trading_date_of(cli_services.clock())
    if start is not None and start > end:
        raise _fail(f"--from {start.isoformat()} is after --to {end.isoformat()}", code=2)
    plan = _plan(file, stage or DEFAULT_STAGE)
    if stage is None or local:
        from kairos.local.session import LocalStage

        with _local_dynamodb() as endpoint:
            local_stage = LocalStage(stage=plan.stage, endpoint=endpoint)
            local_stage.prepare_tables()
            report = _report(local_stage.table(TableId.MARKET_DATA), asset_class, start=start, end=end, symbol=symbol)
        where = f"stage {plan.stage}, local"
    else:
        deployed = deployed_stage(plan, profile, region)
        with aws_errors():
            table = deployed.session.resource("dynamodb").Table(deployed.table_names[TableId.MARKET_DATA])
            report = _report(table, asset_class, start=start, end=end, symbol=symbol)
        where = f"stage {plan.stage}, deployed"
    if as_json:
        _print_json({"stage": plan.stage, **report.as_json()})
        return
    window = f"{start.isoformat() if start else 'first stored'} to {end.isoformat()}"
    _print_table(
        title=f"Gaps in {asset.value} {report.kind} series, {where}, {window}",
        columns=GAPS_COLUMNS,
        rows=_rows(report),
        collect_into="gaps (trading days without an item)",
    )
    with_gaps = sum(1 for each in report.series if each.missing)
    notes = [
        f"{len(report.series)} symbol(s), {with_gaps} with gaps ({report.queries} queries)",
        f"calendar: {report.calendar}",
    ]
    if not report.series:
        notes.append("no symbol listed (none has an item on the last trading days up to --to): name one with --symbol")
    for note in notes:
        # Folded here: the console may be in soft-wrap mode (piped output), which never wraps.
        cli_services.console.print(textwrap.fill(note, width=max(cli_services.console.width, 40)), markup=False)


def register(app: typer.Typer) -> None:
    """Add the ``data`` command group to the ``kairos`` app."""
    app.add_typer(data_app, name="data")
