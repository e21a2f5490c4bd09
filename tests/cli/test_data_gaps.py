"""kairos data gaps: holes in stored daily series, locally (moto server) and on a deployed stage (moto)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kairos import cli
from kairos.local.dynamodb import DynamoEndpoint
from kairos.local.session import LocalStage
from kairos.operations.gaps import series_gaps
from kairos.plan import StagePlan
from kairos_runtime.tables import TableId
from kairos_runtime.tasks.market.model import AssetClass, BarKind, Provenance, Quote, bar_item, nav_item
from kairos_runtime.tasks.market.trading_calendar import default_calendar
from tests.cli.test_cli import fixed_endpoint
from tests.cli.test_operations import aws, physical, plan, tasks_file  # noqa: F401 - fixtures of the deployed stage
from tests.conftest import PROJECT_ROOT

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)  # Friday evening in Shanghai
PROVENANCE = Provenance(source="seed", fetched_at=NOW)
TASKS = str(PROJECT_ROOT / "tasks.yaml")


def days(*numbers: int, month: int = 11) -> list[date]:
    return [date(2026, month, number) for number in numbers]


def bars(symbol: str, dates: Iterable[date], asset_class: AssetClass = AssetClass.STOCK) -> list[dict[str, Any]]:
    return [
        bar_item(
            asset_class,
            BarKind.RAW,
            Quote(symbol=symbol, name=None, values={"close": Decimal(10)}, trading_date=day),
            provenance=PROVENANCE,
        )
        for day in dates
    ]


def invoke(*args: str, columns: int = 200) -> Any:
    return CliRunner().invoke(cli.app, ["data", "gaps", *args], env={"COLUMNS": str(columns)})


@pytest.fixture
def local_market(local_dynamodb: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(cli.services, "endpoint", lambda: fixed_endpoint(local_dynamodb))
    monkeypatch.setattr(cli.services, "clock", lambda: NOW)
    stage = LocalStage(stage="dev", endpoint=DynamoEndpoint(url=local_dynamodb, embedded=False))
    stage.prepare_tables()
    table = stage.table(TableId.MARKET_DATA)
    items = [
        # 600519: the 19th and the 24th-25th are missing; the weekend of the 21st-22nd is no gap.
        *bars("600519", days(16, 17, 18, 20, 23, 26, 27)),
        *bars("000001", days(23, 24, 25, 26, 27)),
        *bars("300750", days(2, 3)),  # no bar on the last trading days: not listed without --symbol
        *bars("600519", days(19), asset_class=AssetClass.ETF),  # another class
        bar_item(  # another series (forward-adjusted) of the same stock
            AssetClass.STOCK,
            BarKind.FORWARD_ADJUSTED,
            Quote(symbol="600519", name=None, values={"close": Decimal(9)}, trading_date=date(2026, 11, 19)),
            provenance=PROVENANCE,
        ),
    ]
    with table.batch_writer() as writer:
        for item in items:
            writer.put_item(Item=item)
    return table


def test_gaps_are_the_trading_days_without_a_bar_between_the_first_and_last(local_market: Any) -> None:
    result = invoke("--asset", "STOCK", "--file", TASKS, "--json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["stage"], report["asset"], report["series"], report["to"]) == ("dev", "STOCK", "DAY", "2026-11-27")
    by_symbol = {each["symbol"]: each for each in report["symbols"]}
    assert set(by_symbol) == {"600519", "000001"}
    assert by_symbol["600519"] == {
        "symbol": "600519",
        "stored": 7,
        "first": "2026-11-16",
        "last": "2026-11-27",
        "missing_count": 3,
        "missing": ["2026-11-19", "2026-11-24", "2026-11-25"],
        "ranges": [["2026-11-19", "2026-11-19"], ["2026-11-24", "2026-11-25"]],
    }
    assert by_symbol["000001"]["missing"] == []
    assert report["symbols_with_gaps"] == 1
    assert report["calendar"].startswith("akshare's bundled calendar")
    # The calendar, 5 index partitions to list the symbols, then one query per symbol.
    assert report["queries"] == 5 + 2


def test_a_symbol_and_a_range_limit_what_is_checked(local_market: Any) -> None:
    result = invoke("--asset", "STOCK", "--symbol", "600519", "--from", "2026-11-20", "--to", "2026-11-26",
                    "--file", TASKS, "--json")  # fmt: skip

    [series] = json.loads(result.stdout)["symbols"]
    assert (series["first"], series["last"], series["missing"]) == (
        "2026-11-20",
        "2026-11-26",
        ["2026-11-24", "2026-11-25"],
    )
    named = json.loads(invoke("--asset", "STOCK", "--symbol", "300750", "--file", TASKS, "--json").stdout)
    assert named["symbols"][0]["missing"] == [], "02 and 03 are consecutive sessions"


def test_the_table_fits_80_columns(local_market: Any) -> None:
    result = invoke("--asset", "STOCK", "--file", TASKS, columns=80)

    assert result.exit_code == 0, result.output
    assert all(len(line) <= 80 for line in result.stdout.splitlines()), [
        (len(x), x) for x in result.stdout.splitlines() if len(x) > 80
    ]
    assert "2026-11-24..2026-11-25" in result.stdout
    assert "2 symbol(s), 1 with gaps (7 queries)" in result.stdout


def test_fund_navs_are_checked_on_their_own_series(local_market: Any) -> None:
    navs = [
        nav_item(
            Quote(symbol="000041", name=None, values={"unit_nav": Decimal(1)}, trading_date=day), provenance=PROVENANCE
        )
        for day in days(20, 24, 25)
    ]
    for item in navs:
        local_market.put_item(Item=item)

    result = invoke("--asset", "FUND", "--file", TASKS, "--json")

    [series] = json.loads(result.stdout)["symbols"]
    assert (series["symbol"], series["missing"]) == ("000041", ["2026-11-23"])
    assert json.loads(result.stdout)["series"] == "NAV"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--symbol", "60051"], "--symbol: '60051' is not a STOCK code"),
        (["--from", "2026-13-01"], "--from: '2026-13-01' is not a date (YYYY-MM-DD)"),
        (["--from", "2026-11-27", "--to", "2026-11-01"], "--from 2026-11-27 is after --to 2026-11-01"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = invoke("--asset", "STOCK", *args, "--file", TASKS)

    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_an_unknown_asset_class_is_refused() -> None:
    result = invoke("--asset", "BOND", "--file", TASKS)

    assert result.exit_code == 2
    assert "BOND" in result.output


def test_a_deployed_stages_market_table_is_found_by_its_construct_path(
    aws: Any,  # noqa: F811 - the fixture
    plan: StagePlan,  # noqa: F811
    tasks_file: Path,  # noqa: F811
) -> None:
    table = aws.resource("dynamodb").Table(physical(aws, plan, "Tables/MarketData/Resource"))
    for item in bars("510300", days(23, 25), asset_class=AssetClass.ETF):
        table.put_item(Item=item)

    result = invoke("--asset", "ETF", "--symbol", "510300", "--stage", "dev", "--file", str(tasks_file), "--json")

    assert result.exit_code == 0, result.output
    [series] = json.loads(result.stdout)["symbols"]
    assert series["missing"] == ["2026-11-24"]


def test_runs_of_missing_days_follow_the_calendar_across_a_holiday() -> None:
    calendar = default_calendar()
    stored = {date(2026, 9, 28), date(2026, 10, 9)} | {date(2026, 10, 12) + timedelta(days=0)}

    gaps = series_gaps("600519", stored, calendar)

    # 09-29, 09-30 and 10-08 are sessions; 10-01..10-07 is the National Day holiday: one run.
    assert [(start.isoformat(), end.isoformat()) for start, end in gaps.ranges()] == [("2026-09-29", "2026-10-08")]
    assert [day.isoformat() for day in gaps.missing] == ["2026-09-29", "2026-09-30", "2026-10-08"]
