"""daily_summary: figures computed from what is stored, and the day's failed and skipped runs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from kairos_runtime.events import ScheduledEvent
from kairos_runtime.registry import DependencyGroup
from kairos_runtime.runs import ErrorKind, RunError, RunRecorder, RunStatus
from kairos_runtime.tasks import default_registry
from kairos_runtime.tasks.market.model import (
    AssetClass,
    BarKind,
    Provenance,
    Quote,
    bar_item,
    snapshot_items,
)
from kairos_runtime.tasks.market.writer import write_items
from tests.conftest import PROJECT_ROOT, FakeLambdaContext, scheduled_event
from tests.market.conftest import MARKET_TABLE, RUNS_TABLE, MakeRunner, market_items, run_record

DAY = date(2026, 11, 27)
SLOT = datetime(2026, 11, 27, 7, 15, tzinfo=UTC)
SUMMARY_SLOT = "2026-11-27T10:00:00Z"  # 18:00 in Shanghai
PROVENANCE = Provenance(source="seed", fetched_at=SLOT)


def latest(asset_class: AssetClass, symbol: str, change: str | None, turnover: str | None, *, slot: datetime = SLOT,
           currency: str | None = None, suspended: bool = False) -> dict[str, Any]:  # fmt: skip
    change_field, turnover_field = ("change_pct_24h", "volume_24h") if currency else ("change_pct", "turnover_cny")
    values: dict[str, Decimal | str] = {"price": Decimal(10)} if not suspended else {}
    if change is not None:
        values[change_field] = Decimal(change)
    if turnover is not None:
        values[turnover_field] = Decimal(turnover)
    quote = Quote(symbol=symbol, name=f"name of {symbol}", values=values, suspended=suspended, quote_currency=currency)
    _, item = snapshot_items(asset_class, quote, slot=slot, provenance=PROVENANCE, ttl=timedelta(days=7))
    return item


def bar(symbol: str, change: str, turnover: str, day: date = DAY, kind: BarKind = BarKind.RAW) -> dict[str, Any]:
    quote = Quote(
        symbol=symbol,
        name=None,
        values={"close": Decimal("1712.5"), "change_pct": Decimal(change), "turnover_cny": Decimal(turnover)},
        trading_date=day,
    )
    return bar_item(AssetClass.STOCK, kind, quote, provenance=PROVENANCE)


@pytest.fixture
def stored_day(dynamodb: Any) -> None:
    """A day of stored market data, plus items that must not count (other days, series, currencies)."""
    items = [
        latest(AssetClass.STOCK, "600519", "0.74", "4012345678"),
        latest(AssetClass.STOCK, "000001", "-1.25", "1360123456.78"),
        latest(AssetClass.STOCK, "300750", "3.50", "8612345678"),
        latest(AssetClass.STOCK, "000002", None, None, suspended=True),
        latest(AssetClass.STOCK, "601318", "0", "2000000000"),
        latest(AssetClass.STOCK, "002594", "9.99", "5000000000.5"),
        latest(AssetClass.STOCK, "688981", "-4.00", "2345678901"),
        latest(AssetClass.STOCK, "000858", "2.22", "1500000000"),
        latest(AssetClass.STOCK, "600036", "-0.50", "1200000000"),
        latest(AssetClass.STOCK, "601988", "5.00", "999", slot=SLOT - timedelta(days=1)),  # quoted yesterday
        bar("600519", "1.00", "4100000000"),  # the settled bar wins over the 15:15 quote
        bar("000001", "-9.00", "1", day=DAY - timedelta(days=1)),  # another day
        bar("600519", "50.00", "1", kind=BarKind.FORWARD_ADJUSTED),  # another series
        latest(AssetClass.ETF, "510300", "0.66", "3678123456"),
        latest(AssetClass.ETF, "159915", "-0.85", "1534567890"),
        latest(AssetClass.INDEX, "000300", "0.39", "341234567890"),
        latest(AssetClass.INDEX, "399001", "-0.31", "612345678901"),
        latest(AssetClass.CRYPTO, "bitcoin", "1.27", "45123456789.12", currency="usd"),
        latest(AssetClass.CRYPTO, "ethereum", "-1.15", "21123456789.5", currency="usd"),
        latest(AssetClass.CRYPTO, "bitcoin", "1.30", "330000000000", currency="cny"),  # another quote currency
    ]
    write_items(dynamodb.Table(MARKET_TABLE), items)


def record_run(dynamodb: Any, task: str, task_type: str, scheduled: str, status: RunStatus, *,
               error: RunError | None = None, reason: str | None = None) -> None:  # fmt: skip
    event = ScheduledEvent.parse(
        {"task": task, "task_type": task_type, "scheduled_time": scheduled, "execution_id": f"{task}-{scheduled}"}
    )
    recorder = RunRecorder(dynamodb.Table(RUNS_TABLE), ttl_days=90)
    started = event.scheduled_time + timedelta(seconds=5)
    key = recorder.start(event, runtime="python3.13", request_id="r", started_at=started)
    detail = {"reason": reason} if reason else {}
    recorder.finish(key, status=status, finished_at=started, duration_ms=1, detail=detail, error=error)


@pytest.fixture
def runs_of_the_day(dynamodb: Any) -> None:
    unreachable = RunError("SourceUnavailable", "Eastmoney could not be reached", ErrorKind.TRANSIENT)
    rate_limited = RunError("SourceUnavailable", "CoinGecko: rate limited (HTTP 429)", ErrorKind.TRANSIENT)
    record_run(dynamodb, "stock-spot", "stock_spot", "2026-11-27T01:30:00Z", RunStatus.FAILED, error=unreachable)
    record_run(dynamodb, "stock-spot", "stock_spot", "2026-11-27T01:45:00Z", RunStatus.SUCCEEDED)
    record_run(dynamodb, "stock-daily", "stock_daily", "2026-11-27T07:30:00Z", RunStatus.SKIPPED, reason="held")
    record_run(dynamodb, "index-spot", "index_spot", "2026-11-27T02:10:00Z", RunStatus.SKIPPED, reason="paused")
    # 01:00 in Shanghai on the 27th, but the 26th in UTC: the other by_date partition.
    record_run(
        dynamodb, "crypto-markets", "crypto_markets", "2026-11-26T17:00:00Z", RunStatus.FAILED, error=rate_limited
    )
    # 23:50 in Shanghai on the 26th: not this day.
    record_run(
        dynamodb, "crypto-markets", "crypto_markets", "2026-11-26T15:50:00Z", RunStatus.FAILED, error=rate_limited
    )
    record_run(dynamodb, "python-task-1", "simple_task_1", "2026-11-27T03:00:00Z", RunStatus.FAILED, error=unreachable)


def summaries(dynamodb: Any) -> dict[str, dict[str, Any]]:
    return {pk.removeprefix("SUMMARY#"): item for (pk, sk), item in market_items(dynamodb).items()
            if pk.startswith("SUMMARY#")}  # fmt: skip


@pytest.mark.usefixtures("stored_day", "runs_of_the_day")
def test_each_asset_class_is_summarised_from_the_stored_day(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext
) -> None:
    event = scheduled_event("daily-summary", "daily_summary", scheduled_time=SUMMARY_SLOT)

    response = make_runner().dispatch(event, lambda_context)

    assert response["status"] == "SUCCEEDED"
    by_class = summaries(dynamodb)
    assert set(by_class) == {"STOCK", "ETF", "INDEX", "CRYPTO"}
    stock = by_class["STOCK"]
    assert (stock["pk"], stock["sk"], stock["gsi1pk"], stock["gsi1sk"]) == (
        "SUMMARY#STOCK",
        "DAY#2026-11-27",
        "SUMMARY#DAY#2026-11-27",
        "STOCK",
    )
    assert (stock["symbols"], stock["suspended"]) == (9, 1)
    assert (stock["advancers"], stock["decliners"], stock["unchanged"]) == (4, 3, 1)
    assert [mover["symbol"] for mover in stock["top_gainers"]] == ["002594", "300750", "000858", "600519", "601318"]
    assert [mover["symbol"] for mover in stock["top_losers"]] == ["688981", "000001", "600036", "601318", "600519"]
    assert stock["top_gainers"][3] == {
        "symbol": "600519", "change_pct": Decimal("1.00"), "name": "name of 600519", "last": Decimal("1712.5")
    }  # fmt: skip
    assert stock["total_turnover"] == Decimal("26118148036.28")
    assert stock["turnover_currency"] == "CNY"
    assert stock["sources"] == {"latest_quotes": 9, "daily_bars": 1}
    assert (stock["runs_failed"], stock["runs_skipped"]) == (1, 1)
    [failed] = stock["failed_runs"]
    assert failed == {
        "task": "stock-spot", "task_type": "stock_spot", "status": "FAILED", "scheduled_time": "2026-11-27T01:30:00Z",
        "error": "SourceUnavailable: Eastmoney could not be reached", "error_kind": "transient",
    }  # fmt: skip
    assert [(run["task"], run["reason"]) for run in stock["skipped_runs"]] == [("stock-daily", "held")]

    etf = by_class["ETF"]
    assert (etf["symbols"], etf["advancers"], etf["decliners"], etf["total_turnover"]) == (2, 1, 1, Decimal(5212691346))
    index = by_class["INDEX"]
    assert (index["advancers"], index["decliners"], index["runs_skipped"]) == (1, 1, 1)
    assert "total_turnover" not in index, "index turnovers overlap; their sum would mean nothing"
    crypto = by_class["CRYPTO"]
    assert (crypto["symbols"], crypto["total_turnover"], crypto["turnover_currency"]) == (
        2,
        Decimal("66246913578.62"),
        "USD",
    )
    assert [mover["symbol"] for mover in crypto["top_gainers"]] == ["bitcoin", "ethereum"]
    assert [run["scheduled_time"] for run in crypto["failed_runs"]] == ["2026-11-26T17:00:00Z"]

    record = run_record(dynamodb, "daily-summary")
    assert record["items_written"] == 4
    assert record["detail"]["classes"]["STOCK"] == {
        "symbols": 9, "advancers": 4, "decliners": 3, "runs_failed": 1, "runs_skipped": 1,
        "with_bar": 1, "missing": 8, "close_flags": 1,
    }  # fmt: skip
    # The day's universe is the 9 symbols quoted that day; only 600519 has a bar of the day.
    assert stock["coverage"]["universe"] == 9
    assert stock["coverage"]["missing"] == ["000001", "000002", "000858", "002594", "300750", "600036", "601318",
                                            "688981"]  # fmt: skip
    assert "coverage" not in crypto, "crypto has no daily bars to cover"


def priced(symbol: str, price: str | None, *, close: str | None = None) -> list[dict[str, Any]]:
    """A symbol's last spot quote of the day (at 14:45) and, with ``close``, its daily bar."""
    values = {"price": Decimal(price)} if price else {}
    quote = Quote(symbol=symbol, name=None, values=values, suspended=price is None)
    slot = datetime(2026, 11, 27, 6, 45, tzinfo=UTC)
    _, latest_item = snapshot_items(AssetClass.STOCK, quote, slot=slot, provenance=PROVENANCE, ttl=timedelta(days=7))
    items = [latest_item]
    if close is not None:
        settled = Quote(symbol=symbol, name=None, values={"close": Decimal(close)}, trading_date=DAY)
        items.append(bar_item(AssetClass.STOCK, BarKind.RAW, settled, provenance=PROVENANCE))
    return items


@pytest.mark.parametrize(("tolerance", "flagged"), [(None, ["600036"]), (0.5, ["600036", "600519"])])
def test_coverage_and_closes_far_from_the_last_spot_price_are_reported(
    make_runner: MakeRunner,
    dynamodb: Any,
    lambda_context: FakeLambdaContext,
    tolerance: float | None,
    flagged: list[str],
) -> None:
    items = [
        *priced("600519", "10.00", close="10.10"),  # 1 % from the 14:45 quote
        *priced("600036", "20.00", close="21.00"),  # 5 %: flagged at the default 2 %
        *priced("601318", "30.00"),  # quoted, but no bar yet: missing
        *priced("000002", None),  # suspended: in the universe, no bar
    ]
    orphan = Quote(symbol="300750", name=None, values={"close": Decimal(200)}, trading_date=DAY)
    items.append(bar_item(AssetClass.STOCK, BarKind.RAW, orphan, provenance=PROVENANCE))  # no spot quote
    write_items(dynamodb.Table(MARKET_TABLE), items)
    params: dict[str, object] = {"asset_classes": ["STOCK"]}
    if tolerance is not None:
        params["close_tolerance_pct"] = tolerance

    make_runner().dispatch(
        scheduled_event("daily-summary", "daily_summary", params, scheduled_time=SUMMARY_SLOT), lambda_context
    )

    stock = summaries(dynamodb)["STOCK"]
    assert stock["coverage"] == {"universe": 4, "with_bar": 2, "missing_count": 2, "missing": ["000002", "601318"]}
    check = stock["close_vs_spot"]
    assert (check["compared"], check["flagged_count"], check["stored"]) == (2, len(flagged), "the daily bar's close")
    assert check["tolerance_pct"] == Decimal(str(tolerance or 2.0))
    assert [flag["symbol"] for flag in check["flagged"]] == flagged
    assert check["flagged"][0] == {
        "symbol": "600036",
        "close": Decimal(21),
        "spot_price": Decimal(20),
        "spot_time": "2026-11-27T06:45:00Z",
        "difference_pct": Decimal("5.00"),
    }
    assert stock["sources"] == {"latest_quotes": 4, "daily_bars": 3}


def test_funds_are_summarised_from_the_navs_of_the_day(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext
) -> None:
    from kairos_runtime.tasks.market.model import nav_item

    navs = [("000001", "1.06", "1.234"), ("110022", "-0.64", "3.876"), ("000041", "0.19", "1.052")]
    items = [
        nav_item(
            Quote(symbol=code, name=None, values={"change_pct": Decimal(change), "unit_nav": Decimal(unit)},
                  trading_date=DAY),
            provenance=PROVENANCE,
        )
        for code, change, unit in navs
    ]  # fmt: skip
    write_items(dynamodb.Table(MARKET_TABLE), items)

    make_runner().dispatch(
        scheduled_event("daily-summary", "daily_summary", {"asset_classes": ["FUND"]}, scheduled_time=SUMMARY_SLOT),
        lambda_context,
    )

    fund = summaries(dynamodb)["FUND"]
    assert (fund["symbols"], fund["advancers"], fund["decliners"], fund["sources"]) == (3, 2, 1, {"navs": 3})
    assert fund["top_gainers"][0] == {"symbol": "000001", "change_pct": Decimal("1.06"), "last": Decimal("1.234")}
    assert {"coverage", "close_vs_spot", "total_turnover"}.isdisjoint(fund)


@pytest.mark.usefixtures("runs_of_the_day")
def test_a_class_with_only_failed_runs_still_gets_a_summary(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext
) -> None:
    event = scheduled_event("daily-summary", "daily_summary", {"asset_classes": ["STOCK", "ETF"]},
                            scheduled_time=SUMMARY_SLOT)  # fmt: skip

    make_runner().dispatch(event, lambda_context)

    by_class = summaries(dynamodb)
    assert set(by_class) == {"STOCK"}, "ETF had neither data nor failures; the other classes were not asked for"
    assert (by_class["STOCK"]["symbols"], by_class["STOCK"]["runs_failed"]) == (0, 1)


@pytest.mark.usefixtures("stored_day")
def test_a_date_can_be_summarised_again_later_and_overwrites(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext
) -> None:
    later = scheduled_event("daily-summary", "daily_summary", {"trading_date": "2026-11-27", "top": 2},
                            scheduled_time="2026-11-30T10:00:00Z")  # fmt: skip
    runner = make_runner()

    runner.dispatch(later, lambda_context)
    runner.dispatch({**later, "execution_id": "again"}, lambda_context)

    by_class = summaries(dynamodb)
    assert len(by_class) == 4
    assert [mover["symbol"] for mover in by_class["STOCK"]["top_gainers"]] == ["002594", "300750"]


def test_a_day_with_nothing_stored_or_run_is_skipped(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext
) -> None:
    response = make_runner().dispatch(
        scheduled_event("daily-summary", "daily_summary", scheduled_time=SUMMARY_SLOT), lambda_context
    )

    assert response["status"] == "SKIPPED"
    assert run_record(dynamodb, "daily-summary")["detail"]["reason"] == "nothing was stored or run for 2026-11-27"


def test_the_summary_is_a_core_task_that_never_loads_pandas() -> None:
    assert default_registry().get("daily_summary").group is DependencyGroup.CORE
    # Run it for real in a fresh interpreter (moto in-process) and look at what got imported.
    script = textwrap.dedent(
        """
        import logging, sys
        import boto3
        from moto import mock_aws
        from kairos.local.tables import ensure_tables, tables_from_designs
        from kairos_runtime.context import Clients
        from kairos_runtime.runner import TaskRunner
        from kairos_runtime.settings import RuntimeSettings
        from kairos_runtime.tasks import default_registry

        class Invocation:
            aws_request_id = "r"
            def get_remaining_time_in_millis(self):
                return 60000

        with mock_aws():
            resource = boto3.resource("dynamodb", region_name="us-east-1")
            tables = tables_from_designs("test")
            ensure_tables(resource.meta.client, tables)
            settings = RuntimeSettings(table_names={table.table_id: table.name for table in tables})
            runner = TaskRunner(registry=default_registry(), settings=settings,
                                clients=Clients(settings, resource_factory=lambda: resource),
                                logger=logging.getLogger("probe"))
            event = {"task": "daily-summary", "task_type": "daily_summary", "params": {},
                     "scheduled_time": "2026-11-27T10:00:00Z", "execution_id": "x"}
            status = runner.dispatch(event, Invocation())["status"]
        print(status, sorted(m for m in ("pandas", "numpy", "akshare", "pycoingecko") if m in sys.modules))
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "x",
            "PYTHONPATH": str(PROJECT_ROOT / "lambdas" / "python"),
        },
        check=False,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "SKIPPED []"
