"""stock_spot and stock_daily end to end: Eastmoney's payloads through akshare, the runner, moto."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests
import responses

from kairos_runtime.runner import TaskRunFailed
from tests.conftest import FakeLambdaContext, scheduled_event
from tests.market.conftest import (
    STOCK_SPOT_URL,
    MakeRunner,
    Throttling,
    add_kline,
    add_session_probe,
    add_stock_spot,
    fixture_json,
    market_items,
    query_params,
    run_record,
    run_records,
    sent_kwargs,
)

SLOT = datetime(2026, 11, 27, 6, 45, tzinfo=UTC)  # Friday 14:45 in Shanghai, in the afternoon session
SPOT_SK = "SPOT#2026-11-27T06:45:00Z"
BUNDLED_BASIS = "akshare's bundled calendar, no calendar stored in MarketData yet (1990-12-19 to 2026-12-31)"
STORED_SYMBOLS = {"STOCK#600519", "STOCK#000001", "STOCK#300750", "STOCK#000002"}


def spot_event(**overrides: Any) -> dict[str, object]:
    overrides.setdefault("scheduled_time", "2026-11-27T06:45:00Z")
    return scheduled_event("stock-spot", "stock_spot", overrides.pop("params", {}), **overrides)


def test_stock_spot_stores_every_valid_quote_and_reports_the_rest(
    make_runner: MakeRunner,
    dynamodb: Any,
    lambda_context: FakeLambdaContext,
    http: responses.RequestsMock,
    waits: list[float],
) -> None:
    add_stock_spot(http)

    response = make_runner(spot_ttl_days=3).dispatch(spot_event(), lambda_context)

    assert response["status"] == "SUCCEEDED"
    assert [query_params(call.request).get("pn") for call in http.calls] == [None, "1", "2"], "the session probe first"
    [page_pause] = waits
    assert 0.5 <= page_pause <= 1.5, "akshare's pause between pages (recorded, not slept)"
    items = market_items(dynamodb)
    assert set(items) == {(pk, sk) for pk in STORED_SYMBOLS for sk in (SPOT_SK, "LATEST")}
    moutai = items[("STOCK#600519", SPOT_SK)]
    # Positional columns land in the right fields: f23 is P/B, f9 P/E, f20 market cap, f5 volume in lots.
    assert moutai["pb"] == Decimal("8.1")
    assert moutai["pe_dynamic"] == Decimal("24.51")
    assert moutai["market_cap_cny"] == Decimal(2151234567890)
    assert moutai["volume_shares"] == Decimal(2345600)
    assert moutai["turnover_cny"] == Decimal(4012345678)
    assert (moutai["price"], moutai["high"], moutai["low"]) == (Decimal("1712.5"), Decimal(1720), Decimal("1699.8"))
    assert (moutai["name"], moutai["exchange"], moutai["currency"]) == ("贵州茅台", "SH", "CNY")
    assert moutai["source"] == "Eastmoney (akshare.stock_zh_a_spot_em)"
    assert moutai["fetched_at"].endswith("Z")
    assert moutai["snapshot_time"] == "2026-11-27T06:45:00Z"
    # A snapshot lives spot_ttl_days from the later of its slot and its write (this slot is in the past).
    written = datetime.fromisoformat(moutai["fetched_at"])
    assert written > SLOT
    assert moutai["expires_at"] == int((written + timedelta(days=3)).timestamp())
    numbers = [value for item in items.values() for value in item.values() if not isinstance(value, str)]
    assert numbers
    assert all(isinstance(value, Decimal) for value in numbers)
    latest = items[("STOCK#000001", "LATEST")]
    assert (latest["gsi1pk"], latest["gsi1sk"], latest["exchange"]) == ("STOCK#LATEST#2026-11-27", "000001", "SZ")
    assert "expires_at" not in latest
    suspended = items[("STOCK#000002", "LATEST")]
    assert suspended["status"] == "suspended"
    assert "price" not in suspended
    assert suspended["prev_close"] == Decimal("9.87"), "Eastmoney still sends a suspended stock's last close"
    assert suspended["market_cap_cny"] == Decimal(81234567890)

    record = run_record(dynamodb, "stock-spot")
    assert record["status"] == "SUCCEEDED"
    assert (record["items_written"], record["items_rejected"]) == (8, 2)
    detail = record["detail"]
    assert (detail["rows_received"], detail["valid"], detail["suspended"]) == (6, 3, 1)
    assert detail["rejected"] == {"high_below_low": 1, "negative_volume": 1}
    assert {example["symbol"] for example in detail["rejected_examples"]} == {"830799", "688981"}
    assert detail["trading_date"] == "2026-11-27"
    assert detail["calendar"] == BUNDLED_BASIS


def test_running_the_same_slot_again_overwrites_instead_of_adding(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    add_stock_spot(http)
    runner = make_runner()

    runner.dispatch(spot_event(execution_id="first"), lambda_context)
    first = market_items(dynamodb)
    runner.dispatch(spot_event(execution_id="second", rerun=True), lambda_context)

    assert set(market_items(dynamodb)) == set(first)
    assert len(first) == 8
    assert [record["status"] for record in run_records(dynamodb, "stock-spot")] == ["SUCCEEDED", "SUCCEEDED"]


def test_a_symbol_list_keeps_only_those_symbols(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    add_stock_spot(http)

    make_runner().dispatch(spot_event(params={"symbols": ["600519", "000002", "601398"]}), lambda_context)

    assert {pk for pk, _ in market_items(dynamodb)} == {"STOCK#600519", "STOCK#000002"}
    detail = run_record(dynamodb, "stock-spot")["detail"]
    assert (detail["symbols_missing"], detail["symbols_missing_count"]) == (["601398"], 1)
    assert (detail["rows_received"], detail["valid"], detail["suspended"]) == (6, 1, 1)


def test_a_throttled_batch_is_resent_until_every_item_is_written(
    make_runner: MakeRunner,
    dynamodb: Any,
    lambda_context: FakeLambdaContext,
    http: responses.RequestsMock,
    monkeypatch: pytest.MonkeyPatch,
    waits: list[float],
) -> None:
    add_stock_spot(http)
    throttled = Throttling(dynamodb.meta.client, hold_back=3)
    monkeypatch.setattr(dynamodb.meta.client, "batch_write_item", throttled)

    make_runner().dispatch(spot_event(), lambda_context)

    assert throttled.batch_sizes == [8, 3]
    assert len(market_items(dynamodb)) == 8
    record = run_record(dynamodb, "stock-spot")
    assert (record["status"], record["items_written"]) == ("SUCCEEDED", 8)
    assert record["detail"]["write_retried_items"] == 3


def test_a_source_with_no_valid_row_fails_the_run(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    only_suspended = fixture_json("stock_spot_page2")
    only_suspended["data"] = {"total": 1, "diff": only_suspended["data"]["diff"][:1]}
    add_session_probe(http, "2026-11-27")
    http.add(responses.GET, STOCK_SPOT_URL, json=only_suspended)

    response = make_runner().dispatch(spot_event(), lambda_context)

    assert response["status"] == "FAILED"
    record = run_record(dynamodb, "stock-spot")
    assert (record["error_type"], record["error_kind"]) == ("NoValidRows", "permanent")
    assert "sent 1 row(s) and none of them had a valid price" in record["error_message"]
    assert record["detail"]["suspended"] == 1
    assert market_items(dynamodb) == {}


@pytest.mark.parametrize(
    ("task_type", "slot", "weekday"),
    [
        ("stock_spot", "2026-11-28T02:00:00Z", "Saturday"),
        ("stock_spot", "2026-10-01T02:00:00Z", "Thursday"),
        ("stock_daily", "2026-10-01T07:30:00Z", "Thursday"),
        ("etf_spot", "2026-11-29T02:00:00Z", "Sunday"),
        ("index_daily", "2026-10-05T07:30:00Z", "Monday"),
    ],
)
def test_a_non_trading_day_is_skipped_without_calling_the_source(
    make_runner: MakeRunner,
    dynamodb: Any,
    lambda_context: FakeLambdaContext,
    http: responses.RequestsMock,
    task_type: str,
    slot: str,
    weekday: str,
) -> None:
    params: dict[str, object] = {"symbols": ["600519"]} if task_type.endswith("daily") else {}

    response = make_runner().dispatch(scheduled_event("probe", task_type, params, scheduled_time=slot), lambda_context)

    assert response["status"] == "SKIPPED"
    detail = run_record(dynamodb, "probe")["detail"]
    assert detail["reason"] == f"{slot[:10]} ({weekday}) is not a trading day in Shanghai/Shenzhen"
    assert detail["calendar"] == BUNDLED_BASIS
    assert len(http.calls) == 0


@pytest.mark.parametrize(
    ("slot", "shanghai", "runs"),
    [
        ("2026-11-27T01:15:00Z", "09:15", False),  # the opening auction: no continuous trading yet
        ("2026-11-27T01:30:00Z", "09:30", True),
        ("2026-11-27T03:30:00Z", "11:30", True),  # the morning close
        ("2026-11-27T03:45:00Z", "11:45", False),
        ("2026-11-27T04:30:00Z", "12:30", False),
        ("2026-11-27T05:00:00Z", "13:00", True),
        ("2026-11-27T07:00:00Z", "15:00", True),  # the close
        ("2026-11-27T07:15:00Z", "15:15", False),
    ],
)
def test_spot_slots_outside_the_trading_sessions_are_skipped_without_a_request(
    make_runner: MakeRunner,
    dynamodb: Any,
    lambda_context: FakeLambdaContext,
    http: responses.RequestsMock,
    slot: str,
    shanghai: str,
    runs: bool,
) -> None:
    if runs:
        add_stock_spot(http)

    response = make_runner().dispatch(spot_event(scheduled_time=slot), lambda_context)

    if runs:
        assert response["status"] == "SUCCEEDED"
        return
    assert response["status"] == "SKIPPED"
    detail = run_record(dynamodb, "stock-spot")["detail"]
    assert detail["reason"] == f"{shanghai} Shanghai time is outside the trading sessions (09:30-11:30, 13:00-15:00)"
    assert (detail["slot_shanghai"], detail["trading_date"]) == (shanghai, "2026-11-27")
    assert len(http.calls) == 0


def test_a_spot_task_can_ask_for_every_slot_of_a_trading_day(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    add_stock_spot(http)

    lunch = spot_event(scheduled_time="2026-11-27T04:30:00Z", params={"trading_hours_only": False})
    response = make_runner().dispatch(lunch, lambda_context)

    assert response["status"] == "SUCCEEDED"
    assert ("STOCK#600519", "SPOT#2026-11-27T04:30:00Z") in market_items(dynamodb)


def test_beyond_the_calendar_a_weekday_runs_and_the_record_says_how_it_was_decided(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    add_stock_spot(http, session="2027-01-04")

    response = make_runner().dispatch(spot_event(scheduled_time="2027-01-04T02:00:00Z"), lambda_context)

    assert response["status"] == "SUCCEEDED"
    assert run_record(dynamodb, "stock-spot")["detail"]["calendar"].startswith("weekday rule: 2027-01-04 is outside")
    assert ("STOCK#600519", "SPOT#2027-01-04T02:00:00Z") in market_items(dynamodb)


def test_a_connection_reset_is_retried_then_recorded_as_a_transient_failure(
    make_runner: MakeRunner,
    dynamodb: Any,
    lambda_context: FakeLambdaContext,
    http: responses.RequestsMock,
    waits: list[float],
) -> None:
    reset = requests.exceptions.ConnectionError(ConnectionResetError(104, "Connection reset by peer"))
    add_session_probe(http, "2026-11-27")
    http.add(responses.GET, STOCK_SPOT_URL, body=reset)

    with pytest.raises(TaskRunFailed):
        make_runner().dispatch(spot_event(), lambda_context)

    record = run_record(dynamodb, "stock-spot")
    assert (record["status"], record["error_type"], record["error_kind"]) == (
        "FAILED",
        "SourceUnavailable",
        "transient",
    )
    assert record["error_message"].startswith(
        "Eastmoney (akshare.stock_zh_a_spot_em) could not be reached for spot quotes: connection failed after"
    )
    attempts = int(record["detail"]["attempts"])
    assert attempts >= 2, "the default budget allows at least one retry of an instant failure"
    assert len(http.calls) == 1 + 3 * attempts, "the session probe, then akshare's own three tries per attempt"
    assert record["detail"]["trading_date"] == "2026-11-27"
    assert market_items(dynamodb) == {}


def test_an_http_5xx_that_outlasts_the_budget_is_transient(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    add_session_probe(http, "2026-11-27")
    http.add(responses.GET, STOCK_SPOT_URL, status=502, body="<html>502 Bad Gateway</html>")

    with pytest.raises(TaskRunFailed):
        make_runner().dispatch(spot_event(params={"max_retry_seconds": 0}), lambda_context)

    record = run_record(dynamodb, "stock-spot")
    assert (record["error_kind"], record["detail"]["attempts"]) == ("transient", 1)
    assert "HTTP 502 after 1 attempt(s)" in record["error_message"]


# ---- stock_daily -------------------------------------------------------------------------------

DAILY_SLOT = "2026-11-27T07:30:00Z"


def daily_event(
    symbols: list[str], slot: str = DAILY_SLOT, execution_id: str = "exec-1", *, rerun: bool = False, **params: object
) -> dict[str, object]:
    return scheduled_event(
        "stock-daily",
        "stock_daily",
        {"symbols": symbols, **params},
        scheduled_time=slot,
        execution_id=execution_id,
        rerun=rerun,
    )


def test_the_first_daily_run_fetches_the_lookback_and_stores_one_item_per_bar(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    add_kline(http, "1.600519", "stock_kline_600519", beg="20261028", end="20261127", fqt="0", klt="101")

    response = make_runner().dispatch(daily_event(["600519"], lookback_days=30), lambda_context)

    assert response["status"] == "SUCCEEDED"
    items = market_items(dynamodb)
    assert set(items) == {("STOCK#600519", f"DAY#2026-11-{day}") for day in (25, 26, 27)}
    bar = items[("STOCK#600519", "DAY#2026-11-27")]
    assert (bar["gsi1pk"], bar["gsi1sk"]) == ("STOCK#DAY#2026-11-27", "600519")
    assert (bar["open"], bar["close"], bar["high"], bar["low"]) == (
        Decimal(1700),
        Decimal("1712.5"),
        Decimal(1720),
        Decimal("1699.8"),
    )
    assert (bar["volume_shares"], bar["turnover_cny"]) == (Decimal(2345600), Decimal(4012345678))
    assert (bar["change_pct"], bar["turnover_rate_pct"], bar["adjust"]) == (Decimal("0.74"), Decimal("0.19"), "none")
    assert (bar["trading_date"], bar["exchange"], bar["record_type"]) == ("2026-11-27", "SH", "day")
    assert "expires_at" not in bar
    record = run_record(dynamodb, "stock-daily")
    assert (record["items_written"], record["detail"]["fetched_ranges"]) == (3, {"600519": "2026-10-28..2026-11-27"})


def test_later_runs_fetch_from_the_day_after_the_newest_stored_bar(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    add_kline(http, "1.600519", "stock_kline_600519", beg="20261028", end="20261127")
    add_kline(http, "1.600519", "stock_kline_600519", beg="20261128", end="20261130")
    add_kline(http, "1.600519", "stock_kline_600519", beg="20261130", end="20261130")
    runner = make_runner()

    runner.dispatch(daily_event(["600519"], execution_id="fri"), lambda_context)
    monday = "2026-11-30T07:30:00Z"
    runner.dispatch(daily_event(["600519"], monday, execution_id="mon"), lambda_context)
    # Monday's bars are stored now (the fixture's newest is the 27th, so a re-run of Monday's slot
    # asks from the 28th again); a bar of Monday itself makes the re-run fetch only Monday.
    dynamodb.Table("kairos-test-MarketData").put_item(Item={"pk": "STOCK#600519", "sk": "DAY#2026-11-30"})
    runner.dispatch(daily_event(["600519"], monday, execution_id="mon-again", rerun=True), lambda_context)

    ranges = [record["detail"]["fetched_ranges"]["600519"] for record in run_records(dynamodb, "stock-daily")]
    assert sorted(ranges) == ["2026-10-28..2026-11-27", "2026-11-28..2026-11-30", "2026-11-30..2026-11-30"]
    assert len(market_items(dynamodb)) == 4, "the same bars again overwrite, they do not pile up"


def test_a_bar_missing_mid_series_is_fetched_again_from_the_oldest_gap_in_the_window(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    # The 24th was rejected (or lost) by an earlier run; the 25th and 26th were stored after it.
    table = dynamodb.Table("kairos-test-MarketData")
    for day in ("2026-11-20", "2026-11-23", "2026-11-25", "2026-11-26"):
        table.put_item(Item={"pk": "STOCK#600519", "sk": f"DAY#{day}"})
    add_kline(http, "1.600519", "stock_kline_600519", beg="20261124", end="20261127")

    make_runner().dispatch(daily_event(["600519"], lookback_days=30), lambda_context)

    record = run_record(dynamodb, "stock-daily")
    assert record["detail"]["fetched_ranges"] == {"600519": "2026-11-24..2026-11-27"}
    assert record["items_written"] == 3


@pytest.mark.parametrize(
    ("stored", "lookback", "start"),
    [
        # 09-30 is the session before the National Day holiday (10-01 to 10-07): it is the gap.
        (("2026-09-29", "2026-10-08"), 30, "2026-09-30"),
        # The holiday itself is no gap: start after the newest bar.
        (("2026-09-30", "2026-10-08", "2026-10-09"), 30, "2026-10-10"),
        # A gap older than the window is out of reach: the window's own bars decide.
        (("2026-09-01", "2026-09-03", "2026-10-08", "2026-10-09"), 30, "2026-10-10"),
        # Every stored bar is older than the window: from the day after the newest, as before.
        (("2026-08-03",), 30, "2026-08-04"),
        ((), 30, "2026-09-12"),
        # More bars after the day than one page of the newest-first read (lookback + 2 keys): it
        # reads on to the window, where 10-09 (a Friday) is the gap.
        (("2026-10-08", "2026-10-12", *(f"2026-10-{day}" for day in range(13, 21))), 4, "2026-10-09"),
        # Only bars after the day: none in the window, so the day itself (never later).
        (tuple(f"2026-10-{day}" for day in range(13, 21)), 3, "2026-10-12"),
        # The day's own bar is stored: fetch it again rather than nothing.
        (("2026-10-09", "2026-10-12"), 3, "2026-10-12"),
    ],
)
def test_the_fetch_start_is_the_oldest_trading_day_gap_in_the_lookback_window(
    dynamodb: Any, stored: tuple[str, ...], lookback: int, start: str
) -> None:
    from datetime import date

    from kairos_runtime.tasks.market.a_shares import fetch_start
    from kairos_runtime.tasks.market.model import BarKind
    from kairos_runtime.tasks.market.trading_calendar import default_calendar

    table = dynamodb.Table("kairos-test-MarketData")
    for day in stored:
        table.put_item(Item={"pk": "STOCK#600519", "sk": f"DAY#{day}"})
    table.put_item(Item={"pk": "STOCK#600519", "sk": "DAYQFQ#2026-09-30"})  # another series: not a bar of this one

    found = fetch_start(table, "STOCK#600519", BarKind.RAW, date(2026, 10, 12), lookback, calendar=default_calendar())

    assert found.isoformat() == start


@pytest.mark.parametrize("lookback", [1, 4, 30])
def test_a_batch_reads_the_same_windows_and_starts_from_the_index_as_each_symbol_from_its_partition(
    dynamodb: Any, lookback: int
) -> None:
    import random
    from datetime import date

    from kairos_runtime.tasks.market.a_shares import stored_bars, stored_bars_of_batch
    from kairos_runtime.tasks.market.model import AssetClass, BarKind, class_date_pk
    from kairos_runtime.tasks.market.trading_calendar import default_calendar

    table = dynamodb.Table("kairos-test-MarketData")
    calendar = default_calendar()
    day = date(2026, 10, 12)
    span = [date(2026, 8, 1) + timedelta(days=offset) for offset in range(80)]  # before, in and after the window
    trading = [each for each in span if calendar.check(each).is_trading_day]
    chooser = random.Random(lookback)  # noqa: S311 - a repeatable test scenario, not a secret
    symbols = [f"6005{index:02d}" for index in range(41) if index != 20]
    with table.batch_writer() as batch:
        for position, symbol in enumerate(symbols):
            # Every shape: none, only old bars, only bars after the day, gaps, a full window.
            chosen = {0: [], 1: trading[:5], 2: [each for each in trading if each > day]}.get(
                position, chooser.sample(trading, chooser.randint(1, len(trading)))
            )
            for each in chosen:
                batch.put_item(
                    Item={
                        "pk": f"STOCK#{symbol}",
                        "sk": f"DAY#{each.isoformat()}",
                        "gsi1pk": class_date_pk(AssetClass.STOCK, BarKind.RAW.value, each),
                        "gsi1sk": symbol,
                    }
                )
        # A code inside the batch's range that the universe does not list, and another series's bar.
        batch.put_item(
            Item={"pk": "STOCK#600520", "sk": f"DAY#{day}", "gsi1pk": f"STOCK#DAY#{day}", "gsi1sk": "600520"}
        )
        batch.put_item(
            Item={"pk": "STOCK#600500", "sk": f"DAYQFQ#{day}", "gsi1pk": f"STOCK#DAYQFQ#{day}", "gsi1sk": "600500"}
        )

    together = stored_bars_of_batch(table, AssetClass.STOCK, BarKind.RAW, symbols, day, lookback, calendar=calendar)

    assert sorted(together) == symbols
    for symbol in symbols:
        alone = stored_bars(table, f"STOCK#{symbol}", BarKind.RAW, day, lookback)
        trading_window = frozenset(each for each in alone.window if calendar.check(each).is_trading_day)
        assert together[symbol].window == trading_window, symbol
        assert together[symbol].start(table, calendar=calendar) == alone.start(table, calendar=calendar), symbol


def test_a_batch_whose_symbols_all_hold_bars_reads_one_index_page_per_trading_day_of_the_window(
    dynamodb: Any,
) -> None:
    from datetime import date

    from kairos_runtime.tasks.market.a_shares import stored_bars_of_batch
    from kairos_runtime.tasks.market.model import AssetClass, BarKind, class_date_pk
    from kairos_runtime.tasks.market.trading_calendar import default_calendar

    table = dynamodb.Table("kairos-test-MarketData")
    calendar = default_calendar()
    day = date(2026, 10, 12)  # its window of 12 days holds the National Day holiday: 4 trading days
    symbols = [f"0000{index:02d}" for index in range(1, 51)]
    with table.batch_writer() as batch:
        for symbol in symbols:
            for each in (date(2026, 9, 30), date(2026, 10, 9)):
                batch.put_item(
                    Item={
                        "pk": f"STOCK#{symbol}",
                        "sk": f"DAY#{each.isoformat()}",
                        "gsi1pk": class_date_pk(AssetClass.STOCK, BarKind.RAW.value, each),
                        "gsi1sk": symbol,
                    }
                )
    queries: list[dict[str, Any]] = []
    table.meta.client.meta.events.register(
        "provide-client-params.dynamodb.Query", lambda params, **_: queries.append(params)
    )

    found = stored_bars_of_batch(table, AssetClass.STOCK, BarKind.RAW, symbols, day, 12, calendar=calendar)

    assert [query["ExpressionAttributeValues"][":pk"] for query in queries] == [
        "STOCK#DAY#2026-09-30",
        "STOCK#DAY#2026-10-08",
        "STOCK#DAY#2026-10-09",
        "STOCK#DAY#2026-10-12",
    ]
    assert {query.get("IndexName") for query in queries} == {"by_class_date"}
    assert {symbol: bars.start(table, calendar=calendar) for symbol, bars in found.items()} == dict.fromkeys(
        symbols, date(2026, 10, 8)
    )


def test_bad_bars_and_symbols_without_history_are_reported_and_the_rest_stored(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    add_kline(http, "1.600519", "stock_kline_600519")
    add_kline(http, "0.000001", "stock_kline_000001_bad")
    add_kline(http, "0.300750", "kline_empty")

    make_runner().dispatch(daily_event(["600519", "000001", "300750"]), lambda_context)

    record = run_record(dynamodb, "stock-daily")
    assert (record["status"], record["items_written"], record["items_rejected"]) == ("SUCCEEDED", 3, 1)
    assert record["detail"]["symbols_without_data"] == ["300750"]
    assert record["detail"]["rejected"] == {"high_below_low": 1}
    assert {pk for pk, _ in market_items(dynamodb)} == {"STOCK#600519"}


def test_no_history_for_any_symbol_fails_the_run(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    add_kline(http, "0.300750", "kline_empty")

    response = make_runner().dispatch(daily_event(["300750"]), lambda_context)

    assert response["status"] == "FAILED"
    record = run_record(dynamodb, "stock-daily")
    assert (record["error_type"], record["error_kind"]) == ("NoValidRows", "permanent")
    assert record["detail"]["symbols_without_data"] == ["300750"]


def test_adjusted_bars_are_a_series_of_their_own(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    add_kline(http, "1.600519", "stock_kline_600519", fqt="1")

    make_runner().dispatch(daily_event(["600519"], adjust="qfq"), lambda_context)

    bar = market_items(dynamodb)[("STOCK#600519", "DAYQFQ#2026-11-27")]
    assert (bar["gsi1pk"], bar["adjust"]) == ("STOCK#DAYQFQ#2026-11-27", "qfq")


def test_a_timeout_is_retried_and_the_run_succeeds(
    make_runner: MakeRunner,
    dynamodb: Any,
    lambda_context: FakeLambdaContext,
    http: responses.RequestsMock,
    waits: list[float],
) -> None:
    http.add(
        responses.GET,
        "https://push2his.eastmoney.com/api/qt/stock/kline/get",
        body=requests.exceptions.ConnectTimeout("connect timed out"),
    )
    add_kline(http, "1.600519", "stock_kline_600519")

    response = make_runner().dispatch(daily_event(["600519"], request_timeout_seconds=4), lambda_context)

    assert response["status"] == "SUCCEEDED"
    assert run_record(dynamodb, "stock-daily")["detail"]["retries"] == 1
    [backoff] = waits
    assert 0.5 <= backoff <= 1.0, "one backoff wait of the first step (1 s), with jitter"
    assert [sent_kwargs(call.request)["timeout"] for call in http.calls] == [4, 4], (
        "the task's timeout reaches requests"
    )


def test_an_unreachable_source_keeps_what_was_fetched_and_fails_as_transient(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    add_kline(http, "1.600519", "stock_kline_600519")
    http.add(
        responses.GET,
        "https://push2his.eastmoney.com/api/qt/stock/kline/get",
        body=requests.exceptions.ReadTimeout("read timed out"),
    )

    with pytest.raises(TaskRunFailed):
        make_runner().dispatch(daily_event(["600519", "000001"], max_retry_seconds=0), lambda_context)

    record = run_record(dynamodb, "stock-daily")
    assert (record["error_type"], record["error_kind"]) == ("SourceUnavailable", "transient")
    assert "daily bars of 000001: timed out" in record["error_message"]
    assert record["detail"]["items_written"] == 3
    assert len(market_items(dynamodb)) == 3


def test_a_long_symbol_list_is_counted_in_the_run_record_rather_than_listed() -> None:
    from kairos_runtime.tasks.market.a_shares import DETAIL_SYMBOLS, _DailyHarvest

    symbols = [f"{index:06d}" for index in range(DETAIL_SYMBOLS + 10)]
    harvest = _DailyHarvest(
        quotes=[],
        rejections=[],
        ranges=dict.fromkeys(symbols, "2026-11-27..2026-11-27"),
        without_data=symbols,
        errors=dict.fromkeys(symbols, "HTTP 404"),
    )

    detail = harvest.detail()

    assert detail["fetched_ranges_by_symbols"] == {"2026-11-27..2026-11-27": DETAIL_SYMBOLS + 10}
    assert "fetched_ranges" not in detail
    assert len(detail["symbols_without_data"]) == len(detail["symbol_errors"]) == DETAIL_SYMBOLS
    assert detail["symbols_with_errors"] == DETAIL_SYMBOLS + 10


def test_the_stages_https_proxy_carries_the_source_requests_and_nothing_else(
    make_runner: MakeRunner,
    dynamodb: Any,
    lambda_context: FakeLambdaContext,
    http: responses.RequestsMock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    add_stock_spot(http)
    proxy = "http://proxy.internal:3128"

    make_runner(https_proxy=proxy).dispatch(spot_event(), lambda_context)

    assert [sent_kwargs(call.request)["proxies"].get("https") for call in http.calls] == [proxy] * 3
    assert "HTTPS_PROXY" not in os.environ, "the proxy is set for the source calls only"
    assert run_record(dynamodb, "stock-spot")["status"] == "SUCCEEDED"


@pytest.mark.parametrize("sessions", [("2026-11-25", "2026-11-26"), ()])
def test_without_a_session_on_the_slots_date_the_list_is_not_crawled_and_the_run_is_skipped(
    make_runner: MakeRunner,
    dynamodb: Any,
    lambda_context: FakeLambdaContext,
    http: responses.RequestsMock,
    sessions: tuple[str, ...],
) -> None:
    """A closed day the calendar took for a trading day: the stock list carries no quote time, so the
    Shanghai Composite's daily bars tell that Eastmoney still serves the last session."""
    add_session_probe(http, *sessions)

    response = make_runner().dispatch(spot_event(), lambda_context)

    assert response["status"] == "SKIPPED"
    assert len(http.calls) == 1, "no page of the full-market list was fetched"
    assert market_items(dynamodb) == {}
    detail = run_record(dynamodb, "stock-spot")["detail"]
    latest = sessions[-1] if sessions else "none in 14 days"
    assert detail["reason"] == (
        f"Eastmoney serves an earlier session (the Shanghai Composite's latest daily bar is {latest}, "
        "not 2026-11-27): the exchange is closed"
    )
    assert detail["latest_session"] == (sessions[-1] if sessions else None)
    probe = query_params(http.calls[0].request)
    assert (probe["secid"], probe["beg"], probe["end"]) == ("1.000001", "20261113", "20261127")


def test_frame_records_are_the_values_to_dict_gives_of_every_dtype_akshare_returns() -> None:
    import math
    from datetime import date

    import pandas as pd

    from kairos_runtime.tasks.market.a_shares import _records

    frame = pd.DataFrame(
        {
            "日期": [date(2026, 11, 26), date(2026, 11, 27), None],
            "代码": pd.array(["600519", None, "000001"], dtype="string"),
            "股票代码": pd.array(["600519", None, "000001"], dtype=pd.StringDtype(na_value=math.nan)),  # akshare's
            "收盘": [1680.5, math.nan, 10.0],
            "成交量": [12345, 0, 7],
            "数量": pd.array([1, None, 3], dtype="Int64"),
            "更新时间": pd.to_datetime(["2026-11-27 15:00:00", None, "2026-11-27 14:59:58"]),
            "停牌": [True, False, True],
            "名称": ["贵州茅台", math.nan, "平安银行"],
        }
    )

    def typed(records: list[dict[str, Any]]) -> list[list[tuple[str, str, str]]]:
        return [[(key, type(value).__name__, repr(value)) for key, value in row.items()] for row in records]

    assert typed(_records(frame)) == typed(frame.to_dict("records"))
    assert _records(frame.iloc[0:0]) == []
    first = _records(frame)[0]
    assert (type(first["收盘"]), first["收盘"], type(first["成交量"])) == (float, 1680.5, int)
