"""etf_spot, etf_daily, index_spot and index_daily end to end through akshare's own parsing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import responses

from kairos_runtime.tasks.market.a_shares import IndexGroup
from tests.conftest import FakeLambdaContext, scheduled_event
from tests.market.conftest import (
    ETF_SPOT_URL,
    INDEX_CODE_MAP_URL,
    INDEX_MAJOR_URL,
    INDEX_SERIES_URL,
    MakeRunner,
    add_kline,
    add_page,
    add_session_probe,
    market_items,
    run_record,
)

SPOT_SLOT = "2026-11-27T06:45:00Z"  # Friday 14:45 in Shanghai, in the afternoon session
SPOT_SK = f"SPOT#{SPOT_SLOT}"
DAILY_SLOT = "2026-11-27T07:40:00Z"


def test_etf_spot_keeps_the_fund_figures_and_the_quote_time(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    add_page(http, ETF_SPOT_URL, "etf_spot", page=1, fs="b:MK0021,b:MK0022,b:MK0023,b:MK0024,b:MK0827")

    response = make_runner().dispatch(scheduled_event("etf-spot", "etf_spot", scheduled_time=SPOT_SLOT), lambda_context)

    assert response["status"] == "SUCCEEDED"
    items = market_items(dynamodb)
    assert set(items) == {(pk, sk) for pk in ("ETF#510300", "ETF#159915") for sk in (SPOT_SK, "LATEST")}
    csi300 = items[("ETF#510300", SPOT_SK)]
    assert (csi300["price"], csi300["iopv"], csi300["discount_rate_pct"]) == (
        Decimal("3.988"),
        Decimal("3.9871"),
        Decimal("-0.03"),
    )
    assert csi300["volume_shares"] == Decimal(923456700)
    assert (csi300["data_date"], csi300["quote_time"]) == ("2026-11-27", "2026-11-27T07:00:00Z")
    # Eastmoney's delayed feed: the quote's own time is kept beside the slot, in the snapshot and in LATEST.
    latest = items[("ETF#510300", "LATEST")]
    assert (latest["snapshot_time"], latest["quote_time"]) == (SPOT_SLOT, "2026-11-27T07:00:00Z")
    assert csi300["snapshot_time"] == SPOT_SLOT
    assert (csi300["exchange"], items[("ETF#159915", "LATEST")]["exchange"]) == ("SH", "SZ")
    assert items[("ETF#159915", "LATEST")]["gsi1pk"] == "ETF#LATEST#2026-11-27"


def test_etf_daily_stores_bars_under_the_etf_class(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    add_kline(http, "1.510300", "etf_kline_510300", beg="20261117", end="20261127", fqt="0")
    event = scheduled_event(
        "etf-daily", "etf_daily", {"symbols": ["510300"], "lookback_days": 10}, scheduled_time=DAILY_SLOT
    )

    make_runner().dispatch(event, lambda_context)

    items = market_items(dynamodb)
    assert set(items) == {("ETF#510300", "DAY#2026-11-26"), ("ETF#510300", "DAY#2026-11-27")}
    bar = items[("ETF#510300", "DAY#2026-11-27")]
    assert (bar["close"], bar["volume_shares"], bar["gsi1pk"]) == (
        Decimal("3.988"),
        Decimal(923456700),
        "ETF#DAY#2026-11-27",
    )


@pytest.mark.parametrize(
    ("group", "url", "fixture", "query", "stored"),
    [
        ("major", INDEX_MAJOR_URL, "index_spot_major", {"fs": "b:MK0010"}, {"000001", "399001", "000300"}),
        ("csi", INDEX_SERIES_URL, "index_spot_csi", {"fs": "m:2", "pn": "1"}, {"000905"}),
    ],
)
def test_index_spot_reads_the_chosen_list(
    make_runner: MakeRunner,
    dynamodb: Any,
    lambda_context: FakeLambdaContext,
    http: responses.RequestsMock,
    group: str,
    url: str,
    fixture: str,
    query: dict[str, str],
    stored: set[str],
) -> None:
    add_session_probe(http, "2026-11-27")
    add_page(http, url, fixture, page=None, **query)

    make_runner().dispatch(
        scheduled_event("index-spot", "index_spot", {"group": group}, scheduled_time=SPOT_SLOT), lambda_context
    )

    items = market_items(dynamodb)
    assert {pk.removeprefix("INDEX#") for pk, _ in items} == stored
    first = items[(f"INDEX#{sorted(stored)[0]}", "LATEST")]
    assert "volume_lots" in first
    assert "volume_shares" not in first
    record = run_record(dynamodb, "index-spot")
    assert record["items_rejected"] == len(fixture_rows(fixture)) - len(stored)


def fixture_rows(name: str) -> list[Any]:
    from tests.market.conftest import fixture_json

    return list(fixture_json(name)["data"]["diff"])


def test_an_unpriced_index_is_rejected_as_missing_a_price(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    add_session_probe(http, "2026-11-27")
    add_page(http, INDEX_SERIES_URL, "index_spot_csi")

    make_runner().dispatch(
        scheduled_event("index-spot", "index_spot", {"group": "csi"}, scheduled_time=SPOT_SLOT), lambda_context
    )

    detail = run_record(dynamodb, "index-spot")["detail"]
    assert detail["rejected"] == {"missing_price": 1}
    assert detail["rejected_examples"] == [{"symbol": "930050", "reason": "missing_price"}]


def test_index_groups_map_onto_the_names_akshare_accepts() -> None:
    assert {group.value: group.akshare for group in IndexGroup} == {
        "major": "沪深重要指数",
        "shanghai": "上证系列指数",
        "shenzhen": "深证系列指数",
        "constituent": "指数成份",
        "csi": "中证系列指数",
    }


def test_index_daily_looks_up_the_market_then_keeps_the_requested_range(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    add_page(http, INDEX_CODE_MAP_URL, "index_code_map", fields="f3,f12,f13")
    add_kline(http, "1.000300", "index_kline_000300", beg="0", end="20500000")
    event = scheduled_event(
        "index-daily", "index_daily", {"symbols": ["000300"], "lookback_days": 20}, scheduled_time=DAILY_SLOT
    )

    response = make_runner().dispatch(event, lambda_context)

    assert response["status"] == "SUCCEEDED"
    items = market_items(dynamodb)
    # akshare downloads the whole history; the 2026-10-30 bar falls before the 20-day lookback.
    assert set(items) == {("INDEX#000300", "DAY#2026-11-26"), ("INDEX#000300", "DAY#2026-11-27")}
    bar = items[("INDEX#000300", "DAY#2026-11-27")]
    assert (bar["close"], bar["volume_lots"], bar["turnover_cny"]) == (
        Decimal("3990.8"),
        Decimal(170345678),
        Decimal(341234567890),
    )
    assert (bar["exchange"], bar["gsi1pk"]) == ("SH", "INDEX#DAY#2026-11-27")


def test_an_index_without_history_is_noted_and_the_others_stored(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    add_page(http, INDEX_CODE_MAP_URL, "index_code_map")
    add_kline(http, "1.000300", "index_kline_000300")
    add_kline(http, "0.399006", "kline_empty")
    add_kline(http, "2.399006", "kline_empty")
    event = scheduled_event(
        "index-daily", "index_daily", {"symbols": ["399006", "000300"], "lookback_days": 20}, scheduled_time=DAILY_SLOT
    )

    make_runner().dispatch(event, lambda_context)

    record = run_record(dynamodb, "index-daily")
    assert (record["status"], record["items_written"]) == ("SUCCEEDED", 2)
    assert list(record["detail"]["symbol_errors"]) == ["399006"]
    assert "unexpected response" in record["detail"]["symbol_errors"]["399006"]


PREVIOUS_CLOSE = 1795676400
"""2026-11-26T07:00:00Z, Thursday's 15:00 close in Shanghai: the session before SPOT_SLOT's."""


def etf_page(*quote_times: int | str) -> dict[str, Any]:
    """The recorded ETF page with each row's f124 (quote time, epoch seconds) replaced."""
    from tests.market.conftest import fixture_json

    page = fixture_json("etf_spot")
    for row, quoted in zip(page["data"]["diff"], quote_times, strict=True):
        row["f124"] = quoted
    return dict(page)


def test_an_etf_quoted_before_the_slots_session_opened_is_rejected_as_stale(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    fresh = fixture_rows("etf_spot")[0]["f124"]
    http.add(responses.GET, ETF_SPOT_URL, json=etf_page(fresh, PREVIOUS_CLOSE))

    response = make_runner().dispatch(scheduled_event("etf-spot", "etf_spot", scheduled_time=SPOT_SLOT), lambda_context)

    assert response["status"] == "SUCCEEDED"
    assert {pk for pk, _ in market_items(dynamodb)} == {"ETF#510300"}, "159915's quote is Thursday's"
    record = run_record(dynamodb, "etf-spot")
    assert record["items_rejected"] == 1
    assert record["detail"]["rejected"] == {"stale_quote": 1}
    assert record["detail"]["rejected_examples"] == [{"symbol": "159915", "reason": "stale_quote"}]


def test_when_every_quote_is_from_an_earlier_session_the_run_is_skipped_and_nothing_stored(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    # 09:14:59 on the slot's own day is still before the opening auction.
    before_open = 1795762800 - (15 * 3600 - (9 * 3600 + 14 * 60 + 59))
    http.add(responses.GET, ETF_SPOT_URL, json=etf_page(PREVIOUS_CLOSE, before_open))

    response = make_runner().dispatch(scheduled_event("etf-spot", "etf_spot", scheduled_time=SPOT_SLOT), lambda_context)

    assert response["status"] == "SKIPPED"
    assert market_items(dynamodb) == {}
    detail = run_record(dynamodb, "etf-spot")["detail"]
    assert detail["reason"] == (
        "Eastmoney (akshare.fund_etf_spot_em) serves an earlier session (every quote is from before "
        "2026-11-27 09:15 Shanghai time): the exchange is closed"
    )
    assert detail["rejected"] == {"stale_quote": 2}


def test_an_etf_row_without_a_quote_time_is_not_stored(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    fresh = fixture_rows("etf_spot")[0]["f124"]
    http.add(responses.GET, ETF_SPOT_URL, json=etf_page(fresh, "-"))

    make_runner().dispatch(scheduled_event("etf-spot", "etf_spot", scheduled_time=SPOT_SLOT), lambda_context)

    assert {pk for pk, _ in market_items(dynamodb)} == {"ETF#510300"}
    assert run_record(dynamodb, "etf-spot")["detail"]["rejected"] == {"missing_quote_time": 1}
