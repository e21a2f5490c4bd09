"""The trading calendar: refreshed from Sina through akshare's own decoder into MarketData, read by
the A-share tasks (cached, with the bundled file as fallback), and reporting how many days it has left."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
import responses
from botocore.exceptions import ClientError

from kairos_runtime.tasks.market import trading_calendar
from kairos_runtime.tasks.market.calendar_refresh import Problem, review
from kairos_runtime.tasks.market.trading_calendar import CalendarCache, default_calendar
from tests.conftest import FakeLambdaContext, scheduled_event
from tests.market.conftest import (
    MARKET_TABLE,
    SINA_TRADE_DATES_URL,
    MakeRunner,
    add_stock_spot,
    market_items,
    run_record,
    run_records,
)
from tests.market.sina_calendar import sina_trade_dates_body

REFRESH_SLOT = "2026-12-01T00:00:00Z"  # 08:00 in Shanghai on 2026-12-01, the monthly slot
AKSHARE_ADDS = date(1992, 5, 4)
"""A session Sina's file lacks; akshare adds it to what it decodes (and its bundled file has it)."""

# 2027 as the exchanges would publish it, constructed for these tests (Sina's real 2027 list is not
# out yet): New Year, Spring Festival, Qingming, Labour Day, Dragon Boat, Mid-Autumn, National Day.
HOLIDAYS_2027 = {
    date(2027, 1, 1),
    *(date(2027, 2, day) for day in (8, 9, 10, 11, 12)),
    date(2027, 4, 5),
    *(date(2027, 5, day) for day in (3, 4, 5)),
    date(2027, 6, 9),
    date(2027, 9, 15),
    *(date(2027, 10, day) for day in (1, 4, 5, 6, 7)),
}


def weekdays(first: date, last: date) -> list[date]:
    return [
        first + timedelta(days=n) for n in range((last - first).days + 1) if (first + timedelta(days=n)).weekday() < 5
    ]


def sessions_2027() -> list[date]:
    return [day for day in weekdays(date(2027, 1, 1), date(2027, 12, 31)) if day not in HOLIDAYS_2027]


def sina_dates(extra: list[date] | None = None, *, through_2027: bool = True) -> list[date]:
    """Sina's list: the bundled history without the session akshare patches in, then 2027."""
    history = sorted(day for day in default_calendar().trade_dates if day != AKSHARE_ADDS)
    return history + (sessions_2027() if through_2027 else []) + (extra or [])


def serve_sina(http: responses.RequestsMock, dates: list[date]) -> None:
    http.add(responses.GET, SINA_TRADE_DATES_URL, body=sina_trade_dates_body(dates))


def refresh(
    make_runner: MakeRunner, lambda_context: FakeLambdaContext, execution_id: str = "exec-1", *, rerun: bool = False
) -> dict[str, Any]:
    """One refresh of the slot; ``rerun`` runs a slot that is done again (a later one would not run)."""
    event = scheduled_event(
        "trading-calendar", "trading_calendar", scheduled_time=REFRESH_SLOT, execution_id=execution_id, rerun=rerun
    )
    return make_runner().dispatch(event, lambda_context)


def calendar_items(dynamodb: Any) -> dict[str, dict[str, Any]]:
    return {sk: item for (pk, sk), item in market_items(dynamodb).items() if pk == "CALENDAR#XSHG"}


def test_a_refresh_stores_sinas_calendar_a_year_an_item_with_a_meta_item(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    serve_sina(http, sina_dates())

    response = refresh(make_runner, lambda_context)

    assert response["status"] == "SUCCEEDED"
    items = calendar_items(dynamodb)
    assert set(items) == {"META"} | {f"YEAR#{year}" for year in range(1990, 2028)}
    meta = items["META"]
    assert (meta["first_known_date"], meta["last_known_date"]) == ("1990-12-19", "2027-12-31")
    assert meta["source"] == "Sina (akshare.tool_trade_date_hist_sina)"
    assert meta["fetched_at"].endswith("Z")
    year = items["YEAR#2027"]
    assert year["trade_dates"] == [day.isoformat() for day in sessions_2027()]
    assert year["trade_date_count"] == 244
    assert "1992-05-04" in items["YEAR#1992"]["trade_dates"], "akshare's own patch ran on the decoded list"
    record = run_record(dynamodb, "trading-calendar")
    detail = record["detail"]
    assert record["items_written"] == 39
    assert (detail["last_known_date"], detail["previous_last_known_date"]) == ("2027-12-31", None)
    assert detail["years_changed"] == list(range(1990, 2028))
    assert detail["calendar_days_left"] == 395
    assert detail["gauges"] == {"TradingCalendarDaysLeft": 395}
    assert detail["calendar"].startswith("MarketData calendar from Sina (akshare.tool_trade_date_hist_sina), fetched ")
    assert "calendar_warning" not in detail


def test_running_the_refresh_again_with_the_same_data_changes_nothing_but_the_meta(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    for _ in range(3):
        serve_sina(http, sina_dates())

    refresh(make_runner, lambda_context, "first")
    first = calendar_items(dynamodb)
    refresh(make_runner, lambda_context, "second", rerun=True)
    refresh(make_runner, lambda_context, "third", rerun=True)

    after = calendar_items(dynamodb)
    assert set(after) == set(first)
    assert all(after[sk] == first[sk] for sk in first if sk != "META"), "year items are not rewritten"
    assert {key: value for key, value in after["META"].items() if key != "fetched_at"} == {
        key: value for key, value in first["META"].items() if key != "fetched_at"
    }
    records = sorted(run_records(dynamodb, "trading-calendar"), key=lambda record: record["execution_id"])
    assert [(record["execution_id"], record["status"], record["items_written"]) for record in records] == [
        ("first", "SUCCEEDED", 39),
        ("second", "SUCCEEDED", 1),
        ("third", "SUCCEEDED", 1),
    ]
    assert records[1]["detail"]["years_changed"] == []
    assert records[1]["detail"]["previous_last_known_date"] == "2027-12-31"


@pytest.mark.parametrize(
    ("dates", "problem"),
    [
        # 2025's National Day holiday reported as a session: disagrees with the bundled file.
        (sina_dates([date(2025, 10, 1)]), {"disagrees_with_bundled": 1}),
        # 2027 by the weekday rule (no holidays at all): 261 sessions cannot be a year.
        (
            sina_dates(through_2027=False) + weekdays(date(2027, 1, 1), date(2027, 12, 31)),
            {"implausible_year_count": 1},
        ),
    ],
)
def test_a_calendar_that_fails_a_check_is_refused_and_nothing_is_written(
    make_runner: MakeRunner,
    dynamodb: Any,
    lambda_context: FakeLambdaContext,
    http: responses.RequestsMock,
    dates: list[date],
    problem: dict[str, int],
) -> None:
    serve_sina(http, sorted(dates))

    response = refresh(make_runner, lambda_context)

    assert response["status"] == "FAILED"
    record = run_record(dynamodb, "trading-calendar")
    assert (record["error_type"], record["error_kind"]) == ("CalendarRejected", "permanent")
    assert "the stored calendar was kept" in record["error_message"]
    assert record["detail"]["rejected"] == problem
    assert record["detail"]["gauges"] == {"TradingCalendarDaysLeft": 30}, "the bundled file's days left, still reported"
    assert calendar_items(dynamodb) == {}


def test_a_calendar_shorter_than_the_stored_one_is_refused(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    serve_sina(http, sina_dates())
    serve_sina(http, sina_dates(through_2027=False))
    refresh(make_runner, lambda_context, "first")
    stored = calendar_items(dynamodb)

    response = refresh(make_runner, lambda_context, "second", rerun=True)

    assert response["status"] == "FAILED"
    assert calendar_items(dynamodb) == stored
    [failed] = [record for record in run_records(dynamodb, "trading-calendar") if record["status"] == "FAILED"]
    assert failed["detail"]["rejected"] == {"shorter_than_stored": 1}


def test_the_checks_count_every_problem() -> None:
    bundled = default_calendar()
    raw: list[object] = [date(2026, 12, 1), date(2026, 11, 30), date(2026, 11, 30), date(2026, 12, 5), "soon", None]

    _, problems, examples = review(raw, bundled=bundled, stored_last=date(2027, 12, 31))

    assert problems == {
        Problem.INVALID_DATE: 2,
        Problem.NOT_SORTED: 1,
        Problem.DUPLICATE_DATE: 1,
        Problem.WEEKEND_DATE: 1,  # 2026-12-05 is a Saturday
        Problem.DISAGREES_WITH_BUNDLED: 4,  # 2026-12-02 to 12-04 missing, the Saturday added
        Problem.SHORTER_THAN_STORED: 1,
    }
    assert {"problem": "weekend_date", "value": "2026-12-05"} in examples
    _, nothing, _ = review([], bundled=bundled, stored_last=None)
    assert nothing == {Problem.NO_DATES: 1}


def test_the_a_share_tasks_decide_with_the_stored_calendar_once_it_is_refreshed(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    serve_sina(http, sina_dates())
    refresh(make_runner, lambda_context)
    spring_festival = scheduled_event("stock-spot", "stock_spot", scheduled_time="2027-02-08T02:00:00Z")

    response = make_runner().dispatch(spring_festival, lambda_context)

    assert response["status"] == "SKIPPED", "the weekday rule would have stored the last session's quotes"
    detail = run_record(dynamodb, "stock-spot")["detail"]
    assert detail["reason"] == "2027-02-08 (Monday) is not a trading day in Shanghai/Shenzhen"
    assert detail["calendar"].startswith("MarketData calendar from Sina (akshare.tool_trade_date_hist_sina)")
    assert detail["calendar"].endswith("(1990-12-19 to 2027-12-31)")
    assert (detail["calendar_last_known_date"], detail["calendar_days_left"]) == ("2027-12-31", 326)
    assert len(http.calls) == 1, "only the refresh's request: the skipped run called no source"


def test_a_calendar_ending_within_30_days_warns_in_the_run_record_and_reports_its_days_left(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    add_stock_spot(http, session="2026-12-01")
    event = scheduled_event("stock-spot", "stock_spot", scheduled_time="2026-12-01T02:00:00Z")

    response = make_runner().dispatch(event, lambda_context)

    assert response["status"] == "SUCCEEDED"
    detail = run_record(dynamodb, "stock-spot")["detail"]
    assert detail["calendar"] == (
        "akshare's bundled calendar, no calendar stored in MarketData yet (1990-12-19 to 2026-12-31)"
    )
    assert (detail["calendar_last_known_date"], detail["calendar_days_left"]) == ("2026-12-31", 30)
    assert detail["gauges"] == {"TradingCalendarDaysLeft": 30}
    assert detail["calendar_warning"] == (
        "the trading calendar ends on 2026-12-31, in 30 day(s) (warning at 30): "
        "run the trading_calendar task to refresh it"
    )


def test_an_unreadable_table_falls_back_to_the_bundled_calendar_and_says_why(
    make_runner: MakeRunner,
    dynamodb: Any,
    lambda_context: FakeLambdaContext,
    http: responses.RequestsMock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    denied = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "Query")

    def refuse(table: Any, calendar: str = "XSHG") -> Any:
        raise denied

    monkeypatch.setattr(trading_calendar, "read_calendar_items", refuse)
    event = scheduled_event("stock-spot", "stock_spot", scheduled_time="2026-10-01T02:00:00Z")

    response = make_runner().dispatch(event, lambda_context)

    assert response["status"] == "SKIPPED"
    assert run_record(dynamodb, "stock-spot")["detail"]["calendar"] == (
        "akshare's bundled calendar, the MarketData calendar could not be read: AccessDeniedException "
        "(1990-12-19 to 2026-12-31)"
    )


def test_a_container_keeps_the_stored_calendar_for_six_hours_and_the_fallback_for_ten_minutes(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    now = [0.0]
    cache = CalendarCache(clock=lambda: now[0])
    table = dynamodb.Table(MARKET_TABLE)

    assert cache.get(table).last == date(2026, 12, 31), "nothing stored: the bundled file"
    serve_sina(http, sina_dates())
    refresh(make_runner, lambda_context)
    now[0] = 599.0
    assert cache.get(table).last == date(2026, 12, 31), "the fallback is kept for ten minutes"
    now[0] = 600.0
    stored = cache.get(table)
    assert stored.last == date(2027, 12, 31)
    table.delete_item(Key={"pk": "CALENDAR#XSHG", "sk": "META"})
    now[0] = 600.0 + 6 * 3600 - 1
    assert cache.get(table) is stored, "no table read within six hours"
    now[0] = 600.0 + 6 * 3600
    assert cache.get(table).last == date(2026, 12, 31), "a calendar without its meta item is not used"


@pytest.mark.parametrize(
    ("now", "days_left", "warns"),
    [("2026-12-01T02:00:00Z", 30, True), ("2026-11-30T15:59:00Z", 31, False)],  # 23:59 in Shanghai
)
def test_kairos_show_prints_the_calendars_known_end_for_an_a_share_task(
    monkeypatch: pytest.MonkeyPatch, now: str, days_left: int, warns: bool
) -> None:
    from rich.console import Console
    from typer.testing import CliRunner

    from kairos import cli
    from kairos_runtime.events import parse_instant
    from tests.conftest import PROJECT_ROOT

    monkeypatch.setattr(cli.services, "clock", lambda: parse_instant(now))
    monkeypatch.setattr(cli.services, "console", Console(width=400, highlight=False, soft_wrap=True))
    tasks_file = str(PROJECT_ROOT / "tasks.yaml")

    shown = CliRunner().invoke(cli.app, ["show", "stock-daily", "--file", tasks_file], catch_exceptions=False)
    simple = CliRunner().invoke(cli.app, ["show", "python-task-1", "--file", tasks_file], catch_exceptions=False)

    assert shown.exit_code == 0, shown.output
    assert f"ends 2026-12-31, {days_left} day(s) from today in Shanghai (akshare's bundled file" in shown.output
    assert ("the trading calendar ends on 2026-12-31, in 30 day(s)" in shown.output) is warns
    assert "trading calendar" not in simple.output
